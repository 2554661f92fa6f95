"""The response model: what a touch on a channel makes a lead do, as a small tree of stages.

One tree serves both uses, so sampled responses and the analytical oracle cannot drift apart:
:func:`sample_stages` walks it with random draws; :func:`expected_value` and :func:`attributed_probs`
compute exact expectations of events attributed within the reward window.

A stage happens with probability ``prob`` given its parent happened (``on_absent`` stages: given it did
not), at ``anchor`` time + a uniform delay. Stage ranges are laid out so a child is always later than its
parent, which keeps the within-window arithmetic exact (see :func:`_within`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

H, D = 3600.0, 86400.0


@dataclass(frozen=True)
class Stage:
    """One possible response event."""

    event_type: str
    prob: float
    delay: tuple[float, float]
    """Uniform delay range in seconds after the anchor."""
    anchor: Literal["send", "parent"] = "send"
    children: tuple[Stage, ...] = ()
    on_absent: tuple[Stage, ...] = ()
    """Stages that may happen when this one does not (e.g. a bounce instead of a delivery)."""


@dataclass(frozen=True)
class TouchContext:
    """What the truths and the world's history imply for one touch."""

    engage: float
    """Base engagement probability: affinity × hour match × fatigue × lifecycle (capped)."""
    unsubscribe: float
    complaint: float
    conversion: float
    """P(meeting | reply)."""
    bounce: float
    permitted: bool
    """False when the lead has no consent on the channel, unsubscribed, or its address bounced hard."""
    reachable: bool = True
    """False when the lead has no address on the channel (e.g. SMS without a phone)."""


def _conversion_chain(ctx: TouchContext) -> tuple[Stage, ...]:
    deal = Stage("deal_won", 0.35, (14 * D, 45 * D))
    opportunity = Stage("opportunity_created", 0.5, (5 * D, 12 * D), children=(deal,))
    return (Stage("meeting_booked", ctx.conversion, (2 * D, 5 * D), children=(opportunity,)),)


def funnel(channel: str, ctx: TouchContext) -> tuple[Stage, ...]:
    """The stages that may follow ``<channel>_sent`` (which always happens at the send time)."""
    if not ctx.reachable:
        return ()
    chain = _conversion_chain(ctx)
    if channel == "email":
        if not ctx.permitted:
            if ctx.bounce >= 1.0:
                return (Stage("email_bounce", 1.0, (5, 600)),)
            harm = (Stage("email_complaint", 0.25, (1800, 2 * D)), Stage("email_unsubscribe", 0.3, (1800, 2 * D)))
            return (Stage("email_delivered", 1.0, (1, 120), children=harm),)
        opened = Stage("email_open", ctx.engage, (300, 12 * H), children=(
            Stage("email_click", 0.35, (60, H), anchor="parent"),
            Stage("email_reply", 0.2, (600, D), anchor="parent", children=chain),
        ))
        delivered = Stage(
            "email_delivered", 1.0 - ctx.bounce, (1, 120),
            children=(
                opened,
                Stage("email_unsubscribe", ctx.unsubscribe, (1800, 2 * D)),
                Stage("email_complaint", ctx.complaint, (1800, 2 * D)),
            ),
            on_absent=(Stage("email_bounce", 1.0, (5, 600)),),
        )
        return (delivered,)
    if not ctx.permitted:
        if channel == "sms":
            return (Stage("sms_delivered", 1.0, (1, 60), children=(Stage("sms_unsubscribe", 0.5, (1800, 2 * D)),)),)
        return ()
    if channel == "push":
        return (Stage("push_open", ctx.engage, (60, 6 * H)),)
    if channel == "chat":
        return (Stage("chat_reply", 0.6 * ctx.engage, (60, 12 * H), children=chain),)
    if channel == "sms":
        return (Stage("sms_delivered", 0.98, (1, 60), children=(
            Stage("sms_click", 0.4 * ctx.engage, (120, 6 * H)),
            Stage("sms_reply", 0.15 * ctx.engage, (120, 12 * H), children=chain),
            Stage("sms_unsubscribe", min(0.5, 1.5 * ctx.unsubscribe), (1800, 2 * D)),
        )),)
    raise ValueError(f"the simulated world has no channel {channel!r}")


def sample_stages(
    stages: tuple[Stage, ...], rng: np.random.Generator, send_at: float
) -> list[tuple[float, str]]:
    """Draw which stages happen and when: ``[(epoch seconds, event_type), ...]`` in tree order."""
    out: list[tuple[float, str]] = []

    def walk(level: tuple[Stage, ...], parent_at: float) -> None:
        for stage in level:
            if rng.random() < stage.prob:
                base = parent_at if stage.anchor == "parent" else send_at
                at = base + stage.delay[0] + rng.random() * (stage.delay[1] - stage.delay[0])
                out.append((at, stage.event_type))
                walk(stage.children, at)
            else:
                walk(stage.on_absent, parent_at)

    walk(stages, send_at)
    return out


def _uniform_cdf(x: float, lo: float, hi: float) -> float:
    if hi <= lo:
        return 1.0 if x >= lo else 0.0
    return min(max((x - lo) / (hi - lo), 0.0), 1.0)


def _ramp(x: float) -> float:
    return x * x / 2 if x > 0 else 0.0


def _sum_cdf(x: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    """P(U(a) + U(b) <= x) for independent uniforms (exact, piecewise quadratic)."""
    (a0, a1), (b0, b1) = a, b
    la, lb = a1 - a0, b1 - b0
    if la <= 0 or lb <= 0:
        return _uniform_cdf(x - (a0 if la <= 0 else b0), *(b if la <= 0 else a))
    total = _ramp(x - a0 - b0) - _ramp(x - a1 - b0) - _ramp(x - a0 - b1) + _ramp(x - a1 - b1)
    return min(max(total / (la * lb), 0.0), 1.0)


def _within(stage: Stage, parent_delay: tuple[float, float] | None, window: float) -> float:
    """P(the stage's time is within ``window`` of the send | it happens)."""
    if stage.anchor == "parent" and parent_delay is not None:
        return _sum_cdf(window, parent_delay, stage.delay)
    return _uniform_cdf(window, *stage.delay)


def attributed_probs(stages: tuple[Stage, ...], window: float) -> dict[str, float]:
    """Exact P(each event type happens within ``window`` seconds of the send), summed over stages."""
    out: dict[str, float] = {}

    def walk(level: tuple[Stage, ...], reach: float, parent_delay: tuple[float, float] | None) -> None:
        for stage in level:
            p = reach * stage.prob
            out[stage.event_type] = out.get(stage.event_type, 0.0) + p * _within(stage, parent_delay, window)
            walk(stage.children, p, stage.delay)
            walk(stage.on_absent, reach * (1 - stage.prob), parent_delay)

    walk(stages, 1.0, None)
    return out


def _prob_none(stages: tuple[Stage, ...], weights: dict[str, float], window: float,
               parent_delay: tuple[float, float] | None) -> float:
    """P(no event of a weighted type within the window) below a level (exact while children follow parents)."""
    none = 1.0
    for stage in stages:
        q = _within(stage, parent_delay, window)
        quiet_here = 0.0 if stage.event_type in weights else 1.0  # a weighted type counts as a response
        children = _prob_none(stage.children, weights, window, stage.delay)
        absent = _prob_none(stage.on_absent, weights, window, parent_delay)
        none *= (1 - stage.prob) * absent + stage.prob * ((1 - q) + q * quiet_here * children)
    return none


def expected_value(
    stages: tuple[Stage, ...], *, weights: dict[str, float], default: float, cost: float, window: float
) -> float:
    """E[reward] of a touch: Σ weights of attributed events (``default`` when no event of a weighted type
    is attributed) minus the channel cost — the rule of ``nurture_lake.outcomes.attribution``."""
    probs = attributed_probs(stages, window)
    gain = sum(weights.get(event, 0.0) * p for event, p in probs.items())
    if default:
        gain += default * _prob_none(stages, weights, window, None)
    return gain - cost


def clip_prob(value: float, cap: float = 0.95) -> float:
    """A probability kept inside ``[0, cap]`` (NaN → 0)."""
    return 0.0 if math.isnan(value) else min(max(value, 0.0), cap)
