"""``off_policy_estimates``: every estimator, bootstrap intervals and diagnostics in two Spark passes.

Pass 1 (:func:`~.diagnostics.summarise`) validates the rows and computes the point sums and
diagnostics in one aggregation. Pass 2 (:func:`~.bootstrap.bootstrap_sums`, only when
``n_bootstrap > 0``) resamples the same per-row terms with Poisson(1) counts. Cache ``logged``
first if it is expensive to recompute (e.g. the result of a join).

Example::

    result = off_policy_estimates(outcomes, n_bootstrap=1000, seed=7, key_col="decision_id")
    result.estimates["snips"].value, result.estimates["snips"].ci_low
    result.to_pandas()                       # one row per estimator
    mlflow.log_metrics(result.to_metrics())
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pyspark.sql import DataFrame

from nurture_lake.evaluation.bootstrap import bootstrap_sums
from nurture_lake.evaluation.diagnostics import prepare, raise_for_invalid_rows, summarise
from nurture_lake.evaluation.estimators import ESTIMATORS, WEIGHT_ONLY, effective_sample_size, estimate
from nurture_lake.evaluation.result import Estimate, OpeResult

DEFAULT_N_BOOTSTRAP = 1000
DEFAULT_SEED = 0
DEFAULT_CLIP = 10.0
DEFAULT_SWITCH_TAU = 10.0


def _choose_estimators(logged: DataFrame, estimators: Sequence[str] | None) -> tuple[str, ...]:
    if estimators is None:
        has_model = "expected_rewards" in logged.columns
        return tuple(ESTIMATORS) if has_model else WEIGHT_ONLY
    if isinstance(estimators, str):
        estimators = [estimators]
    chosen = tuple(dict.fromkeys(estimators))
    unknown = [name for name in chosen if name not in ESTIMATORS]
    if unknown or not chosen:
        raise ValueError(
            f"unknown estimator(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from {', '.join(ESTIMATORS)}"
        )
    return tuple(name for name in ESTIMATORS if name in chosen)


def _check_options(*, n_bootstrap: int, alpha: float, clip: float, switch_tau: float, seed: int) -> None:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be a non-negative integer, got {n_bootstrap!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not clip > 0:
        raise ValueError(f"clip must be positive, got {clip!r}")
    if not switch_tau > 0:
        raise ValueError(f"switch_tau must be positive, got {switch_tau!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer, got {seed!r}")


def _interval(values: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """Percentile interval and standard deviation of resampled values, ignoring NaN resamples."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan"), float("nan")
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    spread = float(np.std(finite, ddof=1)) if finite.size > 1 else float("nan")
    return float(low), float(high), spread


def off_policy_estimates(
    logged: DataFrame,
    *,
    estimators: Sequence[str] | None = None,
    n_bootstrap: int = DEFAULT_N_BOOTSTRAP,
    alpha: float = 0.05,
    seed: int = DEFAULT_SEED,
    clip: float = DEFAULT_CLIP,
    switch_tau: float = DEFAULT_SWITCH_TAU,
    key_col: str | None = None,
) -> OpeResult:
    """Estimate the target policy's mean reward from logged bandit data.

    ``logged`` has ``action`` (string), ``reward`` (double), ``propensity`` (the logging policy's
    probability of the logged action, in (0, 1]), ``target_probs`` (map action → the evaluated
    policy's probability; a logged action missing from it has probability 0) and, for the
    model-based estimators, ``expected_rewards`` (map action → a reward model's prediction).

    ``estimators``: names from ``ips, snips, clipped_ips, dm, dr, sndr, switch_dr``; ``None`` runs all
    of them when ``expected_rewards`` is present, else the three weight-only ones. ``n_bootstrap``
    Poisson-bootstrap resamples give percentile intervals at level ``1 − alpha`` (0: no
    intervals). ``clip`` caps the weight of ``clipped_ips``; ``switch_tau`` is Switch-DR's
    threshold. ``key_col`` names a unique row id (e.g. ``decision_id``) that makes each row's
    resampling counts independent of partitioning; without it the row's position is used, which is
    reproducible for the same input read the same way.

    Raises :class:`ValueError` naming the problem for missing or mistyped columns, propensities
    outside (0, 1], null or NaN rewards, null actions, invalid ``target_probs``, or missing model
    predictions for actions the target policy can take.
    """
    chosen = _choose_estimators(logged, estimators)
    _check_options(n_bootstrap=n_bootstrap, alpha=alpha, clip=clip, switch_tau=switch_tau, seed=seed)
    if key_col is not None and key_col not in logged.columns:
        raise ValueError(f"key_col {key_col!r} is not a column of the logged data")
    model_based = any(ESTIMATORS[name].model_based for name in chosen)
    terms_df = prepare(logged, clip=clip, switch_tau=switch_tau, model_based=model_based)

    summary = summarise(terms_df, model_based=model_based)
    raise_for_invalid_rows(summary)

    resampled: dict[str, np.ndarray] | None = None
    if n_bootstrap > 0:
        needed = [t for name in chosen for t in ESTIMATORS[name].terms]
        resampled = bootstrap_sums(terms_df, key=key_col, terms=needed, seed=int(seed), n_resamples=n_bootstrap)

    results: dict[str, Estimate] = {}
    for name in chosen:
        value = float(estimate(name, summary.sums))
        low = high = spread = float("nan")
        if resampled is not None:
            low, high, spread = _interval(np.asarray(estimate(name, resampled)), alpha)
        results[name] = Estimate(
            estimator=name,
            value=value,
            ci_low=low,
            ci_high=high,
            ess=effective_sample_size(name, summary.sums),
            std_error=spread,
        )
    return OpeResult(
        estimates=results,
        diagnostics=summary.diagnostics,
        alpha=float(alpha),
        n_bootstrap=int(n_bootstrap),
        seed=int(seed),
        clip=float(clip),
        switch_tau=float(switch_tau),
    )
