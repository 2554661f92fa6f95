"""hyperopt search of exploration and regularisation hyper-parameters against an off-policy objective.

Time-based validation on rolling-origin folds: each fold's bandit is fitted on the decisions before a
slice of time and scored off-policy on that slice; a trial's objective is the doubly-robust estimate
over every fold's slice pooled, each decision scored by a fit on everything before its slice (one fold,
the default, is a single time split). The data part of the sufficient statistics (``XᵀWX``, ``XᵀWr``) does
not depend on any hyper-parameter searched here, so it is aggregated on the cluster **once** per fold;
each trial solves the small per-action systems on the driver, then scores the slices and runs the
doubly-robust estimator — both Spark jobs launched from the driver.

The search space is conditional: each exploration strategy brings only the parameter it reads (the
width scale for Thompson sampling and LinUCB, the temperature for softmax), next to the exploration
floor every strategy uses, and the ridge λ only where the fit uses it (not with the evidence λ or the
pooled prior, the defaults), so no trial is spent on a parameter its fit ignores.

Why plain ``Trials`` and not ``SparkTrials``: ``SparkTrials`` runs each trial inside a Spark task,
where there is no SparkSession, so it only suits trials that are single-machine code. Our trial's
objective *is* a distributed Spark computation (scoring + OPE aggregation over the folds' slices),
so trials run sequentially on the driver and each one uses the whole cluster.

Example::

    result = tune_policy([TuningFold(train_stats, validation)], settings=settings, max_evals=12)
    result.best_params   # {'strategy': 'softmax', 'temperature': 0.3, 'exploration_floor': 0.04}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial, reduce
from typing import Any

import numpy as np
from hyperopt import STATUS_OK, Trials, fmin, hp, tpe
from pyspark.sql import DataFrame

from nurture_lake.policy.bandit import LinearBandit, SufficientStats, fit_linear_bandit
from nurture_lake.policy.exploration import STRATEGIES, ExplorationParams
from nurture_lake.policy.ope import policy_estimates, with_target
from nurture_lake.policy.settings import LearningSettings


def _strategy_space(strategy: str) -> dict[str, Any]:
    """The one parameter ``strategy`` reads beyond λ and the floor (none for ε-greedy, whose ε is the floor)."""
    if strategy in ("thompson", "linucb"):
        return {"exploration_scale": hp.uniform(f"{strategy}_scale", 0.0, 2.0)}
    if strategy == "softmax":
        return {"temperature": hp.loguniform("temperature", np.log(0.05), np.log(5.0))}
    return {}


def search_space(*, tune_lambda: bool = True) -> dict[str, Any]:
    """The hyperopt space: the strategy with its own parameter, the exploration floor and (``tune_lambda``) λ."""
    space: dict[str, Any] = {
        "exploration": hp.choice("exploration", [{"strategy": name, **_strategy_space(name)} for name in STRATEGIES]),
        "exploration_floor": hp.uniform("exploration_floor", 0.01, 0.2),
    }
    if tune_lambda:
        space["ridge_lambda"] = hp.loguniform("ridge_lambda", np.log(1e-2), np.log(1e2))
    return space


def lambda_is_used(settings: LearningSettings, prior_means: Sequence[np.ndarray | None]) -> bool:
    """Whether ``ridge_lambda`` shapes a fit: not when each action's λ comes from its evidence
    (``ridge_auto``) or the weights shrink towards a pooled prior with ``prior_strength`` instead."""
    return not settings.ridge_auto and all(prior is None for prior in prior_means)


def flat_params(sample: dict[str, Any]) -> dict[str, Any]:
    """A point of :func:`search_space` as the flat parameters :func:`fit_with_params` reads."""
    return {**{k: v for k, v in sample.items() if k != "exploration"}, **sample.get("exploration", {})}


def exploration_from(settings: LearningSettings, *, max_exploration_rate: float = 1.0,
                     **overrides: Any) -> ExplorationParams:
    """The exploration parameters of ``settings`` (capped by the guardrails' rate) with some replaced."""
    base = ExplorationParams(
        strategy=settings.strategy, floor=settings.exploration_floor, max_exploration=settings.max_exploration,
        scale=settings.exploration_scale, temperature=settings.temperature, draws=settings.thompson_draws,
        seed=settings.seed, max_exploration_rate=max_exploration_rate,
    )
    return base.with_changes(**overrides) if overrides else base


@dataclass(frozen=True)
class TuningResult:
    """Best hyper-parameters, their objective value, and every trial's (params, objective)."""

    best_params: dict[str, Any]
    best_objective: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    n_fit: int | None = None
    """When ``train_policy`` made the folds: the decisions the first fold's trials fitted on, and
    (``n_scored``) the decisions scored over all folds."""
    n_scored: int | None = None
    fold_starts: list[datetime] = field(default_factory=list)
    """Where each fold's scored slice starts (see ``trainer.tuning_folds``)."""

    @property
    def cutoff(self) -> datetime | None:
        """``decided_at`` from which the scored decisions start: the first fold's start."""
        return self.fold_starts[0] if self.fold_starts else None

    def describe(self) -> str:
        """One line for job output: what was chosen, and on which decisions."""
        folds = len(self.fold_starts)
        if folds == 0:
            return f"hyperopt chose {self.best_params}"
        how = f"{folds} rolling-origin folds (the first fitted on" if folds > 1 else "one time split (fitted on"
        return f"hyperopt chose {self.best_params} on {how} {self.n_fit} decisions; {self.n_scored} scored)"


@dataclass(frozen=True)
class TuningFold:
    """One fold of the search: the sufficient statistics (and pooled prior) of the decisions before a
    slice of time, and the training-set frame of the slice that the fold's fit is scored on."""

    stats: SufficientStats
    scored: DataFrame
    prior_mean: np.ndarray | None = None


def fit_with_params(
    stats: SufficientStats,
    params: dict[str, Any],
    *,
    settings: LearningSettings,
    prior_mean: np.ndarray | None = None,
    max_exploration_rate: float = 1.0,
) -> LinearBandit:
    """Fit the bandit with ``params`` (keys of :func:`search_space`) over the ``settings`` defaults;
    ``max_exploration_rate`` is the guardrails' cap on non-greedy probability (see :func:`exploration_cap`)."""
    exploration = exploration_from(
        settings, max_exploration_rate=max_exploration_rate,
        strategy=params.get("strategy", settings.strategy),
        floor=float(params.get("exploration_floor", settings.exploration_floor)),
        scale=float(params.get("exploration_scale", settings.exploration_scale)),
        temperature=float(params.get("temperature", settings.temperature)),
    )
    lam = float(params.get("ridge_lambda", settings.ridge_lambda))
    return fit_linear_bandit(
        stats, ridge_lambda=lam, exploration=exploration, prior_mean=prior_mean,
        prior_strength=settings.prior_strength if prior_mean is not None else None, auto_lambda=settings.ridge_auto,
    )


def tune_policy(
    folds: Sequence[TuningFold],
    *,
    settings: LearningSettings,
    max_evals: int | None = None,
    objective: str = "dr_lower",
    max_exploration_rate: float = 1.0,
) -> TuningResult:
    """Minimise ``-objective`` over :func:`search_space` (``dr_lower`` or ``dr_estimate``) with TPE.

    Each trial fits every fold with the trial's parameters, scores each fold's slice with its own fit, and
    takes the objective of the doubly-robust estimate over the slices pooled. The slices are cached
    during the search. λ is searched only where it shapes the fit (:func:`lambda_is_used`). TPE proposes
    from its model after ``settings.tuning_random_evals`` random trials (hyperopt's own default, 20, would
    leave a budget of 12 a purely random search).
    """
    if objective not in ("dr_lower", "dr_estimate"):
        raise ValueError("objective must be 'dr_lower' or 'dr_estimate'")
    if not folds:
        raise ValueError("tune_policy needs at least one fold")
    history: list[dict[str, Any]] = []
    slices = [fold.scored.cache() for fold in folds]

    def _objective(sample: dict[str, Any]) -> dict[str, Any]:
        params = flat_params(sample)
        scored_parts = [
            with_target(rows, fit_with_params(fold.stats, params, settings=settings, prior_mean=fold.prior_mean,
                                              max_exploration_rate=max_exploration_rate),
                        seed=settings.seed, context_col=settings.context_col)
            for fold, rows in zip(folds, slices, strict=True)
        ]
        scored = reduce(DataFrame.unionByName, scored_parts).cache()
        try:
            dr = policy_estimates(scored, estimators=("dr",), n_bootstrap=settings.ope_bootstrap,
                                  alpha=settings.ope_alpha, seed=settings.seed)["dr"]
        finally:
            scored.unpersist()
        value = dr.lower if objective == "dr_lower" else dr.estimate
        loss = -value if value == value else float("inf")
        history.append({**params, "objective": value, "dr_estimate": dr.estimate, "dr_lower": dr.lower})
        return {"loss": loss, "status": STATUS_OK}

    try:
        trials = Trials()
        fmin(
            _objective, search_space(tune_lambda=lambda_is_used(settings, [fold.prior_mean for fold in folds])),
            algo=partial(tpe.suggest, n_startup_jobs=settings.tuning_random_evals),
            max_evals=max_evals or settings.tuning_max_evals,
            trials=trials, rstate=np.random.default_rng(settings.seed), show_progressbar=False,
        )
    finally:
        for rows in slices:
            rows.unpersist()
    best = best_trial(history)
    return TuningResult(best_params=trial_params(best), best_objective=float(best["objective"]), trials=history)


def best_trial(trials: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The entry of ``TuningResult.trials`` with the highest objective (a NaN objective is never chosen)."""
    return max(trials, key=lambda t: t["objective"] if t["objective"] == t["objective"] else -np.inf)


def trial_params(trial: dict[str, Any]) -> dict[str, Any]:
    """The hyper-parameters of one entry of ``TuningResult.trials`` (without its objective figures)."""
    return {k: v for k, v in trial.items() if k not in ("objective", "dr_estimate", "dr_lower")}
