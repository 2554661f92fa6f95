"""Offline ceilings of the policy-quality benchmark, from the arrays its ``--dump`` writes.

``python -m bench.bench_policy_quality --dump .bench/pq.npz`` first, then
``python -m bench.policy_ceilings .bench/pq.npz``. Every score is the benchmark's normalised score
(value of the chosen action − random) / (oracle − random) over the evaluation lead-days, where a model
"chooses" the allowed action with the highest predicted value. Two studies:

* **ceilings**: per-action models fitted on the learning phase's contexts and *exact* action values, scored on
  the evaluation days: what a perfect learner could do with the product's context (linear and gradient-boosted
  trees).
* **truths**: the evaluation lead-days alone, five-fold cross-validated by lead, with the simulator's hidden
  per-lead truths (channel affinities, fatigue sensitivity, conversion, lifecycle) added to the context: how much
  knowing what the context cannot see would be worth.

An offline study, not a product path: scikit-learn (installed with MLflow) and NumPy; Spark is never started.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from bench.bench_policy_quality import bench_config, normalised, ridge_on_values, world_config
from nurture_lake.config import NurtureConfig
from nurture_lake.simulator.population import build_population

Fit = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(train features, train values per action (NaN: not allowed), evaluation features) → predictions per action."""


@dataclass(frozen=True)
class Dump:
    """The arrays of one ``--dump``."""

    action_ids: np.ndarray
    learn_contexts: np.ndarray
    learn_values: np.ndarray      # (n, actions), NaN where the action was not allowed
    eval_contexts: np.ndarray
    eval_values: np.ndarray
    eval_allowed: np.ndarray      # bool (n, actions)
    eval_leads: np.ndarray        # the world's lead ids, e.g. "us-000042"
    seed: int
    leads: int
    days: int
    eval_days: int

    @classmethod
    def load(cls, path: Path) -> Dump:
        with np.load(path, allow_pickle=False) as d:
            missing = {"seed", "leads", "days", "eval_days"} - set(d.files)
            if missing:
                raise ValueError(f"{path}: no {sorted(missing)} (written by an older benchmark); run the benchmark again")
            return cls(
                action_ids=d["action_ids"], learn_contexts=d["learn_contexts"], learn_values=d["learn_values"],
                eval_contexts=d["eval_contexts"], eval_values=d["eval_values"], eval_allowed=d["eval_allowed"],
                eval_leads=d["eval_leads"], seed=int(d["seed"]), leads=int(d["leads"]), days=int(d["days"]),
                eval_days=int(d["eval_days"]),
            )


def choice_score(predicted: np.ndarray, values: np.ndarray, allowed: np.ndarray) -> float:
    """Normalised score of choosing, per row, the allowed action with the highest ``predicted`` value."""
    random = np.nanmean(np.where(allowed, values, np.nan), axis=1).mean()
    oracle = np.nanmax(np.where(allowed, values, -np.inf), axis=1).mean()
    chosen = np.argmax(np.where(allowed, predicted, -np.inf), axis=1)
    return float(normalised(values[np.arange(len(chosen)), chosen].mean(), random, oracle))


def boosted_trees(max_iter: int = 150) -> Fit:
    """One gradient-boosted tree model per action, each fitted on the rows where that action has a value."""
    def fit(x: np.ndarray, values: np.ndarray, x_eval: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x_eval), values.shape[1]))
        for j in range(values.shape[1]):
            ok = ~np.isnan(values[:, j])
            if ok.any():
                model = HistGradientBoostingRegressor(max_iter=max_iter, random_state=0).fit(x[ok], values[ok, j])
                out[:, j] = model.predict(x_eval)
        return out
    return fit


def models(max_iter: int = 150) -> dict[str, Fit]:
    """The two model forms every study compares; ``linear`` is the product's ridge fit (λ = 1), as the
    benchmark's linear ceiling uses it."""
    return {"linear": ridge_on_values, "boosted_trees": boosted_trees(max_iter)}


def ceilings(dump: Dump, *, max_iter: int = 150) -> dict[str, float]:
    """Learning-phase fit → evaluation score, for a linear and a tree model."""
    return {
        name: choice_score(fit(dump.learn_contexts, dump.learn_values, dump.eval_contexts),
                           dump.eval_values, dump.eval_allowed)
        for name, fit in models(max_iter).items()
    }


def lead_truths(cfg: NurtureConfig, dump: Dump) -> dict[str, np.ndarray]:
    """Per evaluation row: the lead's true channel affinities, and every per-lead truth (affinities first)."""
    sim = world_config(cfg, leads=dump.leads, days=dump.days, eval_days=dump.eval_days, seed=dump.seed)
    pops = build_population(cfg, sim)
    rows = [(pops[region], int(index)) for region, index in (str(lead).rsplit("-", 1) for lead in dump.eval_leads)]
    affinity = np.array([p.affinity[i] for p, i in rows])
    others = np.array([[p.fatigue_sensitivity[i], p.conversion[i], p.lifecycle[i]] for p, i in rows])
    return {"affinity": affinity, "all": np.c_[affinity, others]}


def cross_validated(fit: Fit, x: np.ndarray, dump: Dump, *, folds: int = 5, seed: int = 0) -> float:
    """Score of out-of-fold predictions on the evaluation rows, folds split by lead."""
    leads = np.unique(dump.eval_leads)
    fold_of = dict(zip(leads, np.random.default_rng(seed).integers(0, folds, len(leads)), strict=True))
    fold = np.array([fold_of[lead] for lead in dump.eval_leads])
    predicted = np.zeros_like(dump.eval_values)
    for k in range(folds):
        train, test = fold != k, fold == k
        if train.any() and test.any():
            predicted[test] = fit(x[train], dump.eval_values[train], x[test])
    return choice_score(predicted, dump.eval_values, dump.eval_allowed)


def truths_study(cfg: NurtureConfig, dump: Dump, *, max_iter: int = 150) -> dict[str, dict[str, float]]:
    """Cross-validated scores with the context alone, plus true affinities, plus every per-lead truth."""
    truths = lead_truths(cfg, dump)
    inputs = {
        "context": dump.eval_contexts,
        "context + true affinities": np.c_[dump.eval_contexts, truths["affinity"]],
        "context + all per-lead truths": np.c_[dump.eval_contexts, truths["all"]],
    }
    return {name: {f: cross_validated(fit, x, dump) for f, fit in models(max_iter).items()} for name, x in inputs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dump", type=Path, help="the .npz written by bench_policy_quality --dump")
    args = parser.parse_args()
    dump = Dump.load(args.dump)
    print(f"{len(dump.learn_contexts):,} learning and {len(dump.eval_contexts):,} evaluation lead-days, "
          f"{dump.eval_contexts.shape[1]} context slots, {len(dump.action_ids)} actions", flush=True)
    for name, score in ceilings(dump).items():
        print(f"  ceiling, {name:<15} {score:.3f}", flush=True)
    print("truths (5-fold cross-validation by lead, evaluation days):", flush=True)
    with tempfile.TemporaryDirectory(prefix="nl-ceilings-") as tmp:  # the benchmark's config; nothing is written
        study = truths_study(bench_config(Path(tmp)), dump)
    for name, scores in study.items():
        print(f"  {name:<31} linear {scores['linear']:.3f}  boosted trees {scores['boosted_trees']:.3f}", flush=True)


if __name__ == "__main__":
    main()
