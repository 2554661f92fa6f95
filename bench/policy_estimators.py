"""Offline: how well each way of fitting the bandit chooses, given one benchmark run's training data.

``python -m bench.bench_policy_quality --dump .bench/pq.npz`` first, then
``python -m bench.policy_estimators .bench/pq.npz``. It refits the run's final training set with several
estimators and scores each greedy policy on the run's evaluation lead-days by the simulator's exact values
(the benchmark's normalised score). A whole benchmark run compares policies on one trajectory each, and two
runs of different code differ by more than most estimator changes (see README, **Policy quality**); here
every estimator sees the same rows, so the differences are the estimators'.

Each line gives the score of the fit on every row, and the mean over ``--halves`` random halves of the leads
(all of a lead's rows or none, without replacement) with the mean paired difference against the first
estimator, each ± its standard error. Halves, not bootstrap resamples: a resample repeats rows, and a
repeated row reads as agreeing evidence to the per-action evidence λ, which then fits the noise; that made
the evidence-based fits look worse than they are.

The rows are the complete decisions before the run's validation cut (``train_complete``); dumps written
before that array existed use the rows made at least the longest wait plus the reward window before the last
decision. Spark fits the pooled prior, as in the product; everything else is NumPy on the driver.

Dumps that carry ``train_exact`` (each row's exact expected reward) add a reference row, ``NOISE_FREE``: the
product's estimator on the same rows with every reward replaced by its exact expectation. The gap between it
and the product's row is what the outcomes' noise costs at this many decisions.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pyspark.sql import SparkSession

from bench.bench_policy_quality import bench_config
from bench.policy_ceilings import Dump, choice_score
from nurture_lake.actions import HOLD, ActionSpace, RewardSpec
from nurture_lake.policy.bandit import SufficientStats, fit_linear_bandit, statistics_from_arrays
from nurture_lake.policy.cold_start import fit_engagement_prior
from nurture_lake.policy.settings import LearningSettings
from nurture_lake.spark import get_spark


@dataclass(frozen=True)
class TrainingRows:
    """The final fit's training rows of a dump, ordered by decision time."""

    contexts: np.ndarray
    actions: np.ndarray      # index into the dump's action ids
    rewards: np.ndarray
    leads: np.ndarray
    exact: np.ndarray | None = None  # each row's exact expected reward (dumps since ``train_exact``)


@dataclass(frozen=True)
class FitInputs:
    """What every estimator may use: the per-action sufficient statistics and both pooled priors."""

    stats: SufficientStats
    prior_all: np.ndarray      # (k, d): every action pooled, hold included (before this study)
    prior_touches: np.ndarray  # (k, d): the touches pooled, hold on its own mean (the product)


Estimator = Callable[[FitInputs], np.ndarray]
"""Fit inputs → the (k, d) weights whose greedy choice is scored."""


def training_rows(path: Path, *, validation_fraction: float, gap_seconds: float) -> TrainingRows:
    """The rows the run's final fit trained on: the earlier ``1 - validation_fraction`` of the complete ones."""
    with np.load(path, allow_pickle=False) as d:
        if "train_contexts" not in d.files:
            raise ValueError(f"{path}: no training set (written by an older benchmark); run the benchmark again")
        at = d["train_decided_at"].astype(np.float64)
        at = at / 1e9 if at.max() > 1e15 else at  # nanoseconds from pandas, or seconds
        complete = d["train_complete"] if "train_complete" in d.files else at <= at.max() - gap_seconds
        order = np.flatnonzero(complete)[np.argsort(at[complete], kind="stable")]
        cut = at[order][int((1.0 - validation_fraction) * len(order))] if len(order) else 0.0
        keep = order[at[order] < cut]
        exact = d["train_exact"][keep] if "train_exact" in d.files else None
        return TrainingRows(d["train_contexts"][keep], d["train_actions"][keep], d["train_reward"][keep],
                            d["train_leads"][keep], exact)


def fit_inputs(spark: SparkSession, rows: TrainingRows, action_ids: list[str]) -> FitInputs:
    names = [action_ids[i] for i in rows.actions]
    stats = statistics_from_arrays(rows.contexts, names, rows.rewards, action_ids=action_ids)
    frame = spark.createDataFrame(
        [(c.tolist(), a, float(r)) for c, a, r in zip(rows.contexts, names, rows.rewards, strict=True)],
        "context array<double>, action string, reward double",
    ).cache()
    try:
        every = fit_engagement_prior(frame, action_ids=action_ids).prior_mean
        touches = fit_engagement_prior(frame, action_ids=action_ids,
                                       pooled=[a for a in action_ids if a != HOLD]).prior_mean
    finally:
        frame.unpersist()
    return FitInputs(stats, every, touches)


def estimators(settings: LearningSettings) -> dict[str, Estimator]:
    """The variants compared; the first is the baseline of the paired differences."""
    def evidence(prior: Callable[[FitInputs], np.ndarray]) -> Estimator:
        return lambda f: fit_linear_bandit(f.stats, prior_mean=prior(f), prior_strength=settings.prior_strength,
                                           auto_lambda=True).theta

    def fixed(strength: float) -> Estimator:
        return lambda f: fit_linear_bandit(f.stats, prior_mean=f.prior_touches, prior_strength=strength).theta

    return {
        "hold pooled, evidence λ (before)": evidence(lambda f: f.prior_all),
        "touches pooled, evidence λ (now)": evidence(lambda f: f.prior_touches),
        "touches pooled, prior alone": lambda f: f.prior_touches,
        "touches pooled, fixed strength 300": fixed(300.0),
        "touches pooled, fixed strength 3000": fixed(3000.0),
        "hold pooled, prior alone": lambda f: f.prior_all,
    }


def subset(rows: TrainingRows, keep: np.ndarray) -> TrainingRows:
    exact = None if rows.exact is None else rows.exact[keep]
    return TrainingRows(rows.contexts[keep], rows.actions[keep], rows.rewards[keep], rows.leads[keep], exact)


NOISE_FREE = "now, on exact rewards (no outcome noise)"
"""The study's reference row: the product's estimator on the same rows, each reward replaced by the exact
expected reward of its logged action. Its distance to the product's score is what the outcomes' noise
costs; its distance to the linear ceiling, what seeing one logged action per lead-day, on the earlier
lead-days only, costs."""


def noise_summary(rows: TrainingRows) -> str:
    """How noisy the observed rewards are around their exact expectations (one log line)."""
    assert rows.exact is not None
    noise = rows.rewards - rows.exact
    corr = np.corrcoef(rows.rewards, rows.exact)[0, 1] if rows.exact.std() > 0 and rows.rewards.std() > 0 else np.nan
    return (f"observed reward sd {rows.rewards.std():.3f}, exact sd {rows.exact.std():.3f}, noise sd "
            f"{noise.std():.3f}, correlation {corr:.3f}")


def study(spark: SparkSession, path: Path, *, halves: int, seed: int, settings: LearningSettings,
          gap_seconds: float, log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Full-data score, and mean and paired difference over ``halves`` (at least 1) halves of the leads, per
    estimator."""
    if halves < 1:
        raise ValueError(f"halves must be at least 1, got {halves}")
    dump = Dump.load(path)
    action_ids = [str(a) for a in dump.action_ids]
    rows = training_rows(path, validation_fraction=settings.validation_fraction, gap_seconds=gap_seconds)
    log(f"{len(rows.rewards):,} training rows of {len(np.unique(rows.leads)):,} leads, "
        f"{rows.contexts.shape[1]} context slots; {len(dump.eval_contexts):,} evaluation lead-days")
    if rows.exact is not None:
        log(noise_summary(rows))
    fits = estimators(settings)
    product = fits["touches pooled, evidence λ (now)"]

    def score(theta: np.ndarray) -> float:
        return choice_score(dump.eval_contexts @ theta.T, dump.eval_values, dump.eval_allowed)

    def scores(part: TrainingRows) -> dict[str, float]:
        inputs = fit_inputs(spark, part, action_ids)
        out = {name: score(fit(inputs)) for name, fit in fits.items()}
        if part.exact is not None:
            out[NOISE_FREE] = score(product(fit_inputs(spark, replace(part, rewards=part.exact), action_ids)))
        return out

    full = scores(rows)
    leads = np.unique(rows.leads)
    rng = np.random.default_rng(seed)
    drawn: list[dict[str, float]] = []
    for h in range(halves):
        chosen = rng.random(len(leads)) < 0.5
        drawn.append(scores(subset(rows, chosen[np.searchsorted(leads, rows.leads)])))
        log(f"  half {h + 1}/{halves}: " + ", ".join(f"{v:.3f}" for v in drawn[-1].values()))
    base = next(iter(fits))
    out: dict[str, dict[str, float]] = {}
    for name in drawn[0]:
        values = np.array([d[name] for d in drawn])
        diff = values - np.array([d[base] for d in drawn])
        root_n = np.sqrt(len(values))
        out[name] = {"full": full[name], "halves_mean": float(values.mean()), "halves_se": float(values.std() / root_n),
                     "paired_diff": float(diff.mean()), "paired_diff_se": float(diff.std() / root_n)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dump", type=Path, help="the .npz written by bench_policy_quality --dump")
    parser.add_argument("--halves", type=int, default=12, help="random halves of the leads (default 12)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the halves (default 1)")
    args = parser.parse_args()
    if args.halves < 1:
        parser.error("--halves must be at least 1")
    with tempfile.TemporaryDirectory(prefix="nl-estimators-") as tmp:  # the benchmark's config; nothing is written
        cfg = bench_config(Path(tmp))
        settings = LearningSettings.from_config(cfg)
        longest = max((a.wait.total_seconds() for a in ActionSpace.from_config(cfg).actions if a.wait), default=0.0)
        gap = longest + RewardSpec.from_config(cfg).window_delta.total_seconds()
        result = study(get_spark(), args.dump, halves=args.halves, seed=args.seed, settings=settings, gap_seconds=gap)
    width = max(len(name) for name in result)
    print(f"{'estimator':<{width}} {'all rows':>8}  {'halves (± se)':>16}  {'paired diff (± se)':>20}")
    for name, r in result.items():
        print(f"{name:<{width}} {r['full']:>8.3f}  {r['halves_mean']:>8.3f} ± {r['halves_se']:.3f}  "
              f"{r['paired_diff']:>+11.3f} ± {r['paired_diff_se']:.3f}")


if __name__ == "__main__":
    main()
