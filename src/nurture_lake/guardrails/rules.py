"""The guardrail rules as plain Python: the per-lead evaluation twin of the Spark engine.

:func:`evaluate_lead` evaluates every rule for one lead exactly as
:func:`nurture_lake.guardrails.apply_guardrails` does in Spark (same rule names, blocked actions,
reasons and send times); tests prove the two agree. The small rule primitives here
(:func:`cap_count`, :func:`nearest_gap`, :func:`consent_allows`) are also what the invariant checker
replays decisions with.

Rules, in the order they are reported (each evaluated independently against every non-hold action;
an action is allowed when no rule blocks it; ``hold`` is always allowed):

``suppression``        a suppressed lead gets only hold
``consent``            per channel for the configured purpose (``opt_in`` needs an explicit grant)
``fatigue``            above the threshold only hold and the lighter channels remain
``budget``             spent + unit cost must stay within the channel's daily budget
``quiet_hours``        sends are deferred to the next allowed local moment (blocked only if none is found)
``max_touches_<w>``    / ``max_touches_<channel>_<w>``: no period of length w holds more than max touches,
                       counting past touches, pending decisions and the candidate at its (deferred) send time
``min_gap``            / ``min_gap_<channel>``: the candidate's send is at least the gap away from every touch

Example::

    result = evaluate_lead(LeadContext(lead_id="L1", region="us", decided_at=now,
                                       timezone="America/New_York"), config=gcfg,
                           action_space=space)
    result.allowed_actions    # ('hold', 'email@1d', ...)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nurture_lake.actions import HOLD, Action, ActionSpace
from nurture_lake.guardrails.config import CapRule, GuardrailConfig, GuardrailRules
from nurture_lake.guardrails.quiet_hours import (
    defer_micros,
    from_micros,
    local_micros,
    to_micros,
)

DEFAULT_TIMEZONE = "UTC"
_MINUTE = 60_000_000


@dataclass(frozen=True)
class Touch:
    """A touch that caps and gaps count: sent, or decided and pending (at its ``send_at``)."""

    channel: str | None
    at: datetime


@dataclass(frozen=True)
class LeadContext:
    """Everything the rules need about one lead at decision time (one row of the candidates)."""

    lead_id: str
    region: str | None
    decided_at: datetime
    timezone: str | None = None
    consent: Mapping[str, bool | None] | None = None
    suppressed: bool | None = False
    suppression_reason: str | None = None
    fatigue_score: float | None = None
    touch_times: Sequence[Touch] = ()
    budget_spent: Mapping[str, float | None] | None = None


@dataclass(frozen=True)
class GuardrailResult:
    """One rule's verdict (``GUARDRAIL_RESULT``)."""

    rule: str
    passed: bool
    blocked_actions: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class LeadEvaluation:
    """The allowed actions, every rule's result, and each allowed touch's send time (UTC)."""

    allowed_actions: tuple[str, ...]
    guardrails: tuple[GuardrailResult, ...]
    send_at: dict[str, datetime] = field(default_factory=dict)


# ------------------------------------------------------------------------------ formatting


def fmt_utc(micros: int) -> str:
    """``yyyy-MM-dd HH:mm:ss`` of a UTC instant (same text as Spark's ``date_format``)."""
    return from_micros(micros).strftime("%Y-%m-%d %H:%M:%S")


def fmt_local(local: int) -> str:
    """``yyyy-MM-dd HH:mm`` of a local wall time."""
    return from_micros(local).strftime("%Y-%m-%d %H:%M")


def fmt_num(value: float) -> str:
    return "%.2f" % value


def cap_rule_name(cap: CapRule, channel: str | None = None) -> str:
    """``max_touches_7d`` (all channels) or ``max_touches_email_7d``."""
    return f"max_touches_{cap.window}" if channel is None else f"max_touches_{channel}_{cap.window}"


def gap_rule_name(channel: str | None = None) -> str:
    """``min_gap`` (all channels) or ``min_gap_email``."""
    return "min_gap" if channel is None else f"min_gap_{channel}"


def quiet_label(rules: GuardrailRules) -> str:
    """How reasons name the quiet window, e.g. ``21:00-08:00`` or ``21:00-08:00 + days 6,7``."""
    qh = rules.quiet_hours
    label = f"{qh.start}-{qh.end}"
    if qh.weekend_days:
        label += " + days " + ",".join(str(d) for d in qh.weekend_days)
    return label


# ------------------------------------------------------------------------------ primitives


def cap_count(touches: Sequence[int], send: int, window: int) -> int:
    """Most touches in any half-open period ``[x, x + window)`` that contains ``send``, the send included.

    Only periods starting at ``send`` or at a touch in ``(send - window, send]`` can be the largest.
    """
    starts = [send] + [t for t in touches if send - window < t <= send]
    return max(sum(1 for t in touches if x <= t < x + window) for x in starts) + 1


def nearest_gap(touches: Sequence[int], send: int) -> int | None:
    """Distance (µs) from ``send`` to the nearest touch on either side; ``None`` without touches."""
    return min((abs(t - send) for t in touches), default=None)


def consent_allows(consent: Mapping[str, bool | None] | None, channel: str, mode: str) -> tuple[bool, str]:
    """Whether ``channel`` may be used: its own entry, else the ``all`` entry, else the mode's default."""
    consent = consent or {}
    value = consent.get(channel)
    if value is None:
        value = consent.get("all")
    if value is False:
        return False, f"{channel}: revoked"
    if value is None and mode == "opt_in":
        return False, f"{channel}: no grant (opt_in)"
    return True, ""


def _scope(touches: Sequence[Touch], channel: str | None) -> list[int]:
    return [to_micros(t.at) for t in touches if t.at is not None and (channel is None or t.channel == channel)]


# ------------------------------------------------------------------------------ evaluation


def _result(rule: str, blocked: list[str], details: list[str], passed_reason: str, prefix: str = "") -> GuardrailResult:
    if blocked:
        return GuardrailResult(rule, False, tuple(blocked), prefix + "; ".join(details))
    return GuardrailResult(rule, True, (), passed_reason)


def evaluate_lead(
    lead: LeadContext, *, config: GuardrailConfig | GuardrailRules, action_space: ActionSpace,
) -> LeadEvaluation:
    """Evaluate every rule for one lead; the Python twin of the Spark engine.

    ``config`` is the whole :class:`GuardrailConfig` (the lead's region picks the rules) or one
    region's resolved :class:`GuardrailRules`.
    """
    rules = config.for_region(lead.region) if isinstance(config, GuardrailConfig) else config
    touches = [a for a in action_space.actions if not a.is_hold]
    channels = list(dict.fromkeys(a.channel for a in touches if a.channel is not None))
    decided = to_micros(lead.decided_at)
    zone = lead.timezone or DEFAULT_TIMEZONE
    results: list[GuardrailResult] = []

    def by_channel(rule: str, bad: dict[str, str], passed_reason: str, prefix: str = "") -> GuardrailResult:
        blocked = [a.action_id for a in touches if a.channel in bad]
        details = [bad[c] for c in channels if c in bad]
        return _result(rule, blocked, details, passed_reason, prefix)

    # suppression
    if rules.suppression.enabled and lead.suppressed:
        why = f"lead suppressed: {lead.suppression_reason or 'unspecified'}"
        results.append(GuardrailResult("suppression", not touches, tuple(a.action_id for a in touches), why))
    else:
        results.append(GuardrailResult(
            "suppression", True, (), "lead not suppressed" if rules.suppression.enabled else "suppression disabled",
        ))

    # consent
    mode, purpose = rules.consent.mode, rules.consent.purpose
    bad = {}
    for channel in channels:
        ok, detail = consent_allows(lead.consent, channel, mode)
        if not ok:
            bad[channel] = detail
    results.append(by_channel("consent", bad, f"purpose {purpose}, {mode}: all channels allowed", f"purpose {purpose}: "))

    # fatigue
    threshold, score = rules.fatigue.threshold, lead.fatigue_score
    if threshold is None:
        results.append(GuardrailResult("fatigue", True, (), "fatigue rule disabled"))
    elif score is None or math.isnan(score):
        results.append(GuardrailResult("fatigue", True, (), "fatigue score unknown"))
    elif score > threshold:
        lighter = rules.fatigue.lighter_channels
        why = f"fatigue score {fmt_num(score)} > {fmt_num(threshold)}: only hold" + "".join(f", {c}" for c in lighter)
        blocked = [a.action_id for a in touches if a.channel not in lighter]
        results.append(GuardrailResult("fatigue", not blocked, tuple(blocked), why))
    else:
        results.append(GuardrailResult("fatigue", True, (), f"fatigue score {fmt_num(score)} <= {fmt_num(threshold)}"))

    # budget
    bad = {}
    for channel in channels:
        daily = rules.budget.daily.get(channel)
        if daily is None:
            continue
        spent = (lead.budget_spent or {}).get(channel)
        spent = 0.0 if spent is None else float(spent)
        cost = rules.budget.cost(channel)
        if spent + cost > daily:
            bad[channel] = (
                f"{channel}: spent {fmt_num(spent)} + cost {fmt_num(cost)} > daily budget {fmt_num(daily)}"
            )
    results.append(by_channel("budget", bad, "within daily budgets" if rules.budget.daily else "no budgets configured"))

    # quiet hours: every touch gets a send time
    qh = rules.quiet_hours
    send: dict[str, int] = {}
    blocked, items = [], []
    for action in touches:
        base = decided + _wait_micros(action)
        if action.channel is not None and qh.applies_to(action.channel):
            moved, ok = defer_micros(base, zone, qh)
        else:
            moved, ok = base, True
        send[action.action_id] = moved
        if not ok:
            blocked.append(action.action_id)
            items.append(f"{action.action_id}: blocked, still quiet at {fmt_local(local_micros(moved, zone))}")
        elif moved != base:
            items.append(
                f"{action.action_id}: deferred {fmt_local(local_micros(base, zone))} -> "
                f"{fmt_local(local_micros(moved, zone))}"
            )
    if not qh.active:
        results.append(GuardrailResult("quiet_hours", True, (), "quiet hours disabled"))
    else:
        header = f"{quiet_label(rules)} {zone}: "
        results.append(GuardrailResult(
            "quiet_hours", not blocked, tuple(blocked), header + ("; ".join(items) if items else "no send in quiet hours"),
        ))

    # caps
    cap_scopes: list[tuple[str | None, CapRule]] = [(None, cap) for cap in rules.caps]
    cap_scopes += [(c, cap) for c, caps in rules.channel_caps.items() for cap in caps]
    for scope, cap in cap_scopes:
        history = _scope(lead.touch_times, scope)
        blocked, details = [], []
        for action in touches:
            if scope is not None and action.channel != scope:
                continue
            at = send[action.action_id]
            count = cap_count(history, at, cap.window_micros)
            if count > cap.max:
                blocked.append(action.action_id)
                details.append(f"{action.action_id} at {fmt_utc(at)}: {count} touches in {cap.window} > max {cap.max}")
        what = "touches" if scope is None else f"{scope} touches"
        results.append(_result(cap_rule_name(cap, scope), blocked, details, f"at most {cap.max} {what} per {cap.window}"))

    # gaps
    gap_scopes: list[tuple[str | None, str]] = [(None, rules.min_gap)] if rules.min_gap else []
    gap_scopes += list(rules.channel_min_gap.items())
    for scope, gap_text in gap_scopes:
        gap = rules.min_gap_micros(scope) or 0
        history = _scope(lead.touch_times, scope)
        blocked, details = [], []
        for action in touches:
            if scope is not None and action.channel != scope:
                continue
            at = send[action.action_id]
            nearest = nearest_gap(history, at)
            if nearest is not None and nearest < gap:
                blocked.append(action.action_id)
                details.append(
                    f"{action.action_id} at {fmt_utc(at)}: nearest touch {nearest // _MINUTE} min away < {gap_text}"
                )
        results.append(_result(gap_rule_name(scope), blocked, details, f"touches at least {gap_text} apart"))

    blocked_any = {a for r in results for a in r.blocked_actions}
    allowed = (HOLD,) + tuple(a.action_id for a in touches if a.action_id not in blocked_any)
    send_at = {a: from_micros(send[a]) for a in allowed if a != HOLD}
    return LeadEvaluation(allowed, tuple(results), send_at)


def _wait_micros(action: Action) -> int:
    return (action.wait or timedelta(0)) // timedelta(microseconds=1)


def utc(moment: datetime) -> datetime:
    """Read a naive datetime as UTC (helper for callers holding Spark's naive UTC values)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
