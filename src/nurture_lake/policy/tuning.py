"""hyperopt search of exploration and regularisation hyper-parameters against an off-policy objective.

Time-based validation: the bandit is fitted on earlier decisions and evaluated off-policy on later
ones. The data part of the sufficient statistics (``XᵀWX``, ``XᵀWr``) does not depend on any
hyper-parameter searched here, so it is aggregated on the cluster **once**; each trial solves the
small per-action systems on the driver, then scores the validation decisions and runs the
doubly-robust estimator — both Spark jobs launched from the driver.

Why plain ``Trials`` and not ``SparkTrials``: ``SparkTrials`` runs each trial inside a Spark task,
where there is no SparkSession, so it only suits trials that are single-machine code. Our trial's
objective *is* a distributed Spark computation (scoring + OPE aggregation over the validation set),
so trials run sequentially on the driver and each one uses the whole cluster.

Example::

    result = tune_policy(train_stats, validation, settings=settings, max_evals=12)
    result.best_params   # {'strategy': 'softmax', 'ridge_lambda': 0.8, ...}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from hyperopt import STATUS_OK, Trials, fmin, hp, tpe
from pyspark.sql import DataFrame

from nurture_lake.policy.bandit import LinearBandit, SufficientStats, fit_linear_bandit
from nurture_lake.policy.exploration import STRATEGIES, ExplorationParams
from nurture_lake.policy.ope import policy_estimates, with_target
from nurture_lake.policy.settings import LearningSettings


def search_space() -> dict[str, Any]:
    """The hyperopt space: strategy, λ, exploration floor, width scale, temperature."""
    return {
        "strategy": hp.choice("strategy", list(STRATEGIES)),
        "ridge_lambda": hp.loguniform("ridge_lambda", np.log(1e-2), np.log(1e2)),
        "exploration_floor": hp.uniform("exploration_floor", 0.01, 0.2),
        "exploration_scale": hp.uniform("exploration_scale", 0.0, 2.0),
        "temperature": hp.loguniform("temperature", np.log(0.05), np.log(5.0)),
    }


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
    """Decisions the trials fitted on, and (``n_scored``) scored on, when ``train_policy`` split them."""
    n_scored: int | None = None
    cutoff: datetime | None = None
    """``decided_at`` from which the scored decisions start (see ``trainer.split_for_tuning``)."""


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
    train_stats: SufficientStats,
    validation: DataFrame,
    *,
    settings: LearningSettings,
    max_evals: int | None = None,
    objective: str = "dr_lower",
    prior_mean: np.ndarray | None = None,
    max_exploration_rate: float = 1.0,
) -> TuningResult:
    """Minimise ``-objective`` over :func:`search_space` (``dr_lower`` or ``dr_estimate``) with TPE.

    ``validation`` is a training-set frame of the later decisions; it is cached during the search.
    """
    if objective not in ("dr_lower", "dr_estimate"):
        raise ValueError("objective must be 'dr_lower' or 'dr_estimate'")
    history: list[dict[str, Any]] = []
    validation = validation.cache()

    def _objective(params: dict[str, Any]) -> dict[str, Any]:
        policy = fit_with_params(train_stats, params, settings=settings, prior_mean=prior_mean,
                                 max_exploration_rate=max_exploration_rate)
        scored = with_target(validation, policy, seed=settings.seed, context_col=settings.context_col).cache()
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
            _objective, search_space(), algo=tpe.suggest, max_evals=max_evals or settings.tuning_max_evals,
            trials=trials, rstate=np.random.default_rng(settings.seed), show_progressbar=False,
        )
    finally:
        validation.unpersist()
    best = max(history, key=lambda h: h["objective"] if h["objective"] == h["objective"] else -np.inf)
    best_params = {k: v for k, v in best.items() if k not in ("objective", "dr_estimate", "dr_lower")}
    return TuningResult(best_params=best_params, best_objective=float(best["objective"]), trials=history)
