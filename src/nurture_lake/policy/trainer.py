"""Train → evaluate → register: the library side of ``nurture-lake train`` and ``promote``.

``train_policy`` takes a training-set frame (see :mod:`~nurture_lake.policy.training_set`), splits
it by time, optionally tunes hyper-parameters with hyperopt, fits the bandit on the earlier part
(shrinking it towards the pooled engagement prior), estimates it off-policy on the later part and
logs/registers it in MLflow as ``challenger``. The final model is fitted on the earlier part only,
and hyperopt's trials fit and score within that earlier part too, on rolling-origin folds
(:func:`tuning_folds`), so the later part stays an honest hold-out for the promotion gate.

``promote_challenger`` evaluates the registered challenger against the champion (or the logging
policy) on the later decisions, writes the gate decision and moves ``champion`` when it passes.

Example::

    result = train_policy(spark, cfg, training, phase="all", input_versions=versions)
    gate = promote_challenger(spark, cfg, training, input_versions=versions)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.actions import HOLD, ActionSpace
from nurture_lake.config import NurtureConfig
from nurture_lake.guardrails.config import GuardrailConfig
from nurture_lake.policy.bandit import LinearBandit, SufficientStats, sufficient_statistics
from nurture_lake.policy.cold_start import fit_engagement_prior
from nurture_lake.policy.gate import GateDecision, evaluate_gate, write_gate_decision
from nurture_lake.policy.ope import Estimate, harm_estimate, policy_estimates, with_harm_value, with_target
from nurture_lake.policy.registry import RegisteredPolicy, load_policy_version, log_policy, set_alias
from nurture_lake.policy.settings import LearningSettings
from nurture_lake.policy.training_set import time_cutoffs
from nurture_lake.policy.tuning import TuningFold, TuningResult, fit_with_params, tune_policy
from nurture_lake.tables import Lake

PHASES: tuple[str, ...] = ("fit", "tune", "all")


class NotEnoughData(RuntimeError):
    """Too few closed-window decisions to train or evaluate."""


@dataclass
class TrainResult:
    """What a training run produced."""

    phase: str
    n_train: int
    n_validation: int
    cutoff: datetime | None
    params: dict[str, Any]
    estimates: dict[str, Estimate] = field(default_factory=dict)
    tuning: TuningResult | None = None
    tuning_skipped: str | None = None
    """Why ``phase="all"`` fitted with the configured hyper-parameters instead of tuned ones (too few
    training decisions at distinct times to split for hyperopt), else ``None``."""
    policy: LinearBandit | None = None
    registered: RegisteredPolicy | None = None
    cold_start: bool = False
    stats: SufficientStats | None = None
    """The training decisions' sufficient statistics and (``prior_mean``) pooled prior, from which
    :func:`~nurture_lake.policy.tuning.fit_with_params` refits other hyper-parameters without a Spark job."""
    prior_mean: np.ndarray | None = None


def _configured_params(settings: LearningSettings) -> dict[str, Any]:
    return {
        "strategy": settings.strategy, "ridge_lambda": settings.ridge_lambda,
        "exploration_floor": settings.exploration_floor, "exploration_scale": settings.exploration_scale,
        "temperature": settings.temperature,
    }


def exploration_cap(cfg: NurtureConfig) -> float:
    """``guardrails.max_exploration_rate`` (the strictest region's): the learned policy's cap on the
    probability of non-greedy actions. The policy is shared by every region, so the strictest cap holds."""
    return GuardrailConfig.from_config(cfg).strictest_exploration_rate


def split_training_set(training: DataFrame, settings: LearningSettings) -> tuple[DataFrame, DataFrame, datetime | None]:
    """(train, validation, cutoff) by ``decided_at``, over the complete rows: the latest
    ``validation_fraction`` of them validates, the earlier ones train.

    ``complete`` (see :func:`~nurture_lake.policy.training_set.build_training_set`) marks the rows whose
    presence does not depend on their action; a frame without the column counts every row as complete.
    The later rows, in which only the short waits have closed, are left out of both: off-policy estimates
    need a sample the logged propensities describe, and a fit on them compares each action on a different
    stretch of time (on one 60-day benchmark run's training set, adding them to the fit took the greedy
    policy from 0.484 to 0.360). With no complete row yet, both parts are empty and ``cutoff`` is ``None``.
    """
    complete = F.col("complete") if "complete" in training.columns else F.lit(True)
    return _split_by_time(training.where(complete), settings.validation_fraction)


class TimeFold(NamedTuple):
    """One rolling-origin fold of hyperopt's search: fit on ``fit``, score on ``scored`` (from ``start``)."""

    fit: DataFrame
    scored: DataFrame
    start: datetime


def tuning_folds(train: DataFrame, settings: LearningSettings) -> list[TimeFold]:
    """The *training* rows as hyperopt's rolling-origin folds: the latest ``tuning_fraction`` of them, by
    ``decided_at``, cut into ``tuning_folds`` consecutive slices; each slice is scored by a fit on every
    training row before it. Slices whose bounds coincide are left out; a slice can still hold no row when
    two bounds fall between the same two decision times (ticks), and the caller skips those. No rows, no folds.

    The validation rows are not among them: the gate scores the tuned challenger on rows that took no
    part in choosing it (the best of many trials scored on the same rows is biased upwards).
    """
    return _time_folds(train, settings.tuning_fraction, settings.tuning_folds)


def _time_folds(rows: DataFrame, later_fraction: float, k: int) -> list[TimeFold]:
    """The latest ``later_fraction`` of ``rows`` by ``decided_at`` in ``k`` consecutive slices (exact
    percentiles; bounds that coincide give one slice), each with the rows before it; the last slice runs to
    the end."""
    cutoffs = time_cutoffs(rows, fractions=[1.0 - later_fraction + later_fraction * i / k for i in range(k)])
    if cutoffs is None:
        return []
    at = F.col("decided_at")
    folds = []
    for start, end in zip(cutoffs, [*cutoffs[1:], None], strict=True):
        if end is not None and end <= start:
            continue
        later = at >= F.lit(start)
        scored = rows.where(later & (at < F.lit(end))) if end is not None else rows.where(later)
        folds.append(TimeFold(rows.where(at < F.lit(start)), scored, start))
    return folds


def _split_by_time(rows: DataFrame, later_fraction: float) -> tuple[DataFrame, DataFrame, datetime | None]:
    """(earlier, later, cutoff): the latest ``later_fraction`` of ``rows`` by ``decided_at`` and the rest;
    both empty, and ``cutoff`` ``None``, when there are no rows."""
    folds = _time_folds(rows, later_fraction, 1)
    if not folds:
        return rows.limit(0), rows.limit(0), None
    return folds[0].fit, folds[0].scored, folds[0].start


class _FitInputs(NamedTuple):
    """What a fit needs from its rows: the sufficient statistics and, when used, the pooled prior."""

    stats: SufficientStats
    prior_mean: np.ndarray | None
    prior_rmse: float


def _pooled_actions(action_ids: tuple[str, ...], counts: np.ndarray) -> list[str] | None:
    """The actions whose context weights the pooled prior shares: the touches, as hold's reward is the spec's
    constant default whatever the context; every action (``None``) while no touch has been logged, when
    the holds are all the pooled model could learn from."""
    touches = [a for a in action_ids if a != HOLD]
    logged = sum(int(n) for a, n in zip(action_ids, counts, strict=True) if a != HOLD)
    return touches if touches and logged > 0 else None


def _fit_inputs(rows: DataFrame, action_ids: tuple[str, ...], s: LearningSettings) -> _FitInputs:
    stats = sufficient_statistics(
        rows, action_ids=action_ids, context_col=s.context_col,
        importance_weighting=s.importance_weighting, max_importance_weight=s.max_importance_weight,
    )
    if s.cold_start_min_examples is None or int(stats.counts.min()) < s.cold_start_min_examples:
        prior = fit_engagement_prior(rows, action_ids=action_ids, context_col=s.context_col,
                                     pooled=_pooled_actions(action_ids, stats.counts))
        return _FitInputs(stats, prior.prior_mean, prior.training_rmse)
    return _FitInputs(stats, None, float("nan"))


def _tune(train: DataFrame, n_train: int, action_ids: tuple[str, ...], s: LearningSettings, cap: float) -> TuningResult:
    """hyperopt over the ``n_train`` training rows alone, on rolling-origin folds (see :func:`tuning_folds`)."""
    usable: list[tuple[TimeFold, int, int]] = []
    seen: list[str] = []
    for fold in tuning_folds(train, s):
        n_fit, n_scored = fold.fit.count(), fold.scored.count()
        seen.append(f"{n_fit} before {fold.start} and {n_scored} from it")
        if n_scored > 0 and n_fit >= s.min_training_examples:
            usable.append((fold, n_fit, n_scored))
    if not usable:
        raise NotEnoughData(f"no tuning fold of the {n_train} training decisions ({'; '.join(seen) or 'none'}) has "
                            f"{s.min_training_examples} decisions before it to fit its trials and 1 in it to score "
                            "them (decisions made at one time cannot be split by time)")
    folds = []
    for fold, _, _ in usable:
        inputs = _fit_inputs(fold.fit, action_ids, s)
        folds.append(TuningFold(inputs.stats, fold.scored, inputs.prior_mean))
    result = tune_policy(folds, settings=s, max_exploration_rate=cap)
    return replace(result, n_fit=usable[0][1], n_scored=sum(n for _, _, n in usable),
                   fold_starts=[fold.start for fold, _, _ in usable])


def train_policy(
    spark: SparkSession,
    cfg: NurtureConfig,
    training: DataFrame,
    *,
    phase: str = "all",
    input_versions: dict[str, int] | None = None,
    settings: LearningSettings | None = None,
    register: bool = True,
) -> TrainResult:
    """Run the ``fit``, ``tune`` or ``all`` phase on a training-set frame (see module docstring)."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    s = settings or LearningSettings.from_config(cfg)
    space = ActionSpace.from_config(cfg)
    training = training.cache()
    train, valid, cutoff = split_training_set(training, s)
    if cutoff is None:
        raise NotEnoughData("no complete decisions: none closed, or none made before the earliest decision "
                            "still waiting for its reward window")
    train, valid = train.cache(), valid.cache()
    n_train, n_valid = train.count(), valid.count()
    if n_train < s.min_training_examples:
        raise NotEnoughData(f"{n_train} training decisions before {cutoff}; need {s.min_training_examples}")

    stats, prior_mean, prior_rmse = _fit_inputs(train, space.action_ids, s)

    params = _configured_params(s)
    cap = exploration_cap(cfg)
    tuning: TuningResult | None = None
    tuning_skipped: str | None = None
    if phase in ("tune", "all"):
        try:
            tuning = _tune(train, n_train, space.action_ids, s, cap)
        except NotEnoughData as exc:
            if phase == "tune":
                raise
            tuning_skipped = f"hyperopt skipped, configured hyper-parameters used: {exc}"
        else:
            params.update(tuning.best_params)
    result = TrainResult(phase, n_train, n_valid, cutoff, params, tuning=tuning, tuning_skipped=tuning_skipped,
                         cold_start=prior_mean is not None, stats=stats, prior_mean=prior_mean)
    if phase == "tune":
        if register:
            result.registered = log_policy(
                cfg, fit_with_params(stats, params, settings=s, prior_mean=prior_mean, max_exploration_rate=cap),
                seed=s.seed,
                context_col=s.context_col,
                params={f"best.{k}": v for k, v in (tuning.best_params if tuning else {}).items()},
                metrics={"tuning_best_objective": tuning.best_objective if tuning else float("nan")},
                diagnostics={"trials": tuning.trials if tuning else []}, input_versions=input_versions,
                register=False, alias=None, run_name="tune_policy",
            )
        return result

    policy = fit_with_params(stats, params, settings=s, prior_mean=prior_mean, max_exploration_rate=cap)
    result.policy = policy
    estimates: dict[str, dict[str, Estimate]] = {}
    metrics: dict[str, float] = {"n_train": n_train, "n_validation": n_valid}
    if n_valid > 0:
        harmed = with_harm_value(valid)
        scored = with_target(harmed, policy, seed=s.seed, context_col=s.context_col, keep=("harm_value",)).cache()
        result.estimates = policy_estimates(
            scored, estimators=("ips", "snips", "dm", "dr"), n_bootstrap=s.ope_bootstrap, alpha=s.ope_alpha, seed=s.seed,
        )
        estimates["challenger"] = result.estimates
        metrics["harm_rate_estimate"] = harm_estimate(
            scored, n_bootstrap=s.ope_bootstrap, alpha=s.ope_alpha, seed=s.seed,
        ).estimate
        scored.unpersist()
        logged = harmed.agg({"reward": "avg", "harm_value": "avg"}).first()
        if logged is not None:
            metrics["logged_mean_reward"] = float(logged["avg(reward)"])
            metrics["logged_harm_rate"] = float(logged["avg(harm_value)"])
    if tuning is not None:
        metrics["tuning_best_objective"] = tuning.best_objective
        metrics["n_tuning_fit"], metrics["n_tuning_scored"] = float(tuning.n_fit or 0), float(tuning.n_scored or 0)
    diagnostics = {
        "counts_per_action": dict(zip(policy.action_ids, policy.counts.tolist(), strict=True)),
        "noise_sd": policy.noise_sd,
        "weight_norms": dict(zip(policy.action_ids, np.linalg.norm(policy.theta, axis=1).tolist(), strict=True)),
        "cold_start_prior": prior_mean is not None,
        "cold_start_prior_rmse": prior_rmse,
        "cutoff": cutoff.isoformat() if cutoff else None,
        "tuning_trials": tuning.trials if tuning else [],
        "tuning_cutoff": tuning.cutoff.isoformat() if tuning and tuning.cutoff else None,
        "tuning_fold_starts": [start.isoformat() for start in tuning.fold_starts] if tuning else [],
        "tuning_skipped": tuning_skipped,
    }
    if register:
        result.registered = log_policy(
            cfg, policy, seed=s.seed, context_col=s.context_col,
            params={**params, "phase": phase, "cutoff": cutoff, "tuned": tuning is not None,
                    "cold_start": prior_mean is not None,
                    "importance_weighting": s.importance_weighting, "max_exploration": s.max_exploration,
                    "max_exploration_rate": cap},
            metrics=metrics, estimates=estimates, diagnostics=diagnostics, input_versions=input_versions,
            alias="challenger",
        )
    for frame in (train, valid, training):
        frame.unpersist()
    return result


def promote_challenger(
    spark: SparkSession,
    cfg: NurtureConfig,
    training: DataFrame,
    *,
    input_versions: dict[str, int] | None = None,
    settings: LearningSettings | None = None,
    job_run_id: str | None = None,
) -> GateDecision | None:
    """Gate the ``challenger`` against ``champion`` on the later decisions; record and apply the verdict.

    Returns ``None`` when there is no challenger, or when the challenger already is the champion.
    """
    s = settings or LearningSettings.from_config(cfg)
    challenger = load_policy_version(cfg, "challenger")
    if challenger is None:
        return None
    champion = load_policy_version(cfg, "champion")
    if champion is not None and champion.version == challenger.version:
        return None
    _, valid, _ = split_training_set(training, s)
    decision = evaluate_gate(
        valid, challenger=challenger, champion=champion, settings=s, model_name=cfg.mlflow.model_name,
        input_versions=input_versions, job_run_id=job_run_id,
    )
    write_gate_decision(spark, Lake(cfg), decision)
    if decision.promoted:
        set_alias(cfg, "champion", challenger.version)
    return decision
