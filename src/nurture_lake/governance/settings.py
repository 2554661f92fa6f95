"""Typed settings of the governance jobs, read from the ``governance`` and ``retention`` config sections.

Example YAML::

    governance:
      purge_log: true
      table_workers: 4
      dp: {epsilon: 1.0, sensitivity: 1.0, seed: null}
    retention:
      bronze.events_raw: 30d
      silver.events_quarantine: 30d
      gold.cadence_decisions: {window: 400d, column: decided_at}
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nurture_lake.config import ConfigError, NurtureConfig

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_window(text: str) -> timedelta:
    """``"30d"`` / ``"12h"`` / ``"90m"`` → :class:`~datetime.timedelta`; anything else raises ``ValueError``."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"window {text!r} must look like '30d', '12h' or '90m'")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


DEFAULT_TIME_COLUMNS: dict[str, str] = {
    "bronze.events_raw": "ingested_at",
    "silver.events": "occurred_at",
    "silver.events_quarantine": "ingested_at",
    "silver.consent_ledger": "occurred_at",
    "silver.identity_edges": "first_seen_at",
    "gold.cadence_decisions": "decided_at",
    "gold.decision_outcomes": "window_end",
    "ops.audit_runs": "started_at",
    "ops.access_log": "accessed_at",
    "ops.stream_metrics": "timestamp",
}
"""The time column retention filters on, per ``<layer>.<table>`` (override with ``{window, column}``)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class RetentionRule(_Frozen):
    window: str
    """How long rows are kept, e.g. ``30d``; older rows (by ``column``) are deleted and vacuumed."""
    column: str | None = None
    """Time column compared with the window; ``None``: the known column of the table."""

    @field_validator("window")
    @classmethod
    def _valid_window(cls, value: str) -> str:
        parse_window(value)
        return value

    @property
    def delta(self) -> timedelta:
        """The window as a :class:`timedelta`."""
        return parse_window(self.window)


DEFAULT_RETENTION: dict[str, RetentionRule] = {
    "bronze.events_raw": RetentionRule(window="30d"),
    "silver.events_quarantine": RetentionRule(window="30d"),
}
"""Retention when the config has no ``retention`` section: raw payloads and quarantine 30 days."""


class DpSettings(_Frozen):
    epsilon: float = Field(1.0, gt=0)
    """Privacy budget of one exported aggregate: smaller → more noise (Laplace scale = sensitivity / epsilon)."""
    sensitivity: float = Field(1.0, gt=0)
    """Largest change one lead can make to an aggregate cell (1 for counts)."""
    seed: int | None = None
    """Seed of the noise (tests, reproducible exports); ``None``: fresh randomness per export."""


class GovernanceSettings(_Frozen):
    purge_log: bool = True
    """After erasure/retention VACUUM, checkpoint and delete older ``_delta_log`` entries (they hold column stats)."""
    table_workers: int = Field(4, ge=1)
    """Tables erasure and retention search, delete from and purge at a time. On small tables each step is
    mostly driver latency (Delta log reads and commits), so a few side by side keep the cores busy."""
    lookup_row_limit: int = Field(100, ge=1)
    """Rows printed per table by ``nurture-lake lookup``."""
    dp: DpSettings = DpSettings()
    """Differential-privacy noise on aggregates exported for BI."""
    retention: dict[str, RetentionRule] = Field(default_factory=lambda: dict(DEFAULT_RETENTION))
    """Per ``<layer>.<table>`` retention, from the top-level ``retention`` section."""

    def time_column(self, key: str) -> str | None:
        """The time column of retention key ``<layer>.<table>``."""
        rule = self.retention.get(key)
        return (rule.column if rule and rule.column else None) or DEFAULT_TIME_COLUMNS.get(key)


def _rule(value: Any) -> Any:
    return {"window": value} if isinstance(value, str) else value


def governance_settings(cfg: NurtureConfig) -> GovernanceSettings:
    """Validate the ``governance`` and ``retention`` sections (missing → defaults)."""
    raw: dict[str, Any] = cfg.section("governance")
    if "retention" in cfg.extra:
        raw["retention"] = {k: _rule(v) for k, v in cfg.section("retention").items()}
    try:
        settings = GovernanceSettings(**raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"governance: {problems}") from None
    for key in settings.retention:
        if key.count(".") != 1:
            raise ConfigError(f"retention: key {key!r} must be '<layer>.<table>'")
        if settings.time_column(key) is None:
            raise ConfigError(f"retention.{key}: no known time column; give {{window: ..., column: ...}}")
    return settings


__all__ = [
    "DEFAULT_RETENTION",
    "DEFAULT_TIME_COLUMNS",
    "DpSettings",
    "GovernanceSettings",
    "RetentionRule",
    "governance_settings",
    "parse_window",
]
