"""The simulator's configuration: the ``simulator`` section of ``conf/<env>.yaml``.

Example::

    sim = SimulatorConfig.from_config(cfg, overrides={"leads": 500, "days": 3})
    sim.zones_for("us", cfg)   # ('America/New_York', 'America/Chicago', 'America/Los_Angeles')
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nurture_lake.config import ConfigError, NurtureConfig
from nurture_lake.schemas import QuarantineReason

BAD_KINDS: tuple[str, ...] = tuple(r for r in QuarantineReason.ALL)
"""Every bad-record kind the simulator can inject; each is named by the quarantine reason it must get."""

_DEFAULT_ZONES: dict[str, tuple[str, ...]] = {
    "us": ("America/New_York", "America/Chicago", "America/Los_Angeles"),
    "eu": ("Europe/Berlin", "Europe/London", "Europe/Paris"),
}


class SimulatorConfig(BaseModel):
    """Knobs of the simulated world (population, organic traffic, bad records, response model)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    seed: int = Field(7, ge=0)
    """Master seed: the same seed and settings give byte-identical landing files and the same world."""
    leads: int = Field(2000, ge=1)
    """Total leads in the population, split over the configured regions by ``region_shares``."""
    region_shares: dict[str, float] = Field(default_factory=dict)
    """Relative share of leads per region; regions not named get weight 1 (equal split when empty)."""
    start: date = date(2026, 9, 1)
    """First simulated day (UTC). Keep it in the past: ingest quarantines events far in its future."""
    days: int = Field(14, ge=1)
    """Simulated days of organic traffic."""
    events_per_lead_day: float = Field(1.0, gt=0)
    """Mean organic events per active lead per day (each lead's own rate varies around it)."""
    files_per_day: int = Field(4, ge=1)
    """Landing files per region and day; events land in the file of their arrival time slot."""
    bad_record_rate: float = Field(0.02, ge=0, lt=1)
    """Share of organic lines that are bad records (each with exactly one defect)."""
    bad_kind_weights: dict[str, float] = Field(default_factory=lambda: {k: 1.0 for k in BAD_KINDS})
    """Relative weight per bad kind (keys are quarantine reason codes); kinds not named get weight 0."""
    late_event_rate: float = Field(0.03, ge=0, lt=1)
    """Share of valid events that arrive 1–5 days after they occurred (valid, not quarantined)."""
    timezones: dict[str, tuple[str, ...]] = Field(default_factory=lambda: dict(_DEFAULT_ZONES))
    """IANA time zones leads of a region live in; regions not listed use their configured default zone."""
    anonymous_share: float = Field(0.03, ge=0, le=1)
    """Share of leads whose web identifiers never appear together with their e-mail (no form submit)."""
    two_cookie_share: float = Field(0.15, ge=0, le=1)
    """Share of leads browsing with two cookies (both linked through the device)."""
    consent_grant_prob: dict[str, float] = Field(
        default_factory=lambda: {"email": 0.75, "push": 0.45, "chat": 0.55, "sms": 0.35}
    )
    """``opt_in`` regions: probability that a lead grants marketing consent per channel after creation."""
    consent_revoke_prob: float = Field(0.12, ge=0, le=1)
    """``opt_in`` regions: probability that a granted consent is revoked later within the horizon."""
    opt_out_revoke_prob: float = Field(0.03, ge=0, le=1)
    """``opt_out`` regions: probability per channel that a lead revokes (opts out) within the horizon."""
    fatigue_window_days: float = Field(7.0, gt=0)
    """Touches within this many days before a send make the lead tired (lower response, more harm)."""

    @field_validator("bad_kind_weights")
    @classmethod
    def _known_kinds(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(BAD_KINDS))
        if unknown:
            raise ValueError(f"unknown bad kinds {unknown}; known: {', '.join(BAD_KINDS)}")
        if any(w < 0 for w in value.values()):
            raise ValueError("bad kind weights must be >= 0")
        return value

    @field_validator("timezones")
    @classmethod
    def _known_zones(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for region, zones in value.items():
            if not zones:
                raise ValueError(f"timezones.{region}: at least one zone is required")
            for zone in zones:
                try:
                    ZoneInfo(zone)
                except (ZoneInfoNotFoundError, ValueError) as exc:
                    raise ValueError(f"timezones.{region}: unknown time zone {zone!r}") from exc
        return value

    def zones_for(self, region: str, cfg: NurtureConfig) -> tuple[str, ...]:
        """The time zones of ``region``'s leads (the region's default zone when not configured)."""
        return tuple(self.timezones.get(region) or (cfg.regions[region].timezone,))

    def bad_weights(self) -> dict[str, float]:
        """Normalised bad-kind weights (zero-weight kinds dropped); empty when all weights are 0."""
        total = sum(self.bad_kind_weights.values())
        return {k: w / total for k, w in self.bad_kind_weights.items() if w > 0} if total > 0 else {}

    @classmethod
    def from_config(cls, cfg: NurtureConfig, *, overrides: dict[str, Any] | None = None) -> SimulatorConfig:
        """Read ``cfg.section("simulator")``; ``overrides`` (e.g. from CLI flags) win; ``None`` values are ignored."""
        raw = cfg.section("simulator")
        raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
        try:
            return cls(**raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"simulator.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(problems) from None
