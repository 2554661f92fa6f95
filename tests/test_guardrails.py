"""Guardrails: config, each rule with hand-computed expectations, DST, budgets, the checker and the job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from nurture_lake.actions import ActionSpace
from nurture_lake.config import ConfigError, NurtureConfig
from nurture_lake.guardrails import (
    GuardrailConfig,
    LeadContext,
    Touch,
    apply_guardrails,
    check_decisions,
    enforce_budgets,
    evaluate_lead,
    gate_budgets,
)
from nurture_lake.guardrails.config import QuietHours
from nurture_lake.guardrails.quiet_hours import defer_micros, from_micros, to_micros
from nurture_lake.guardrails.rules import cap_count
from nurture_lake.schemas import GOLD_CADENCE_DECISIONS, GUARDRAIL_RESULT, SILVER_CONSENT_LEDGER, SILVER_EVENTS
from nurture_lake.tables import Lake

CANDIDATES = (
    "lead_id string, region string, decided_at timestamp, timezone string, consent map<string,boolean>, "
    "suppressed boolean, suppression_reason string, fatigue_score double, "
    "touch_times array<struct<channel:string,at:timestamp>>, budget_spent map<string,double>"
)
SPACE = ActionSpace(channels=("email", "push"), waits=("4h", "1d"))
RULES = {
    "caps": [{"window": "1d", "max": 1}, {"window": "7d", "max": 2}],
    "channel_caps": {"email": [{"window": "7d", "max": 1}]},
    "min_gap": "12h",
    "quiet_hours": {"start": "21:00", "end": "08:00"},
    "fatigue": {"threshold": 0.8, "lighter_channels": ["push"]},
    "budget": {"daily": {"push": 10.0}, "unit_cost": {"push": 1.0}},
    "regions": {"eu": {"caps": [{"window": "1d", "max": 1}, {"window": "7d", "max": 1}]}},
}
GCFG = GuardrailConfig.from_mapping(RULES, region_consent_modes={"us": "opt_out", "eu": "opt_in"})
NY, BERLIN = "America/New_York", "Europe/Berlin"


def ts(text: str) -> datetime:
    """A UTC instant from ``YYYY-MM-DD HH:MM[:SS]``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def naive(text: str) -> datetime:
    """The naive UTC datetime Spark returns for a timestamp."""
    return datetime.fromisoformat(text)


def lead(lead_id: str, *, region: str = "us", decided: str = "2024-06-03 14:00", tz: str = NY, consent=None,
         suppressed: bool = False, reason: str | None = None, fatigue: float | None = 0.1,
         touches: tuple[tuple[str, str], ...] = (), spent=None) -> tuple:
    return (lead_id, region, ts(decided), tz, consent or {}, suppressed, reason, fatigue,
            [(c, ts(at)) for c, at in touches], spent or {})


def context(row: tuple) -> LeadContext:
    return LeadContext(
        lead_id=row[0], region=row[1], decided_at=row[2], timezone=row[3], consent=row[4], suppressed=row[5],
        suppression_reason=row[6], fatigue_score=row[7], touch_times=[Touch(c, at) for c, at in row[8]],
        budget_spent=row[9],
    )


# ---------------------------------------------------------------------------------------- config


def test_config_defaults_region_override_and_consent_mode(cfg: NurtureConfig) -> None:
    gcfg = GuardrailConfig.from_config(cfg)
    assert gcfg.for_region("us").consent.mode == "opt_out"
    assert gcfg.for_region("eu").consent.mode == "opt_in"  # from regions.eu.consent_mode
    assert [(c.window, c.max) for c in gcfg.defaults.caps] == [("1d", 1), ("7d", 3), ("28d", 8)]
    # deep merge: eu overrides only the quiet-hours end, keeps the default start
    merged = GuardrailConfig.from_mapping({"quiet_hours": {"start": "20:00"}, "regions": {"eu": {"quiet_hours": {"end": "09:00"}}}})
    assert (merged.for_region("eu").quiet_hours.start, merged.for_region("eu").quiet_hours.end) == ("20:00", "09:00")
    assert merged.for_region("us").quiet_hours.end == "08:00"
    assert [(c.window, c.max) for c in GCFG.for_region("eu").caps] == [("1d", 1), ("7d", 1)]


@pytest.mark.parametrize(("raw", "field"), [
    ({"caps": [{"window": "1d", "max": -1}]}, "guardrails.caps.0.max"),
    ({"quiet_hours": {"start": "25:00"}}, "guardrails.quiet_hours.start"),
    ({"regions": {"eu": {"min_gap": "3x"}}}, "guardrails.regions.eu.min_gap"),
    ({"quiet_hours": {"weekend_days": [8]}}, "guardrails.quiet_hours.weekend_days"),
    ({"budget": {"daily": {"email": -1}}}, "guardrails.budget.daily"),
    ({"unknown_rule": 1}, "guardrails.unknown_rule"),
])
def test_invalid_config_names_the_field(raw: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        GuardrailConfig.from_mapping(raw)


# ------------------------------------------------------------------------------ quiet hours / DST

QH = QuietHours(start="21:00", end="08:00")


@pytest.mark.parametrize(("zone", "instant", "expected"), [
    (NY, "2024-06-04 02:00", "2024-06-04 12:00"),       # 22:00 EDT -> 08:00 EDT, across midnight
    (NY, "2024-06-04 05:00", "2024-06-04 12:00"),       # 01:00 EDT (after midnight) -> 08:00 same day
    (NY, "2024-06-04 00:59", "2024-06-04 00:59"),       # 20:59 EDT: not quiet, unchanged
    (NY, "2024-06-04 01:00", "2024-06-04 12:00"),       # 21:00 EDT: quiet starts (inclusive)
    (NY, "2024-06-04 12:00", "2024-06-04 12:00"),       # 08:00 EDT: quiet ends (exclusive)
    (NY, "2024-03-10 03:30", "2024-03-10 12:00"),       # 22:30 EST -> 08:00 EDT (spring forward)
    (NY, "2024-11-03 03:00", "2024-11-03 13:00"),       # 23:00 EDT -> 08:00 EST (fall back)
    (BERLIN, "2024-03-30 23:00", "2024-03-31 06:00"),   # 00:00 CET -> 08:00 CEST
    (BERLIN, "2024-10-26 22:00", "2024-10-27 07:00"),   # 00:00 CEST -> 08:00 CET
])
def test_quiet_hours_defer_across_midnight_and_dst(zone: str, instant: str, expected: str) -> None:
    send, ok = defer_micros(to_micros(ts(instant)), zone, QH)
    assert ok and from_micros(send) == ts(expected)


def test_quiet_window_ending_in_a_dst_gap_or_overlap() -> None:
    # 01:45 EST in a 01:00-02:30 window: 02:30 does not exist on 2024-03-10 -> 03:30 EDT (07:30Z).
    send, ok = defer_micros(to_micros(ts("2024-03-10 06:45")), NY, QuietHours(start="01:00", end="02:30"))
    assert ok and from_micros(send) == ts("2024-03-10 07:30")
    # 01:10 EST (second 01:xx of 2024-11-03) in a 00:00-01:30 window -> 01:30 EST (06:30Z), never earlier.
    send, ok = defer_micros(to_micros(ts("2024-11-03 06:10")), NY, QuietHours(start="00:00", end="01:30"))
    assert ok and from_micros(send) == ts("2024-11-03 06:30")


def test_weekend_rule_moves_to_monday_morning() -> None:
    qh = QuietHours(start="21:00", end="08:00", weekend_days=(6, 7))
    # Saturday 2024-06-08 16:00 EDT -> Monday 2024-06-10 08:00 EDT
    send, ok = defer_micros(to_micros(ts("2024-06-08 20:00")), NY, qh)
    assert ok and from_micros(send) == ts("2024-06-10 12:00")
    # Friday 22:00 EDT -> Monday 08:00 EDT as well (Saturday morning is weekend)
    send, ok = defer_micros(to_micros(ts("2024-06-08 02:00")), NY, qh)
    assert ok and from_micros(send) == ts("2024-06-10 12:00")


# ------------------------------------------------------------------------------ rolling windows


def test_cap_count_boundaries_and_future_touches() -> None:
    day = 86_400_000_000
    t = 10 * day
    assert cap_count([t - day], t, day) == 1           # exactly one window apart: separate windows
    assert cap_count([t - day + 1], t, day) == 2       # one microsecond inside
    assert cap_count([t + day - 1], t, day) == 2       # a pending touch just ahead counts
    assert cap_count([t + day], t, day) == 1
    # touches 0.9 windows before and after are never in one window with each other: max 2, not 3
    assert cap_count([t - 9 * day // 10, t + 9 * day // 10], t, day) == 2


# ------------------------------------------------------------------------------ the engine

LEADS = [
    lead("L01"),
    lead("L02", decided="2024-06-03 22:00"),
    lead("L03", suppressed=True, reason="email_unsubscribe"),
    lead("L04", consent={"email": False}),
    lead("L05", fatigue=0.9),
    lead("L06", touches=(("email", "2024-06-02 20:00"),)),
    lead("L07", touches=(("push", "2024-06-04 10:00"),)),
    lead("L08", region="eu", decided="2024-06-03 10:00", tz=BERLIN, consent={"email": True}),
    lead("L09", spent={"push": 9.5}),
    lead("L10", touches=(("email", "2024-06-02 18:00"),)),
    lead("L11", touches=(("email", "2024-06-02 18:00:00.000001"),)),
    lead("L12", region="eu", tz=BERLIN, consent={"all": True}, touches=(("push", "2024-05-31 14:00"),)),
    lead("L13", region="us", consent={"all": True}, touches=(("push", "2024-05-31 14:00"),)),
]
S4, S1 = naive("2024-06-03 18:00"), naive("2024-06-04 14:00")
ALL = {"email@4h": S4, "email@1d": S1, "push@4h": S4, "push@1d": S1}
EXPECTED = {
    "L01": (["hold", "email@4h", "email@1d", "push@4h", "push@1d"], ALL),
    # 22:00Z + 4h = 22:00 EDT: deferred to 08:00 EDT = 12:00Z
    "L02": (["hold", "email@4h", "email@1d", "push@4h", "push@1d"],
            {"email@4h": naive("2024-06-04 12:00"), "email@1d": naive("2024-06-04 22:00"),
             "push@4h": naive("2024-06-04 12:00"), "push@1d": naive("2024-06-04 22:00")}),
    "L03": (["hold"], {}),
    "L04": (["hold", "push@4h", "push@1d"], {"push@4h": S4, "push@1d": S1}),
    "L05": (["hold", "push@4h", "push@1d"], {"push@4h": S4, "push@1d": S1}),
    # email 22h before the 4h sends (1d cap), 42h before the 1d sends; email 7d cap blocks email@1d
    "L06": (["hold", "push@1d"], {"push@1d": S1}),
    # pending push tomorrow 10:00Z: 4h sends 16h before it (1d cap), 1d sends 4h after it (gap and cap)
    "L07": (["hold"], {}),
    # eu opt_in: email granted, push has no grant
    "L08": (["hold", "email@4h", "email@1d"], {"email@4h": naive("2024-06-03 14:00"), "email@1d": naive("2024-06-04 10:00")}),
    "L09": (["hold", "email@4h", "email@1d"], {"email@4h": S4, "email@1d": S1}),
    # email exactly 24h before the 4h sends: the 1d window is not hit; the email 7d cap is
    "L10": (["hold", "push@4h", "push@1d"], {"push@4h": S4, "push@1d": S1}),
    # one microsecond later: now inside the 1d window of the 4h sends
    "L11": (["hold", "push@1d"], {"push@1d": S1}),
    # eu allows 1 touch per 7d: the push 3 days ago blocks everything; us allows 2
    "L12": (["hold"], {}),
    "L13": (["hold", "email@4h", "email@1d", "push@4h", "push@1d"], ALL),
}


@pytest.fixture(scope="module")
def evaluated(spark: SparkSession) -> DataFrame:
    return apply_guardrails(spark.createDataFrame(LEADS, CANDIDATES), config=GCFG, action_space=SPACE).cache()


def test_apply_guardrails_allowed_actions_and_send_times(spark: SparkSession, evaluated: DataFrame) -> None:
    expected = spark.createDataFrame(
        [(k, a, s) for k, (a, s) in EXPECTED.items()],
        "lead_id string, allowed_actions array<string>, send_at map<string,timestamp>",
    )
    assertDataFrameEqual(evaluated.select("lead_id", "allowed_actions", "send_at"), expected)


def test_python_twin_matches_the_hand_computed_table() -> None:
    for row in LEADS:
        result = evaluate_lead(context(row), config=GCFG, action_space=SPACE)
        allowed, send = EXPECTED[row[0]]
        assert list(result.allowed_actions) == allowed, row[0]
        assert {a: t.replace(tzinfo=None) for a, t in result.send_at.items()} == send, row[0]


def test_rule_results_name_numbers_limits_and_local_times(spark: SparkSession, evaluated: DataFrame) -> None:
    picked = {
        ("L02", "quiet_hours"): (True, [], "21:00-08:00 America/New_York: email@4h: deferred 2024-06-03 22:00 -> "
                                 "2024-06-04 08:00; push@4h: deferred 2024-06-03 22:00 -> 2024-06-04 08:00"),
        ("L03", "suppression"): (False, ["email@4h", "email@1d", "push@4h", "push@1d"], "lead suppressed: email_unsubscribe"),
        ("L04", "consent"): (False, ["email@4h", "email@1d"], "purpose marketing: email: revoked"),
        ("L05", "fatigue"): (False, ["email@4h", "email@1d"], "fatigue score 0.90 > 0.80: only hold, push"),
        ("L06", "max_touches_1d"): (False, ["email@4h", "push@4h"],
                                    "email@4h at 2024-06-03 18:00:00: 2 touches in 1d > max 1; "
                                    "push@4h at 2024-06-03 18:00:00: 2 touches in 1d > max 1"),
        ("L06", "max_touches_email_7d"): (False, ["email@4h", "email@1d"],
                                          "email@4h at 2024-06-03 18:00:00: 2 touches in 7d > max 1; "
                                          "email@1d at 2024-06-04 14:00:00: 2 touches in 7d > max 1"),
        ("L07", "min_gap"): (False, ["email@1d", "push@1d"],
                             "email@1d at 2024-06-04 14:00:00: nearest touch 240 min away < 12h; "
                             "push@1d at 2024-06-04 14:00:00: nearest touch 240 min away < 12h"),
        ("L08", "consent"): (False, ["push@4h", "push@1d"], "purpose marketing: push: no grant (opt_in)"),
        ("L09", "budget"): (False, ["push@4h", "push@1d"], "push: spent 9.50 + cost 1.00 > daily budget 10.00"),
        ("L12", "max_touches_7d"): (False, ["email@4h", "email@1d", "push@4h", "push@1d"],
                                    "email@4h at 2024-06-03 18:00:00: 2 touches in 7d > max 1; "
                                    "email@1d at 2024-06-04 14:00:00: 2 touches in 7d > max 1; "
                                    "push@4h at 2024-06-03 18:00:00: 2 touches in 7d > max 1; "
                                    "push@1d at 2024-06-04 14:00:00: 2 touches in 7d > max 1"),
        ("L13", "max_touches_7d"): (True, [], "at most 2 touches per 7d"),
    }
    rows = evaluated.select("lead_id", F.explode("guardrails").alias("g")).select("lead_id", "g.*")
    keys = spark.createDataFrame(list(picked), "lead_id string, rule string")
    expected = spark.createDataFrame(
        [(lid, rule, p, b, r) for (lid, rule), (p, b, r) in picked.items()],
        "lead_id string, rule string, passed boolean, blocked_actions array<string>, reason string",
    )
    assertDataFrameEqual(rows.join(keys, ["lead_id", "rule"]), expected)
    # every rule is evaluated for every lead, in a fixed order, with the GUARDRAIL_RESULT shape
    rules = ["suppression", "consent", "fatigue", "budget", "quiet_hours", "max_touches_1d", "max_touches_7d",
             "max_touches_email_7d", "min_gap"]
    us_rules = evaluated.filter("lead_id = 'L01'").select(F.transform("guardrails", lambda g: g["rule"])).first()[0]
    assert us_rules == rules
    assert evaluated.schema["guardrails"].dataType.elementType.fieldNames() == GUARDRAIL_RESULT.fieldNames()


def test_dst_and_weekend_deferral_in_spark(spark: SparkSession) -> None:
    space = ActionSpace(channels=("email",), waits=("4h", "1d"))
    gcfg = GuardrailConfig.from_mapping({"caps": [], "channel_caps": {}, "min_gap": None,
                                         "quiet_hours": {"weekend_days": [6, 7]}})
    rows = [
        lead("ny_spring", decided="2024-03-09 23:30"),              # Sat: weekend -> Monday
        lead("ny_fall", decided="2024-11-01 23:00"),                # Fri 19:00 EDT
        lead("de_spring", decided="2024-03-29 19:00", tz=BERLIN),   # Fri 20:00 CET
        lead("de_fall", decided="2024-10-25 18:00", tz=BERLIN),     # Fri 20:00 CEST
    ]
    out = apply_guardrails(spark.createDataFrame(rows, CANDIDATES), config=gcfg, action_space=space)
    expected = spark.createDataFrame([
        # Sat 18:30 EST + 4h / + 1d: both on the weekend -> Mon 2024-03-11 08:00 EDT = 12:00Z
        ("ny_spring", {"email@4h": naive("2024-03-11 12:00"), "email@1d": naive("2024-03-11 12:00")}),
        # Fri 23:00 EDT -> Sat weekend -> Mon 2024-11-04 08:00 EST = 13:00Z; +1d Sat 19:00 EDT -> same
        ("ny_fall", {"email@4h": naive("2024-11-04 13:00"), "email@1d": naive("2024-11-04 13:00")}),
        # Sat 00:00 CET -> Mon 2024-04-01 08:00 CEST = 06:00Z
        ("de_spring", {"email@4h": naive("2024-04-01 06:00"), "email@1d": naive("2024-04-01 06:00")}),
        # Sat 00:00 CEST -> Mon 2024-10-28 08:00 CET = 07:00Z
        ("de_fall", {"email@4h": naive("2024-10-28 07:00"), "email@1d": naive("2024-10-28 07:00")}),
    ], "lead_id string, send_at map<string,timestamp>")
    assertDataFrameEqual(out.select("lead_id", "send_at"), expected)
    for row in rows:
        py = evaluate_lead(context(row), config=gcfg, action_space=space)
        got = out.filter(F.col("lead_id") == row[0]).select("guardrails").first()[0]
        assert [(g.rule, g.passed, tuple(g.blocked_actions), g.reason) for g in got] == \
            [(g.rule, g.passed, g.blocked_actions, g.reason) for g in py.guardrails]


# ------------------------------------------------------------------------------ budgets


def test_gate_budgets_gives_the_quota_to_the_first_leads_in_hash_order(spark: SparkSession) -> None:
    space = ActionSpace(channels=("email", "push"), waits=("1d",))
    gcfg = GuardrailConfig.from_mapping({"budget": {"daily": {"push": 3.0}}, "caps": [], "channel_caps": {}})
    ids = [f"B{i}" for i in range(6)]
    evaluated = apply_guardrails(
        spark.createDataFrame([lead(i, decided="2024-06-03 14:00") for i in ids], CANDIDATES),
        config=gcfg, action_space=space,
    )
    gated = gate_budgets(evaluated, config=gcfg, action_space=space, spent_so_far={"us": {"push": 1.0}})
    # quota = floor((3 - 1) / 1) = 2: the two leads first by xxhash64('budget', lead_id)
    order = spark.createDataFrame([(i,) for i in ids], "lead_id string").select(
        "lead_id", F.xxhash64(F.lit("budget"), F.col("lead_id")).alias("h"),
    ).orderBy("h", "lead_id").collect()
    keep = {r["lead_id"] for r in order[:2]}
    expected = spark.createDataFrame(
        [(i, ["hold", "email@1d", "push@1d"] if i in keep else ["hold", "email@1d"],
          i in keep, [] if i in keep else ["push@1d"]) for i in ids],
        "lead_id string, allowed_actions array<string>, passed boolean, blocked array<string>",
    )
    result = gated.select(
        "lead_id", "allowed_actions",
        F.element_at("guardrails", -1)["passed"].alias("passed"),
        F.element_at("guardrails", -1)["blocked_actions"].alias("blocked"),
    )
    assertDataFrameEqual(result, expected)
    assert gated.filter(F.array_contains(F.map_keys("send_at"), "push@1d")).count() == 2


def test_enforce_budgets_turns_overflow_into_hold(spark: SparkSession) -> None:
    gcfg = GuardrailConfig.from_mapping({"budget": {"daily": {"push": 2.0}, "unit_cost": {"push": 0.5}}})
    ids = [f"D{i}" for i in range(5)]
    rows = [(i, "us", "push@1d", "push", "1d", ts("2024-06-04 14:00"), []) for i in ids]
    rows.append(("E0", "us", "email@1d", "email", "1d", ts("2024-06-04 14:00"), []))
    decisions = spark.createDataFrame(
        rows, "decision_id string, region string, action_id string, channel string, delay string, send_at timestamp, "
              "guardrails array<struct<rule:string,passed:boolean,blocked_actions:array<string>,reason:string>>",
    )
    out = enforce_budgets(decisions, config=gcfg, spent_so_far={"us": {"push": 1.0}})
    # remaining 1.0 at 0.5 a touch: the first two push decisions in hash order keep their action
    order = [r["d"] for r in spark.createDataFrame([(i,) for i in ids], "d string")
             .orderBy(F.xxhash64(F.lit("budget"), F.col("d")), "d").collect()]
    expected = spark.createDataFrame(
        [(i, "push@1d" if i in order[:2] else "hold", "push" if i in order[:2] else None) for i in ids]
        + [("E0", "email@1d", "email")],
        "decision_id string, action_id string, channel string",
    )
    assertDataFrameEqual(out.select("decision_id", "action_id", "channel"), expected)
    failed = out.filter(~F.element_at("guardrails", -1)["passed"]).select("decision_id")
    assertDataFrameEqual(failed, spark.createDataFrame([(i,) for i in order[2:]], "decision_id string"))


# ------------------------------------------------------------------------------ checker

CHECK_SPACE = ActionSpace(channels=("email", "push"), waits=("4h", "1d"))
CHECK_CFG = GuardrailConfig.from_mapping(
    {**RULES, "budget": {"daily": {"push": 2.0}}}, region_consent_modes={"us": "opt_out", "eu": "opt_in"},
)
ZONES = {"us": NY, "eu": BERLIN}


def decision(did: str, lid: str, decided: str, action: str, send: str | None, region: str = "us",
             blocked_by: tuple[str, ...] = ()) -> dict:
    channel, delay = (None, None) if action == "hold" else action.split("@")
    guardrails = [("consent", not blocked_by, list(blocked_by), "x")] if blocked_by else []
    return {"decision_id": did, "lead_id": lid, "region": region, "decided_at": ts(decided), "action_id": action,
            "channel": channel, "delay": delay, "send_at": ts(send) if send else None, "guardrails": guardrails}


def decisions_df(spark: SparkSession, rows: list[dict]) -> DataFrame:
    filled = []
    for r in rows:
        full = {f.name: None for f in GOLD_CADENCE_DECISIONS.fields}
        full.update(trigger="review:x", trigger_type="review", propensity=1.0, action_probs={r["action_id"]: 1.0},
                    explored=False, holdout=False, policy_kind="champion", model_name="m", model_version="1",
                    mlflow_run_id="r", policy_config_hash="h", feature_table_version=0, feature_as_of=r["decided_at"],
                    job_run_id="j", batch_id=0, code_version="c")
        full.update(r)
        filled.append(tuple(full[f.name] for f in GOLD_CADENCE_DECISIONS.fields))
    return spark.createDataFrame(filled, GOLD_CADENCE_DECISIONS)


def event(eid: str, lid: str, kind: str, at: str, channel: str | None = None, decision_id: str | None = None,
          props: dict | None = None) -> tuple:
    values = {"event_id": eid, "event_type": kind, "occurred_at": ts(at), "region": "us",
              "identifiers": {"crm_id": f"crm_id:{lid}"}, "channel": channel, "decision_id": decision_id,
              "properties": props or {}, "schema_version": "1", "source_file": None,
              "ingested_at": ts(at), "batch_id": 0}
    return tuple(values[f.name] for f in SILVER_EVENTS.fields) + (lid,)


def events_df(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    # a new StructType: StructType.add would mutate the shared contract
    return spark.createDataFrame(rows, StructType([*SILVER_EVENTS.fields, StructField("lead_id", StringType())]))


CONSENT = "lead_id string, channel string, purpose string, granted boolean, occurred_at timestamp"
CLEAN = [
    # lead A (us): email now, push 2 days later (pending when decided), a hold in between
    decision("A1", "A", "2024-06-03 14:00", "email@4h", "2024-06-03 18:00"),
    decision("A2", "A", "2024-06-04 09:00", "hold", None),
    decision("A3", "A", "2024-06-05 14:00", "push@1d", "2024-06-06 14:00"),
    # lead B (us): evening decision deferred out of quiet hours to 08:00 EDT
    decision("B1", "B", "2024-06-03 22:00", "email@4h", "2024-06-04 12:00"),
    # lead C (eu): granted email
    decision("C1", "C", "2024-06-03 10:00", "email@1d", "2024-06-04 10:00", region="eu"),
]
CLEAN_EVENTS = [event("e1", "A", "email_sent", "2024-06-03 18:00", "email", "A1"),
                event("e2", "B", "web_visit", "2024-06-01 10:00")]
CLEAN_CONSENT = [("C", "email", "marketing", True, ts("2024-06-01 00:00"))]


def test_checker_reports_nothing_on_a_clean_table(spark: SparkSession) -> None:
    found = check_decisions(
        spark, decisions_df(spark, CLEAN), events_df(spark, CLEAN_EVENTS),
        spark.createDataFrame(CLEAN_CONSENT, CONSENT), config=CHECK_CFG, action_space=CHECK_SPACE, region_timezones=ZONES,
    )
    assertDataFrameEqual(found, spark.createDataFrame([], "decision_id string, rule string, detail string"))


def test_checker_finds_every_planted_violation(spark: SparkSession) -> None:
    planted = CLEAN + [
        decision("V_consent", "C2", "2024-06-03 10:00", "push@1d", "2024-06-04 10:00", region="eu"),  # no grant
        decision("V_revoked", "R", "2024-06-03 14:00", "email@1d", "2024-06-04 14:00"),              # revoked
        decision("V_supp", "S", "2024-06-03 14:00", "push@1d", "2024-06-04 14:00"),                  # unsubscribed
        decision("V_fatigue", "F", "2024-06-03 14:00", "email@1d", "2024-06-04 14:00"),              # score 0.95
        decision("V_early", "E", "2024-06-03 14:00", "push@1d", "2024-06-04 13:00"),                 # before +1d
        decision("V_quiet", "Q", "2024-06-03 14:00", "push@4h", "2024-06-04 07:00"),                 # 03:00 EDT
        # lead G: pending email at 2024-06-04 14:00 (G1); V_caps, decided later, sends email 22.5h after it
        decision("G1", "G", "2024-06-03 14:00", "email@1d", "2024-06-04 14:00"),
        decision("V_caps", "G", "2024-06-03 15:00", "email@1d", "2024-06-05 12:30"),
        # lead H: a push sent 5h before the decision's send
        decision("V_gap", "H", "2024-06-03 14:00", "push@4h", "2024-06-03 18:00"),
        decision("V_budget1", "P", "2024-06-03 14:00", "push@1d", "2024-06-04 14:00"),
        decision("V_budget2", "P2", "2024-06-03 14:01", "push@1d", "2024-06-04 14:01"),
        decision("V_recorded", "K", "2024-06-03 14:00", "email@1d", "2024-06-04 14:00", blocked_by=("email@1d",)),
        decision("V_unknown", "U", "2024-06-03 14:00", "sms@1d", "2024-06-04 14:00"),
    ]
    events = CLEAN_EVENTS + [
        event("s1", "S", "email_unsubscribe", "2024-06-02 10:00", "email"),
        event("s2", "S", "email_bounce", "2024-06-02 11:00", "email", props={"bounce_type": "soft"}),
        event("h1", "H", "push_sent", "2024-06-03 13:00", "push"),
    ]
    consent = CLEAN_CONSENT + [("R", "all", "marketing", False, ts("2024-06-01 00:00"))]
    fatigue = spark.createDataFrame([("V_fatigue", 0.95), ("A1", 0.5)], "decision_id string, fatigue_score double")
    found = check_decisions(
        spark, decisions_df(spark, planted), events_df(spark, events), spark.createDataFrame(consent, CONSENT),
        config=CHECK_CFG, action_space=CHECK_SPACE, region_timezones=ZONES, fatigue_scores=fatigue,
    )
    expected = spark.createDataFrame([
        ("V_consent", "consent"), ("V_revoked", "consent"), ("V_supp", "suppression"), ("V_fatigue", "fatigue"),
        ("V_early", "send_time"), ("V_quiet", "quiet_hours"),
        # 22.5h after G1's pending email: 1d cap (2 > 1) and email 7d cap (2 > 1); the gap (12h) holds
        ("V_caps", "max_touches_1d"), ("V_caps", "max_touches_email_7d"),
        # 5h after a sent push: gap and 1d cap
        ("V_gap", "min_gap"), ("V_gap", "max_touches_1d"),
        # push budget 2 a day (unit cost 1); on 06-03 in (decided_at, decision_id) order: V_budget1, V_early,
        # V_gap, V_quiet, V_supp (14:00), V_budget2 (14:01) -> all after the first two are over budget
        ("V_gap", "budget"), ("V_quiet", "budget"), ("V_supp", "budget"), ("V_budget2", "budget"),
        ("V_recorded", "recorded_block"), ("V_unknown", "unknown_action"),
    ], "decision_id string, rule string")
    assertDataFrameEqual(found.select("decision_id", "rule"), expected)
    details = {(r["decision_id"], r["rule"]): r["detail"] for r in found.collect()}
    assert details[("V_quiet", "quiet_hours")] == "send_at 2024-06-04 03:00 local (America/New_York) is quiet"
    assert details[("V_caps", "max_touches_1d")] == "2 touches in 1d at 2024-06-05 12:30:00 > max 1"
    assert details[("V_gap", "min_gap")] == "nearest touch 300 min from 2024-06-03 18:00:00 < 12h"


# ------------------------------------------------------------------------------ the job


def _write(spark: SparkSession, lake: Lake, layer: str, name: str, df: DataFrame) -> None:
    lake.table("us", layer, name).overwrite(df)


def test_check_guardrails_job_exits_nonzero_on_violations(spark: SparkSession, cfg: NurtureConfig, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from nurture_lake.jobs.check_guardrails import main

    lake = Lake(cfg)
    rows = [decision("J1", "A", "2024-06-03 14:00", "email@4h", "2024-06-03 18:00"),
            decision("J2", "A", "2024-06-03 15:00", "email@4h", "2024-06-03 19:00")]
    events = [event("e1", "A", "web_visit", "2024-06-01 10:00")]
    _write(spark, lake, "gold", "cadence_decisions", decisions_df(spark, rows))
    _write(spark, lake, "silver", "events", events_df(spark, events).drop("lead_id"))
    graph = spark.createDataFrame([("crm_id:A", "A")], "id_key string, lead_id string")
    _write(spark, lake, "silver", "identity_graph", graph)
    _write(spark, lake, "silver", "consent_ledger", spark.createDataFrame([], SILVER_CONSENT_LEDGER))
    args = ["--region", "us"] + [
        f"--set=storage.{k}={getattr(cfg.storage, k)}" for k in ("lake_root", "checkpoint_root", "landing_root", "report_root")
    ]
    with pytest.raises(SystemExit) as failed:
        main(args)
    assert failed.value.code == 1
    out = capsys.readouterr().out
    assert "us: 2 violation(s)" in out and "min_gap" in out and "max_touches_1d" in out
    _write(spark, lake, "gold", "cadence_decisions", decisions_df(spark, rows[:1]))
    main(args)
    assert "guardrail check passed" in capsys.readouterr().out
