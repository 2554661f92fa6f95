"""Declarative guardrail configuration: global defaults with per-region overrides.

The ``guardrails`` section of the configuration holds the default rules; ``guardrails.regions.<code>``
holds partial overrides that are deep-merged over them (mappings merge key by key, lists and scalars
replace). A region's consent mode defaults to ``regions.<code>.consent_mode`` of the main config
unless the guardrails section sets it explicitly.

Example::

    gcfg = GuardrailConfig.from_config(cfg)
    gcfg.for_region("eu").consent.mode     # 'opt_in'
    gcfg.for_region("us").caps             # (CapRule(window='1d', max=1), ...)
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nurture_lake.actions import parse_duration
from nurture_lake.config import ConfigError, NurtureConfig
from nurture_lake.schemas import SUPPRESSION_EVENT_TYPES

_MICROS_PER_MINUTE = 60_000_000


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def _clock_minutes(text: str) -> int:
    parts = text.strip().split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"time {text!r} must look like HH:MM")
    hours, minutes = int(parts[0]), int(parts[1])
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValueError(f"time {text!r} is not a clock time between 00:00 and 23:59")
    return hours * 60 + minutes


class CapRule(_Frozen):
    """At most ``max`` touches in any period of length ``window`` (half-open: touches exactly
    ``window`` apart are in different periods)."""

    window: str
    """Length of the rolling window, e.g. ``1d``, ``7d``, ``12h``."""
    max: int = Field(ge=0)
    """Most touches allowed in any such window, the candidate touch included."""

    @field_validator("window")
    @classmethod
    def _valid_window(cls, value: str) -> str:
        return _duration(value)

    @property
    def window_delta(self) -> timedelta:
        return parse_duration(self.window)

    @property
    def window_micros(self) -> int:
        return self.window_delta // timedelta(microseconds=1)


class ConsentRules(_Frozen):
    purpose: str = "marketing"
    """Consent purpose a touch needs (ledger rows with this purpose, or purpose ``all``, count)."""
    mode: Literal["opt_in", "opt_out"] = "opt_out"
    """``opt_in``: a channel needs an explicit grant; ``opt_out``: allowed unless revoked.
    A region's ``consent_mode`` (main config) beats this default; ``guardrails.regions.<code>.consent.mode``
    beats both."""


class SuppressionRules(_Frozen):
    enabled: bool = True
    """Whether a suppressed lead (unsubscribe, complaint, hard bounce, opt-out) gets only ``hold``."""
    event_types: tuple[str, ...] = SUPPRESSION_EVENT_TYPES
    """Event types that suppress a lead globally from the moment they occur (the checker's replay)."""
    soft_bounce_values: tuple[str, ...] = ("soft",)
    """``properties.bounce_type`` values of a bounce that is *not* hard (does not suppress)."""


class QuietHours(_Frozen):
    enabled: bool = True
    """Whether quiet hours apply."""
    start: str = "21:00"
    """Local clock time the quiet window starts (inclusive), ``HH:MM``."""
    end: str = "08:00"
    """Local clock time the quiet window ends (exclusive); ``end < start`` wraps midnight."""
    weekend_days: tuple[int, ...] = ()
    """ISO week days (1 = Monday … 7 = Sunday) that are quiet all day in local time, e.g. ``[6, 7]``."""
    channels: tuple[str, ...] | None = None
    """Channels subject to quiet hours; ``null`` means every channel."""

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        _clock_minutes(value)
        return value

    @field_validator("weekend_days")
    @classmethod
    def _days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < 1 or d > 7 for d in value):
            raise ValueError("weekend_days are ISO week days 1 (Monday) … 7 (Sunday)")
        if len(set(value)) >= 7:
            raise ValueError("weekend_days cannot cover the whole week")
        return tuple(sorted(set(value)))

    @property
    def start_micros(self) -> int:
        return _clock_minutes(self.start) * _MICROS_PER_MINUTE

    @property
    def end_micros(self) -> int:
        return _clock_minutes(self.end) * _MICROS_PER_MINUTE

    @property
    def active(self) -> bool:
        """Whether any local moment can be quiet."""
        return self.enabled and (self.start_micros != self.end_micros or bool(self.weekend_days))

    def applies_to(self, channel: str) -> bool:
        return self.active and (self.channels is None or channel in self.channels)


class FatigueRules(_Frozen):
    threshold: float | None = 0.8
    """Fatigue score above which only ``hold`` and ``lighter_channels`` remain; ``null`` disables."""
    lighter_channels: tuple[str, ...] = ()
    """Channels still allowed to a fatigued lead (e.g. ``push``)."""


class BudgetRules(_Frozen):
    daily: dict[str, float] = Field(default_factory=dict)
    """Daily budget per channel (per region, UTC day of ``decided_at``); channels absent are unlimited."""
    unit_cost: dict[str, float] = Field(default_factory=dict)
    """Cost of one touch per channel; channels absent cost 1.0 (the budget then counts touches)."""

    @field_validator("daily", "unit_cost")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for channel, amount in value.items():
            if amount < 0:
                raise ValueError(f"{channel}: must be >= 0, got {amount}")
        return value

    def cost(self, channel: str) -> float:
        return float(self.unit_cost.get(channel, 1.0))


class GuardrailRules(_Frozen):
    """The resolved rules of one region (defaults with the region's overrides applied)."""

    consent: ConsentRules = ConsentRules()
    """Consent per channel and purpose."""
    suppression: SuppressionRules = SuppressionRules()
    """Global suppression."""
    caps: tuple[CapRule, ...] = (CapRule(window="1d", max=1), CapRule(window="7d", max=3), CapRule(window="28d", max=8))
    """Touch caps over all channels, every window enforced at once."""
    channel_caps: dict[str, tuple[CapRule, ...]] = Field(default_factory=lambda: {"email": (CapRule(window="7d", max=2),)})
    """Touch caps per channel (touches on that channel only)."""
    min_gap: str | None = "12h"
    """Minimum time between any two touches (either side of the candidate); ``null`` disables."""
    channel_min_gap: dict[str, str] = Field(default_factory=dict)
    """Minimum time between two touches on the same channel."""
    quiet_hours: QuietHours = QuietHours()
    """Quiet hours in the lead's local time: sends are deferred, not dropped."""
    fatigue: FatigueRules = FatigueRules()
    """Fatigue threshold."""
    budget: BudgetRules = BudgetRules()
    """Per-channel daily budgets."""
    max_exploration_rate: float = Field(0.2, ge=0.0, le=1.0)
    """Largest share of decisions the policy may spend on exploration: the learned policy's total probability
    on non-greedy actions (exploration floor included) is capped here when it is fitted (``train_policy``)."""

    @field_validator("min_gap")
    @classmethod
    def _gap(cls, value: str | None) -> str | None:
        return None if value is None else _duration(value)

    @field_validator("channel_min_gap")
    @classmethod
    def _gaps(cls, value: dict[str, str]) -> dict[str, str]:
        for gap in value.values():
            _duration(gap)
        return value

    @model_validator(mode="after")
    def _unique_cap_windows(self) -> GuardrailRules:
        scopes: list[tuple[str, tuple[CapRule, ...]]] = [("caps", self.caps)]
        scopes += [(f"channel_caps.{c}", caps) for c, caps in self.channel_caps.items()]
        for where, caps in scopes:
            windows = [c.window for c in caps]
            if len(set(windows)) != len(windows):
                raise ValueError(f"{where}: each window may appear once, got {windows}")
        return self

    def min_gap_micros(self, channel: str | None = None) -> int | None:
        """The global gap (``channel=None``) or a channel's gap, in microseconds."""
        text = self.min_gap if channel is None else self.channel_min_gap.get(channel)
        return None if text is None else parse_duration(text) // timedelta(microseconds=1)


class GuardrailConfig(_Frozen):
    """Default rules plus fully resolved rules per region that has overrides."""

    defaults: GuardrailRules = GuardrailRules()
    """Rules of every region without overrides."""
    regions: dict[str, GuardrailRules] = Field(default_factory=dict)
    """Resolved rules of regions with overrides (or a consent mode differing from the default)."""

    def for_region(self, region: str | None) -> GuardrailRules:
        """The rules that apply to ``region``."""
        return self.regions.get(region or "", self.defaults)

    @property
    def max_exploration_rate(self) -> float:
        """The default exploration cap (regions may override: use ``for_region``)."""
        return self.defaults.max_exploration_rate

    @property
    def strictest_exploration_rate(self) -> float:
        """The smallest exploration cap of any region: what a policy shared by every region must obey."""
        return min([self.defaults.max_exploration_rate, *(r.max_exploration_rate for r in self.regions.values())])

    @classmethod
    def from_mapping(
        cls,
        raw: dict[str, Any],
        *,
        region_consent_modes: dict[str, str] | None = None,
        where: str = "guardrails",
    ) -> GuardrailConfig:
        """Build from the raw ``guardrails`` mapping; ``ConfigError`` names the bad field."""
        base = copy.deepcopy(dict(raw or {}))
        overrides = base.pop("regions", None) or {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"{where}.regions: must be a mapping of region code to overrides")
        defaults = _rules(base, where)
        resolved: dict[str, GuardrailRules] = {}
        codes = set(overrides) | set(region_consent_modes or {})
        for code in sorted(codes):
            patch = overrides.get(code) or {}
            if not isinstance(patch, dict):
                raise ConfigError(f"{where}.regions.{code}: must be a mapping")
            merged = _deep_merge(base, patch)
            mode = (region_consent_modes or {}).get(code)
            if mode is not None and "mode" not in (patch.get("consent") or {}):
                merged.setdefault("consent", {})["mode"] = mode
            rules = _rules(merged, f"{where}.regions.{code}")
            if code in overrides or rules != defaults:
                resolved[code] = rules
        return cls(defaults=defaults, regions=resolved)

    @classmethod
    def from_config(cls, cfg: NurtureConfig) -> GuardrailConfig:
        """The guardrails of a :class:`NurtureConfig` (section ``guardrails``)."""
        modes = {code: region.consent_mode for code, region in cfg.regions.items()}
        return cls.from_mapping(cfg.section("guardrails"), region_consent_modes=modes)


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _rules(raw: dict[str, Any], where: str) -> GuardrailRules:
    try:
        return GuardrailRules(**raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" if err["loc"] else f"{where}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid guardrails configuration: {problems}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
