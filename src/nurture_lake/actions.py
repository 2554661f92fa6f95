"""The action space and the reward specification, shared by simulator, policy, guardrails and scoring.

An action is ``"<channel>@<wait>"`` (touch the lead on ``channel`` after ``wait``) or ``"hold"``.
Both specs come from the ``policy`` section of the configuration.

Example::

    space = ActionSpace.from_config(cfg)
    space.action_ids          # ('hold', 'email@4h', 'email@1d', ...)
    space.parse("email@1d")   # Action(action_id='email@1d', channel='email', wait=timedelta(days=1))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nurture_lake.config import ConfigError, NurtureConfig, parse_duration

HOLD = "hold"


@dataclass(frozen=True)
class Action:
    """One action: a channel and a wait, or hold (channel and wait are ``None``)."""

    action_id: str
    channel: str | None
    wait: timedelta | None

    @property
    def is_hold(self) -> bool:
        return self.channel is None


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class ActionSpace(_Spec):
    channels: tuple[str, ...] = ("email", "push", "chat")
    """Channels the policy may use."""
    waits: tuple[str, ...] = ("4h", "1d", "3d", "7d")
    """Waits before the touch is sent, as durations (``4h``, ``1d``)."""
    hold: bool = True
    """Whether ``hold`` (no touch now) is an action."""

    @field_validator("waits")
    @classmethod
    def _valid_waits(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for wait in value:
            parse_duration(wait)
        return value

    @property
    def actions(self) -> tuple[Action, ...]:
        """Every action, ``hold`` first, then channel-major."""
        found = [Action(HOLD, None, None)] if self.hold else []
        found += [Action(f"{c}@{w}", c, parse_duration(w)) for c in self.channels for w in self.waits]
        return tuple(found)

    @property
    def action_ids(self) -> tuple[str, ...]:
        return tuple(a.action_id for a in self.actions)

    def parse(self, action_id: str) -> Action:
        """The :class:`Action` for an id of this space; ``ValueError`` otherwise."""
        for action in self.actions:
            if action.action_id == action_id:
                return action
        raise ValueError(f"unknown action {action_id!r}; known: {', '.join(self.action_ids)}")

    @classmethod
    def from_config(cls, cfg: NurtureConfig) -> ActionSpace:
        return _load(cls, cfg.section("policy").get("actions", {}), "policy.actions")


class RewardSpec(_Spec):
    window: str = "7d"
    """How long after a decision's send time its responses count."""
    default: float = 0.0
    """Reward of a decision whose window closes with no response."""
    weights: dict[str, float] = Field(default_factory=lambda: {
        "email_open": 0.1, "email_click": 1.0, "email_reply": 5.0,
        "push_open": 0.3, "chat_reply": 5.0, "sms_click": 1.0, "sms_reply": 5.0,
        "meeting_booked": 10.0, "opportunity_created": 15.0, "deal_won": 25.0,
        "email_unsubscribe": -5.0, "sms_unsubscribe": -5.0, "email_complaint": -10.0,
    })
    """Reward per attributed event type."""
    channel_cost: dict[str, float] = Field(default_factory=lambda: {
        "email": 0.05, "push": 0.02, "chat": 0.3, "sms": 0.1,
    })
    """Cost subtracted once per touch on a channel."""
    harm_events: tuple[str, ...] = ("email_unsubscribe", "sms_unsubscribe", "email_complaint")
    """Event types counted as harm by the promotion gate."""

    @field_validator("window")
    @classmethod
    def _valid_window(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def window_delta(self) -> timedelta:
        return parse_duration(self.window)

    @classmethod
    def from_config(cls, cfg: NurtureConfig) -> RewardSpec:
        return _load(cls, cfg.section("policy").get("reward", {}), "policy.reward")


def _load(model: type[Any], raw: dict[str, Any], where: str) -> Any:
    try:
        return model(**raw)
    except Exception as exc:  # pydantic.ValidationError or ValueError from a validator
        raise ConfigError(f"{where}: {exc}") from None
