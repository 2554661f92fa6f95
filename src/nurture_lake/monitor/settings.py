"""The ``monitor`` configuration section: drift thresholds and service-level objectives."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nurture_lake.config import ConfigError, NurtureConfig

__all__ = ["MonitorSettings"]


class MonitorSettings(BaseModel):
    """Validated ``monitor:`` section; every field has a default so the section may be absent."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    psi_bins: int = Field(10, ge=2, le=100)
    """Number of PSI bins; edges are the training snapshot's quantiles."""
    psi_epsilon: float = Field(1e-4, gt=0.0, lt=0.01)
    """Share used in place of an empty bin's zero so PSI stays finite."""
    psi_warn: float = Field(0.1, ge=0.0)
    """PSI at or above this is a ``warn`` (moderate shift)."""
    psi_alert: float = Field(0.25, ge=0.0)
    """PSI at or above this is an ``alert`` (significant shift; breaks the drift SLO)."""
    drift_baseline_version: int | None = Field(None, ge=0)
    """Delta version of ``gold.lead_features`` used as the training snapshot; ``None``: see ``drift_baseline_age``."""
    drift_baseline_age: str = "7d"
    """Without a pinned version: the newest table version at least this old, else the previous version."""
    slo_freshness_p95_minutes: float = Field(60.0, gt=0.0)
    """Decision freshness SLO: p95 of (decided_at − trigger event occurred_at) on the latest day, in minutes."""
    slo_quarantine_rate: float = Field(0.05, ge=0.0, le=1.0)
    """Quarantine SLO: quarantined / (silver + quarantined) rows ingested in the last ``slo_window_hours``."""
    slo_failed_runs: int = Field(0, ge=0)
    """Failed job runs in ``global.ops.audit_runs`` within the last ``slo_window_hours`` allowed."""
    slo_drift_alerts: int = Field(0, ge=0)
    """Features in ``alert`` state in the latest drift run allowed."""
    slo_window_hours: float = Field(24.0, gt=0.0)
    """Look-back window of the quarantine and failed-run SLOs."""

    @model_validator(mode="after")
    def _ordered(self) -> MonitorSettings:
        if self.psi_alert < self.psi_warn:
            raise ValueError("monitor.psi_alert must be >= monitor.psi_warn")
        return self

    @classmethod
    def from_config(cls, cfg: NurtureConfig) -> MonitorSettings:
        """Read ``cfg.section("monitor")``; invalid values raise :class:`ConfigError` naming the field."""
        raw: dict[str, Any] = cfg.section("monitor")
        try:
            return cls(**raw)
        except ValueError as exc:
            raise ConfigError(f"monitor: {exc}") from None
