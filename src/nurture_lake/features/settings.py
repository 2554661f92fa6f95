"""The ``features`` configuration section and the event-type families the features are built from.

Example (``conf/<env>.yaml``)::

    features:
      windows_days: [1, 7, 28, 90]
      fatigue_half_life_hours: 72
      recency_cap_hours: 720

    settings = FeatureSettings.from_config(cfg)
    settings.feature_version      # 'f1-3b9c0e1d2a4f' — changes whenever a definition changes
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from nurture_lake.config import ConfigError, NurtureConfig
from nurture_lake.schemas import EVENT_TYPES

FEATURE_LOGIC_VERSION = "f2"
"""Bumped by hand whenever the *code* of a feature definition changes (settings are hashed separately)."""

ENGAGEMENT_KINDS: tuple[str, ...] = ("open", "click", "reply")
"""Per-channel engagement kinds; ``<channel>_<kind>`` exists in the contract for some channels only."""

ORGANIC_ENGAGEMENT_TYPES: tuple[str, ...] = (
    "web_visit", "form_submit", "meeting_booked", "opportunity_created", "deal_won",
)
"""Engagements that belong to no touch channel but still count as the lead engaging."""

UNSUBSCRIBE_TYPES: tuple[str, ...] = ("email_unsubscribe", "sms_unsubscribe", "email_complaint")
"""Events that put a lead into the ``unsubscribed`` lifecycle stage."""

LIFECYCLE_STAGES: tuple[str, ...] = ("new", "engaged", "meeting", "opportunity", "customer", "unsubscribed")
"""Lifecycle stages, in the order of their one-hot columns."""

CRM_STAGES: tuple[str, ...] = ("new", "engaged", "mql", "sql", "dormant")
"""Values of the CRM's ``lifecycle_stage`` property on ``lead_created`` events, in the order of their one-hots."""

DAYPARTS: tuple[str, ...] = ("weekday_night", "weekday_morning", "weekday_afternoon", "weekday_evening", "weekend")
"""Local day-part buckets of the engagement profile: weekday 0–6h, 6–12h, 12–18h, 18–24h, and Sat/Sun."""

FEATURE_FAMILIES: tuple[str, ...] = (
    "count", "rate", "touches", "recency", "profile", "fatigue", "lifecycle", "local_time", "crm_stage", "affinity",
)
"""The families of :func:`~nurture_lake.features.columns.describe_features`; ``context_families`` picks among them."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class FeatureSettings(_Frozen):
    """Options of the feature layer (``features`` section). Every field changes ``feature_version``."""

    windows_days: tuple[int, ...] = (1, 7, 28, 90)
    """Count/rate windows in days; a window of ``w`` days covers ``(as_of - w days, as_of]``."""
    channels: tuple[str, ...] = ("email", "push", "chat", "sms")
    """Touch channels (each must have a ``<channel>_sent`` event type)."""
    fatigue_half_life_hours: float = 72.0
    """Half-life of the fatigue score: an unanswered touch this old weighs 0.5."""
    recency_cap_hours: float = 720.0
    """Recency features are capped here; 'never' also reads as the cap. Must be <= lookback."""
    lookback_days: int = 90
    """History that features may look at (profile, fatigue, recency); must cover the longest window."""
    rate_prior_engagements: float = 0.5
    """Pseudo-engagements added to every rate's numerator (Beta prior ``alpha``)."""
    rate_prior_touches: float = 5.0
    """Pseudo-touches added to every rate's denominator (``alpha + beta``); prior mean = 0.5 / 5 = 0.1."""
    profile_prior: float = 1.0
    """Pseudo-engagements added to every day-part bucket, so a lead with no engagement gets a uniform profile."""
    send_offsets_hours: tuple[int, ...] = (0, 4)
    """Send times (hours after ``as_of``) whose local hour the ``hour_match_<o>h`` features score; whole-day
    waits keep the hour of ``as_of``, so ``0`` covers them."""
    quiet_hours: tuple[int, int] | None = (21, 8)
    """Local ``[start, end)`` hours in which a send is deferred to ``end``; ``None``: sends go out at their
    offset. Left out of the ``features`` section, it follows ``guardrails.quiet_hours`` (see ``from_config``)."""
    hour_kernel_hours: float = 1.5
    """Width (sd, hours) of the Gaussian kernel that scores an engagement's local hour against a send hour."""
    hour_prior: float = 0.25
    """Pseudo-engagements per local hour (uniform) added to the hour-of-day profile."""
    context_families: tuple[str, ...] | None = None
    """Feature families that enter the bandit's context vector (``None``: all of them). The feature table
    keeps every column either way; fewer, more informative slots mean less estimation error per action."""

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(w <= 0 for w in value) or len(set(value)) != len(value):
            raise ValueError("windows_days must be distinct positive day counts")
        return tuple(sorted(value))

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for channel in value:
            if f"{channel}_sent" not in EVENT_TYPES:
                raise ValueError(f"channel {channel!r} has no '{channel}_sent' event type")
        if not value or len(set(value)) != len(value):
            raise ValueError("channels must be a non-empty list of distinct channels")
        return value

    @field_validator("context_families")
    @classmethod
    def _families(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(FEATURE_FAMILIES))
        if unknown or not value or len(set(value)) != len(value):
            raise ValueError(f"context_families must be distinct names among {', '.join(FEATURE_FAMILIES)}"
                             + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSettings:
        if self.fatigue_half_life_hours <= 0 or self.recency_cap_hours <= 0:
            raise ValueError("fatigue_half_life_hours and recency_cap_hours must be positive")
        if self.lookback_days < max(self.windows_days):
            raise ValueError("lookback_days must be at least the longest window")
        if self.recency_cap_hours > self.lookback_days * 24:
            raise ValueError("recency_cap_hours must not exceed lookback_days * 24")
        if self.rate_prior_engagements <= 0 or self.rate_prior_touches <= self.rate_prior_engagements:
            raise ValueError("need 0 < rate_prior_engagements < rate_prior_touches")
        if self.profile_prior <= 0 or self.hour_prior <= 0 or self.hour_kernel_hours <= 0:
            raise ValueError("profile_prior, hour_prior and hour_kernel_hours must be positive")
        offsets = self.send_offsets_hours
        if any(o < 0 for o in offsets) or len(set(offsets)) != len(offsets):
            raise ValueError("send_offsets_hours must be distinct non-negative hours")
        if self.quiet_hours is not None and not all(0 <= h < 24 for h in self.quiet_hours):
            raise ValueError("quiet_hours must be two local hours in [0, 24)")
        return self

    @classmethod
    def from_config(cls, cfg: NurtureConfig) -> FeatureSettings:
        """Read ``cfg.section("features")``; defaults for every missing field.

        ``quiet_hours``, when the section does not set it, follows ``guardrails.quiet_hours`` (the default
        rules; whole hours), so the features score the send hour the guardrails will actually allow.
        """
        section = dict(cfg.section("features"))
        if "quiet_hours" not in section:
            from nurture_lake.guardrails.config import GuardrailConfig  # the guardrails package imports features

            quiet = GuardrailConfig.from_config(cfg).defaults.quiet_hours
            section["quiet_hours"] = (int(quiet.start[:2]), int(quiet.end[:2])) if quiet.enabled else None
        try:
            return cls(**section)
        except ValidationError as exc:
            raise ConfigError(f"features: {exc}") from None

    @property
    def feature_version(self) -> str:
        """``<logic version>-<hash of these settings>``: equal strings mean identical definitions.

        ``context_families`` is left out: it picks what the bandit reads, not what a feature column means.
        """
        blob = json.dumps(self.model_dump(mode="json", exclude={"context_families"}), sort_keys=True)
        return f"{FEATURE_LOGIC_VERSION}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    # Event-type families -------------------------------------------------------------------------------

    def kinds(self, channel: str) -> tuple[str, ...]:
        """Engagement kinds that exist for ``channel`` in the event contract (e.g. push → ``('open',)``)."""
        return tuple(k for k in ENGAGEMENT_KINDS if f"{channel}_{k}" in EVENT_TYPES)

    @property
    def touch_types(self) -> tuple[str, ...]:
        """``<channel>_sent`` for every configured channel."""
        return tuple(f"{c}_sent" for c in self.channels)

    @property
    def channel_engagement_types(self) -> tuple[str, ...]:
        """``<channel>_<open|click|reply>`` that exist, for every configured channel."""
        return tuple(f"{c}_{k}" for c in self.channels for k in self.kinds(c))

    @property
    def engagement_types(self) -> tuple[str, ...]:
        """Every event type counted as engagement (channel engagements plus organic ones)."""
        return self.channel_engagement_types + ORGANIC_ENGAGEMENT_TYPES

    @property
    def stage_types(self) -> tuple[str, ...]:
        """Event types whose mere existence decides the lifecycle stage."""
        return self.engagement_types + UNSUBSCRIBE_TYPES

    @property
    def relevant_types(self) -> tuple[str, ...]:
        """Every event type any feature reads (others are dropped early)."""
        return tuple(dict.fromkeys(("lead_created", *self.touch_types, *self.stage_types)))


def settings_dict(settings: FeatureSettings) -> dict[str, Any]:
    """The settings as a plain mapping (for audit rows and MLflow params)."""
    return settings.model_dump(mode="json")
