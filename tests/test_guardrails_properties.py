"""Property tests of the guardrails: the Python twin on many random leads, a smaller sample cross-checked in Spark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from nurture_lake.actions import HOLD, ActionSpace
from nurture_lake.guardrails import GuardrailConfig, LeadContext, Touch, apply_guardrails, evaluate_lead
from nurture_lake.guardrails.quiet_hours import is_quiet, to_micros

SPACE = ActionSpace(channels=("email", "push", "chat"), waits=("30m", "4h", "1d", "3d"))
ZONES = ("America/New_York", "Europe/Berlin", "UTC", "Asia/Kolkata", "Australia/Lord_Howe")
# around the 2024 DST changes of New York and Berlin, and an ordinary summer day
ANCHORS = (datetime(2024, 3, 10, 7, tzinfo=UTC), datetime(2024, 11, 3, 6, tzinfo=UTC),
           datetime(2024, 3, 31, 1, tzinfo=UTC), datetime(2024, 10, 27, 1, tzinfo=UTC),
           datetime(2024, 7, 15, 12, tzinfo=UTC))
CANDIDATES = (
    "lead_id string, region string, decided_at timestamp, timezone string, consent map<string,boolean>, "
    "suppressed boolean, suppression_reason string, fatigue_score double, "
    "touch_times array<struct<channel:string,at:timestamp>>, budget_spent map<string,double>"
)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def configs(draw: st.DrawFn) -> GuardrailConfig:
    windows = draw(st.lists(st.sampled_from(["1h", "12h", "1d", "3d", "7d", "28d"]), unique=True, max_size=3))
    rules = {
        "caps": [{"window": w, "max": draw(st.integers(0, 4))} for w in windows],
        "channel_caps": {"email": [{"window": "7d", "max": draw(st.integers(0, 3))}]} if draw(st.booleans()) else {},
        "min_gap": draw(st.sampled_from([None, "30m", "4h", "12h"])),
        "channel_min_gap": {"push": "1d"} if draw(st.booleans()) else {},
        "quiet_hours": {
            "enabled": draw(st.booleans()),
            "start": _clock(draw(st.integers(0, 47)) * 30),
            "end": _clock(draw(st.integers(0, 47)) * 30),
            "weekend_days": draw(st.lists(st.integers(1, 7), unique=True, max_size=3)),
            "channels": draw(st.sampled_from([None, ["email", "chat"]])),
        },
        "fatigue": {"threshold": draw(st.sampled_from([None, 0.5, 0.8])),
                    "lighter_channels": draw(st.sampled_from([[], ["push"]]))},
        "budget": {"daily": {"chat": 5.0}, "unit_cost": {"chat": 1.25}},
        "regions": {"eu": {"caps": [{"window": "1d", "max": 1}], "consent": {"mode": "opt_in"}}},
    }
    return GuardrailConfig.from_mapping(rules)


@st.composite
def leads(draw: st.DrawFn, lead_id: str = "L") -> LeadContext:
    anchor = draw(st.sampled_from(ANCHORS))
    decided = anchor + timedelta(minutes=draw(st.integers(-3 * 24 * 60, 3 * 24 * 60)), seconds=draw(st.integers(0, 59)))
    touches = [
        Touch(draw(st.sampled_from(["email", "push", "chat"])),
              decided + timedelta(minutes=draw(st.integers(-10 * 24 * 60, 5 * 24 * 60))))
        for _ in range(draw(st.integers(0, 6)))
    ]
    consent = draw(st.dictionaries(st.sampled_from(["email", "push", "chat", "all"]), st.booleans(), max_size=3))
    return LeadContext(
        lead_id=lead_id, region=draw(st.sampled_from(["us", "eu"])), decided_at=decided,
        timezone=draw(st.sampled_from(ZONES)), consent=consent, suppressed=draw(st.booleans()) and draw(st.booleans()),
        suppression_reason="email_complaint", fatigue_score=draw(st.integers(0, 100)) / 100,
        touch_times=touches, budget_spent={"chat": draw(st.integers(0, 24)) / 4},
    )


def _max_in_any_window(points: list[int], send: int, window: int) -> int:
    """Independent check: the largest run of sorted points spanning less than ``window`` that includes ``send``."""
    ordered = sorted(points + [send])
    best = 0
    for i in range(len(ordered)):
        for j in range(i, len(ordered)):
            if ordered[j] - ordered[i] < window and ordered[i] <= send <= ordered[j]:
                best = max(best, j - i + 1)
    return best


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs(), lead=leads())
def test_allowed_actions_respect_every_rule(config: GuardrailConfig, lead: LeadContext) -> None:
    result = evaluate_lead(lead, config=config, action_space=SPACE)
    rules = config.for_region(lead.region)
    assert result.allowed_actions[0] == HOLD
    assert set(result.send_at) == set(result.allowed_actions) - {HOLD}
    decided = to_micros(lead.decided_at)
    for action_id in result.allowed_actions[1:]:
        action = SPACE.parse(action_id)
        send = to_micros(result.send_at[action_id])
        assert send >= decided + action.wait // timedelta(microseconds=1)
        if rules.quiet_hours.applies_to(action.channel):
            assert not is_quiet(send, lead.timezone, rules.quiet_hours), (action_id, result.send_at[action_id])
        every = [to_micros(t.at) for t in lead.touch_times]
        same = [to_micros(t.at) for t in lead.touch_times if t.channel == action.channel]
        for cap in rules.caps:
            assert _max_in_any_window(every, send, cap.window_micros) <= cap.max
        for cap in rules.channel_caps.get(action.channel, ()):
            assert _max_in_any_window(same, send, cap.window_micros) <= cap.max
        if rules.min_gap:
            assert all(abs(t - send) >= rules.min_gap_micros() for t in every)
        if action.channel in rules.channel_min_gap:
            assert all(abs(t - send) >= rules.min_gap_micros(action.channel) for t in same)
        assert not lead.suppressed
    # a quiet-hours deferral never drops an action by itself (only a pathological window can block)
    quiet = next(g for g in result.guardrails if g.rule == "quiet_hours")
    assert quiet.blocked_actions == () or rules.quiet_hours.active


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(config=configs(), batch=st.lists(leads(), min_size=15, max_size=15))
def test_spark_engine_agrees_with_the_python_twin(spark: SparkSession, config: GuardrailConfig,
                                                  batch: list[LeadContext]) -> None:
    batch = [LeadContext(**{**lead.__dict__, "lead_id": f"L{i:02d}"}) for i, lead in enumerate(batch)]
    rows = [
        (lead.lead_id, lead.region, lead.decided_at, lead.timezone, dict(lead.consent or {}), lead.suppressed,
         lead.suppression_reason, lead.fatigue_score, [(t.channel, t.at) for t in lead.touch_times],
         dict(lead.budget_spent or {}))
        for lead in batch
    ]
    out = apply_guardrails(spark.createDataFrame(rows, CANDIDATES), config=config, action_space=SPACE)
    got = {r["lead_id"]: r for r in out.select("lead_id", "allowed_actions", "guardrails", "send_at").collect()}
    for lead in batch:
        expected = evaluate_lead(lead, config=config, action_space=SPACE)
        row = got[lead.lead_id]
        assert tuple(row["allowed_actions"]) == expected.allowed_actions, lead
        assert {a: t.replace(tzinfo=UTC) for a, t in row["send_at"].items()} == expected.send_at, lead
        assert [(g.rule, g.passed, tuple(g.blocked_actions), g.reason) for g in row["guardrails"]] == [
            (g.rule, g.passed, g.blocked_actions, g.reason) for g in expected.guardrails
        ], lead
