"""The frozen result of an off-policy evaluation, with table and MLflow-metric views."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from nurture_lake.evaluation.diagnostics import Diagnostics


@dataclass(frozen=True)
class Estimate:
    """One estimator's value with its percentile bootstrap interval and effective sample size.

    ``ci_low``/``ci_high`` are NaN when no bootstrap was run (``n_bootstrap=0``).
    """

    estimator: str
    value: float
    """Point estimate of the target policy's mean reward per decision."""
    ci_low: float
    """Lower end of the percentile interval, the ``alpha/2`` quantile of the resampled values."""
    ci_high: float
    """Upper end, the ``1 − alpha/2`` quantile."""
    ess: float
    """Kish ESS of the weights this estimator puts on observed rewards (DM: ``n``)."""
    std_error: float
    """Standard deviation of the resampled values (NaN without a bootstrap)."""

    @property
    def has_interval(self) -> bool:
        """Whether the interval was estimated."""
        return not (math.isnan(self.ci_low) or math.isnan(self.ci_high))


ROW_COLUMNS: tuple[str, ...] = (
    "estimator", "value", "ci_low", "ci_high", "std_error", "ess",
    "n", "diag_ess", "max_weight", "mean_weight", "unsupported_mass",
    "alpha", "n_bootstrap", "seed", "clip", "switch_tau",
)
"""Columns of :meth:`OpeResult.to_rows` / :meth:`OpeResult.to_pandas`, in order."""


@dataclass(frozen=True)
class OpeResult:
    """Estimates by estimator name, diagnostics, and the settings that produced them."""

    estimates: dict[str, Estimate]
    diagnostics: Diagnostics
    alpha: float
    n_bootstrap: int
    seed: int
    clip: float
    switch_tau: float

    def to_rows(self) -> list[dict[str, object]]:
        """One flat dict per estimator (columns :data:`ROW_COLUMNS`), diagnostics repeated on each."""
        diag = self.diagnostics
        return [
            {
                "estimator": est.estimator,
                "value": est.value,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
                "std_error": est.std_error,
                "ess": est.ess,
                "n": diag.n,
                "diag_ess": diag.ess,
                "max_weight": diag.max_weight,
                "mean_weight": diag.mean_weight,
                "unsupported_mass": diag.unsupported_mass,
                "alpha": self.alpha,
                "n_bootstrap": self.n_bootstrap,
                "seed": self.seed,
                "clip": self.clip,
                "switch_tau": self.switch_tau,
            }
            for est in self.estimates.values()
        ]

    def to_pandas(self) -> pd.DataFrame:
        """The rows of :meth:`to_rows` as a pandas frame (one row per estimator)."""
        return pd.DataFrame(self.to_rows(), columns=list(ROW_COLUMNS))

    def to_metrics(self, prefix: str = "ope") -> dict[str, float]:
        """Flat finite metrics for ``mlflow.log_metrics``: ``<prefix>_<estimator>_<field>`` and diagnostics."""
        metrics: dict[str, float] = {}
        for est in self.estimates.values():
            for name in ("value", "ci_low", "ci_high", "std_error", "ess"):
                metrics[f"{prefix}_{est.estimator}_{name}"] = float(getattr(est, name))
        for name, value in self.diagnostics.to_dict().items():
            metrics[f"{prefix}_diag_{name}"] = float(value)
        return {k: v for k, v in metrics.items() if math.isfinite(v)}
