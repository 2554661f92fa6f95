"""Typed settings for off-policy evaluation, read from the ``evaluation`` config section."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nurture_lake.config import ConfigError, NurtureConfig
from nurture_lake.evaluation.estimators import ESTIMATORS


class OpeSettings(BaseModel):
    """Options of :func:`~nurture_lake.evaluation.off_policy_estimates` as configuration.

    Example: ``off_policy_estimates(df, **OpeSettings.from_config(cfg).as_kwargs())``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    estimators: tuple[str, ...] | None = None
    """Estimators to run (ips, snips, clipped_ips, dm, dr, sndr, switch_dr); null: all the data supports."""
    n_bootstrap: int = Field(1000, ge=0)
    """Poisson-bootstrap resamples for the confidence intervals; 0 disables intervals."""
    alpha: float = Field(0.05, gt=0, lt=1)
    """Intervals are percentile intervals at level 1 − alpha."""
    seed: int = 0
    """Bootstrap seed: the same seed and row keys give the same intervals."""
    clip: float = Field(10.0, gt=0)
    """Weight cap of clipped IPS."""
    switch_tau: float = Field(10.0, gt=0)
    """Switch-DR uses only the reward model on rows whose importance weight exceeds this."""
    key_col: str | None = "decision_id"
    """Unique row id hashed for the bootstrap counts (stable across partitioning); null: row position."""

    @field_validator("estimators")
    @classmethod
    def _known(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            unknown = [v for v in value if v not in ESTIMATORS]
            if unknown or not value:
                raise ValueError(f"unknown estimator(s) {unknown}; choose from {list(ESTIMATORS)}")
        return value

    @classmethod
    def from_config(cls, cfg: NurtureConfig) -> OpeSettings:
        """Parse ``cfg.section("evaluation")``; defaults where absent, :class:`ConfigError` if invalid."""
        try:
            return cls(**cfg.section("evaluation"))
        except ValidationError as exc:
            problems = "; ".join(
                f"evaluation.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"invalid configuration: {problems}") from None

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``off_policy_estimates``."""
        return self.model_dump()
