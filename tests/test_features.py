"""Feature layer: hand-computed values per family, no leakage, table = point-in-time, incremental = full."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType
from pyspark.testing import assertDataFrameEqual

from nurture_lake.config import ConfigError, NurtureConfig, load_config, parse_config
from nurture_lake.features import (
    CONTEXT_COLUMNS,
    FEATURE_COLUMNS,
    FeatureSettings,
    compute_features,
    consent_and_suppression,
    context_columns,
    context_vector,
    describe_features,
    features_from_table,
    latest_features_version,
    read_lead_features,
    update_lead_features,
)
from nurture_lake.features.settings import FEATURE_FAMILIES
from nurture_lake.schemas import SILVER_CONSENT_CURRENT, SILVER_EVENTS
from nurture_lake.sqltext import sql_string
from nurture_lake.tables import Lake

T = datetime(2026, 3, 10, 12, 0)  # a Tuesday; naive datetimes are UTC (session time zone)
LEAD_EVENTS = StructType([*SILVER_EVENTS.fields, StructField("lead_id", StringType(), False)])
REQUESTS = StructType([StructField("lead_id", StringType(), False), StructField("as_of", TimestampType(), False)])
CAP = 720.0
HALF_LIFE = 72.0


def _key(lead: str) -> str:
    """A well-formed pseudonym for a test lead (``crm_id:<64 hex>``)."""
    return "crm_id:" + hashlib.sha256(lead.encode()).hexdigest()


class _Events:
    """Builds lead events with unique ids; ``ingested`` defaults to ``occurred``."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def add(self, lead: str, event_type: str, occurred: datetime, *, ingested: datetime | None = None,
            region: str = "us", props: dict[str, str] | None = None) -> _Events:
        channel = event_type.split("_")[0] if event_type.split("_")[0] in {"email", "push", "chat", "sms"} else None
        event_id = f"e{len(self.rows):04d}"
        self.rows.append((
            event_id, event_type, occurred, region, {"crm_id": _key(lead)}, channel, None, props or {},
            "1", None, ingested or occurred, 0, lead,
        ))
        return self

    def df(self, spark: SparkSession) -> DataFrame:
        return spark.createDataFrame(self.rows, LEAD_EVENTS)


def _requests(spark: SparkSession, pairs: list[tuple[str, datetime]]) -> DataFrame:
    return spark.createDataFrame(pairs, REQUESTS)


def _pick(df: DataFrame, columns: list[str]) -> DataFrame:
    return df.select("lead_id", *columns)


def _expected(spark: SparkSession, columns: list[str], rows: dict[str, list[Any]]) -> DataFrame:
    """Expected doubles per lead, one column per name."""
    schema = StructType([StructField("lead_id", StringType())] + [StructField(c, DoubleType()) for c in columns])
    return spark.createDataFrame([(lead, *map(float, vals)) for lead, vals in rows.items()], schema)


# --- counts, rates, touches ----------------------------------------------------------------------------


def test_counts_rates_and_touches_per_window(spark: SparkSession, cfg: NurtureConfig) -> None:
    h = timedelta(hours=1)
    d = timedelta(days=1)
    ev = (
        _Events()
        .add("A", "email_sent", T - 2 * h).add("A", "email_sent", T - 3 * d).add("A", "email_sent", T - 10 * d)
        .add("A", "email_sent", T - 30 * d)                      # outside every window
        .add("A", "email_open", T - 1 * h).add("A", "email_open", T - 3 * d + h)
        .add("A", "email_click", T - 3 * d + 2 * h)
        .add("A", "push_sent", T - 5 * h).add("A", "push_open", T - 4 * h)
        .add("A", "email_sent", T - d)                            # age exactly 1 day: outside 1d, inside 7d
        .add("B", "sms_sent", T - 20 * d).add("B", "sms_reply", T - 19 * d)
    )
    feats = compute_features(ev.df(spark), _requests(spark, [("A", T), ("B", T)]), regions=cfg.regions)
    cols = [
        "n_email_sent_1d", "n_email_sent_7d", "n_email_sent_28d", "n_email_open_1d", "n_email_open_7d",
        "n_email_click_7d", "n_push_sent_1d", "n_push_open_28d", "n_sms_sent_7d", "n_sms_sent_28d",
        "n_sms_reply_28d", "touches_1d", "touches_7d", "touches_28d", "engagements_1d", "engagements_28d",
        "email_open_rate_1d", "email_open_rate_7d", "email_click_rate_28d", "push_open_rate_1d",
        "sms_reply_rate_28d", "chat_reply_rate_7d",
    ]
    # Rates: (engagements + 0.5) / (touches + 5); 0/0 → 0.1 (the prior mean).
    expected = {
        "A": [1, 3, 4, 1, 2, 1, 1, 1, 0, 0, 0, 2, 4, 5, 2, 4,
              1.5 / 6, 2.5 / 8, 1.5 / 9, 1.5 / 6, 0.5 / 5, 0.1],
        "B": [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1,
              0.1, 0.1, 0.1, 0.1, 1.5 / 6, 0.1],
    }
    assertDataFrameEqual(_pick(feats, cols), _expected(spark, cols, expected))


# --- recency, fatigue, lifecycle ---------------------------------------------------------------------


def test_recency_fatigue_and_lifecycle(spark: SparkSession, cfg: NurtureConfig) -> None:
    h = timedelta(hours=1)
    ev = (
        _Events()
        .add("A", "email_sent", T - 100 * h).add("A", "email_open", T - 90 * h)
        .add("A", "email_sent", T - 48 * h).add("A", "push_sent", T - 24 * h)
        .add("N", "lead_created", T - 1000 * h)                    # nothing else: new, every recency capped
        .add("U", "meeting_booked", T - 10 * h).add("U", "email_unsubscribe", T - 5 * h)
        .add("C", "deal_won", T - 200 * h).add("C", "email_unsubscribe", T - 5 * h)
        .add("O", "opportunity_created", T - 3 * h).add("O", "meeting_booked", T - 30 * h)
        .add("M", "meeting_booked", T - 3 * h)
        .add("F", "chat_sent", T - 2300 * h).add("F", "chat_reply", T - 2200 * h)  # beyond the 90-day lookback
        .add("F", "chat_sent", T - 800 * h).add("F", "chat_sent", T - 144 * h).add("F", "chat_sent", T - 72 * h)
    )
    leads = ["A", "N", "U", "C", "O", "M", "F"]
    feats = compute_features(ev.df(spark), _requests(spark, [(x, T) for x in leads]), regions=cfg.regions)
    cols = ["hours_since_email_touch", "hours_since_push_touch", "hours_since_email_engagement",
            "hours_since_push_engagement", "hours_since_touch", "hours_since_engagement",
            "hours_since_chat_touch", "fatigue"]
    f = 0.5 ** (48 / HALF_LIFE) + 0.5 ** (24 / HALF_LIFE)  # touches after the open; the earlier one is answered
    expected = {
        "A": [48.0, 24.0, 90.0, CAP, 24.0, 90.0, CAP, f],
        "N": [CAP] * 7 + [0.0],
        "U": [CAP, CAP, CAP, CAP, CAP, 10.0, CAP, 0.0],
        "C": [CAP, CAP, CAP, CAP, CAP, 200.0, CAP, 0.0],
        "O": [CAP, CAP, CAP, CAP, CAP, 3.0, CAP, 0.0],
        "M": [CAP, CAP, CAP, CAP, CAP, 3.0, CAP, 0.0],
        # the reply is beyond the 90-day lookback, so every touch in it counts (800h is in the lookback)
        "F": [CAP, CAP, CAP, CAP, 72.0, CAP, 72.0, 0.5 ** (72 / HALF_LIFE) + 0.5 ** 2 + 0.5 ** (800 / HALF_LIFE)],
    }
    assertDataFrameEqual(_pick(feats, cols), _expected(spark, cols, expected))
    stages = {"A": "engaged", "N": "new", "U": "unsubscribed", "C": "customer", "O": "opportunity",
              "M": "meeting", "F": "engaged"}
    assertDataFrameEqual(
        feats.select("lead_id", "lifecycle_stage", "stage_new", "stage_customer"),
        spark.createDataFrame([(k, v, float(v == "new"), float(v == "customer")) for k, v in stages.items()],
                              "lead_id string, lifecycle_stage string, stage_new double, stage_customer double"),
    )


# --- time zone, local hour, day-part profile across DST ----------------------------------------------


def _daypart(local: datetime) -> str:
    if local.weekday() >= 5:
        return "weekend"
    return ("weekday_night", "weekday_morning", "weekday_afternoon", "weekday_evening")[local.hour // 6]


def test_time_zone_local_hour_and_profile_across_dst(spark: SparkSession, cfg: NurtureConfig) -> None:
    ny = ZoneInfo("America/New_York")
    engagements = [datetime(2026, 3, 9, 10, 30), datetime(2026, 3, 7, 10, 30), datetime(2026, 3, 6, 10, 30)]
    ev = _Events()
    for when in engagements:
        ev.add("D", "email_open", when)
    ev.add("K", "lead_created", T - timedelta(days=400), region="eu", props={"timezone": "Asia/Tokyo"})
    ev.add("X", "lead_created", T - timedelta(days=2), region="eu", props={"timezone": "Mars/Base"})
    before, after = datetime(2026, 3, 8, 6, 30), datetime(2026, 3, 8, 7, 30)   # 01:30 EST, 03:30 EDT
    requests = [("D", before), ("D", after), ("D", T), ("K", T), ("X", T)]
    feats = compute_features(ev.df(spark), _requests(spark, requests), regions=cfg.regions)

    # Independent implementation: Python's zoneinfo.
    def local(ts: datetime, zone: str) -> datetime:
        return ts.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))

    expected = []
    for lead, as_of in requests:
        zone = {"D": "America/New_York", "K": "Asia/Tokyo", "X": "Europe/Berlin"}[lead]
        hour = local(as_of, zone).hour
        expected.append((lead, as_of, zone, hour, math.sin(2 * math.pi * hour / 24),
                         float(local(as_of, zone).weekday() >= 5)))
    assertDataFrameEqual(
        feats.select("lead_id", "as_of", "timezone", "local_hour", "local_hour_sin", "local_is_weekend"),
        spark.createDataFrame(expected, "lead_id string, as_of timestamp, timezone string, local_hour int, "
                                        "local_hour_sin double, local_is_weekend double"),
    )
    assert [local(before, "America/New_York").hour, local(after, "America/New_York").hour] == [1, 3]

    parts = ["weekday_night", "weekday_morning", "weekday_afternoon", "weekday_evening", "weekend"]
    counts = {p: 0 for p in parts}
    for when in engagements:
        counts[_daypart(when.replace(tzinfo=UTC).astimezone(ny))] += 1
    assert counts == {"weekday_night": 1, "weekday_morning": 1, "weekday_afternoon": 0,
                      "weekday_evening": 0, "weekend": 1}   # 05:30 EST Fri, 06:30 EDT Mon, Sat
    cols = [f"engagement_share_{p}" for p in parts]
    assertDataFrameEqual(
        _pick(feats.where(F.col("as_of") == T).where("lead_id = 'D'"), cols),
        _expected(spark, cols, {"D": [(counts[p] + 1) / (3 + 5) for p in parts]}),
    )


# --- CRM stage, channel affinity, hour-of-day match at the send hour --------------------------------------


def _send_hour(as_of: datetime, zone: str, offset_h: int, quiet: tuple[int, int] = (21, 8)) -> int:
    """Independent implementation: local hour of as_of + offset, deferred to the quiet hours' end."""
    hour = (as_of + timedelta(hours=offset_h)).replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).hour
    return quiet[1] if (hour >= quiet[0] or hour < quiet[1]) else hour


def _hour_match(engaged_hours: list[int], send_hour: int, *, sd: float = 1.5, prior: float = 0.25) -> float:
    def kernel(a: int, b: int) -> float:
        d = abs(a - b) % 24
        d = min(d, 24 - d)
        return math.exp(-d * d / (2 * sd * sd))

    total = sum(kernel(h, 0) for h in range(24))
    hits = sum(kernel(h, send_hour) for h in engaged_hours)
    return (hits + prior * total) / ((len(engaged_hours) + 24 * prior) * total / 24)


def test_crm_stage_channel_share_and_hour_match(spark: SparkSession, cfg: NurtureConfig) -> None:
    zone = "America/New_York"
    late = T + timedelta(days=1)
    engagements = {  # event type → occurred (UTC); New York is UTC-4 after 2026-03-08, UTC-5 before
        "email_open": datetime(2026, 3, 9, 12, 30),   # 08:30 EDT
        "web_visit": datetime(2026, 3, 9, 16, 10),    # 12:10 EDT
        "push_open": datetime(2026, 3, 5, 1, 0),      # 20:00 EST (Mar 4)
    }
    ev = (
        _Events()
        .add("H", "lead_created", T - timedelta(days=40), props={"timezone": zone, "lifecycle_stage": "mql"})
        # a later CRM update that was only ingested after as_of: not known yet
        .add("H", "lead_created", T - timedelta(days=1), ingested=late,
             props={"timezone": zone, "lifecycle_stage": "sql"})
        .add("H", "email_sent", T - timedelta(days=2)).add("H", "push_sent", datetime(2026, 3, 4, 23, 0))
        .add("S", "lead_created", T - timedelta(days=3), props={"timezone": zone, "lifecycle_stage": "dormant"})
        .add("S", "lead_created", T - timedelta(days=2), props={"timezone": zone, "lifecycle_stage": "sql"})
    )
    for event_type, when in engagements.items():
        ev.add("H", event_type, when)
    evening = datetime(2026, 3, 10, 3, 0)             # 23:00 EDT: inside the quiet hours
    requests = [("H", T), ("H", evening), ("S", T), ("Z", T)]
    feats = compute_features(ev.df(spark), _requests(spark, requests), regions=cfg.regions)

    hours = [when.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).hour for when in engagements.values()]
    assert hours == [8, 12, 20]
    assert [_send_hour(T, zone, 0), _send_hour(T, zone, 4), _send_hour(evening, zone, 0),
            _send_hour(evening, zone, 4)] == [8, 12, 8, 8]
    rate = {"email": (1 + 0.5) / (1 + 5), "push": (1 + 0.5) / (1 + 5), "chat": 0.1, "sms": 0.1}
    share_h = {"email": 2 / 8, "push": 2 / 8, "chat": 1 / 8, "sms": 1 / 8}
    rows = []
    for lead, as_of in requests:
        crm = {"H": "mql", "S": "sql", "Z": None}[lead]
        if lead == "H":
            match = [_hour_match(hours, _send_hour(as_of, zone, o)) for o in (0, 4)]
            share, r = share_h, rate
        else:  # no engagement: a uniform profile and the priors
            match, share, r = [1.0, 1.0], dict.fromkeys(rate, 1 / 5), dict.fromkeys(rate, 0.1)
        rows.append((
            lead, as_of, *(float(crm == s) for s in ("new", "engaged", "mql", "sql", "dormant")),
            *(share[c] for c in ("email", "push", "chat", "sms")), *match,
            *(r[c] * m for c in ("email", "push", "chat", "sms") for m in match),
        ))
    cols = [
        *(f"crm_stage_{s}" for s in ("new", "engaged", "mql", "sql", "dormant")),
        *(f"channel_share_{c}" for c in ("email", "push", "chat", "sms")), "hour_match_0h", "hour_match_4h",
        *(f"{c}_engage_index_{o}h" for c in ("email", "push", "chat", "sms") for o in (0, 4)),
    ]
    schema = StructType([StructField("lead_id", StringType()), StructField("as_of", TimestampType())]
                        + [StructField(c, DoubleType()) for c in cols])
    assertDataFrameEqual(feats.select("lead_id", "as_of", *cols), spark.createDataFrame(rows, schema))
    assert {"crm_stage_mql", "hour_match_0h", "email_engage_index_4h"} <= set(FEATURE_COLUMNS)


# --- no leakage ----------------------------------------------------------------------------------------


def test_future_and_late_events_do_not_leak(spark: SparkSession, cfg: NurtureConfig) -> None:
    h = timedelta(hours=1)
    base = (
        _Events()
        .add("A", "email_sent", T - 30 * h).add("A", "email_open", T - 29 * h).add("A", "push_sent", T - 2 * h)
        .add("B", "lead_created", T - 40 * h, props={"timezone": "America/Chicago"})
    )
    leaky = _Events()
    leaky.rows = list(base.rows)
    leaky.add("A", "email_click", T + h, ingested=T - h)                   # occurs after as_of (future)
    leaky.add("A", "email_reply", T - 3 * h, ingested=T + h)               # known only after as_of (late)
    leaky.add("A", "deal_won", T - 10 * h, ingested=T + 2 * h)             # late: would flip the stage
    leaky.add("B", "lead_created", T - 5 * h, ingested=T + h, props={"timezone": "Asia/Tokyo"})
    leaky.add("B", "chat_sent", T + 3 * h)

    req = _requests(spark, [("A", T), ("B", T)])
    clean = compute_features(base.df(spark), req, regions=cfg.regions)
    with_leaks = compute_features(leaky.df(spark), req, regions=cfg.regions)
    assertDataFrameEqual(with_leaks, clean)

    # An explicit ingestion horizon (known_at) lets the late reply in, but never the future click.
    horizon = spark.createDataFrame([("A", T, T + 1 * h)], "lead_id string, as_of timestamp, known_at timestamp")
    assertDataFrameEqual(
        compute_features(leaky.df(spark), horizon, regions=cfg.regions)
        .select("lead_id", "n_email_reply_1d", "n_email_click_1d"),
        spark.createDataFrame([("A", 1.0, 0.0)], "lead_id string, n_email_reply_1d double, n_email_click_1d double"),
    )

    # The same extra events do change the features once they are known, so the check above can fail.
    later = _requests(spark, [("A", T + 4 * h), ("B", T + 4 * h)])
    known_later = compute_features(leaky.df(spark), later, regions=cfg.regions)
    assertDataFrameEqual(
        known_later.select("lead_id", "lifecycle_stage", "timezone", "n_email_reply_1d"),
        spark.createDataFrame([("A", "customer", "America/New_York", 1.0), ("B", "new", "Asia/Tokyo", 0.0)],
                              "lead_id string, lifecycle_stage string, timezone string, n_email_reply_1d double"),
    )


# --- gold.lead_features: point-in-time = table, incremental = full ---------------------------------------


def _lake_copy(cfg: NurtureConfig, root: Path) -> Lake:
    raw = cfg.model_dump(mode="json")
    extra = raw.pop("extra")
    raw["storage"]["lake_root"] = str(root)
    return Lake(parse_config({**raw, **extra}))


def _history_events(t0: datetime) -> _Events:
    d, h = timedelta(days=1), timedelta(hours=1)
    ev = _Events()
    ev.add("A", "lead_created", t0 - 300 * d, props={"timezone": "America/Denver"})
    ev.add("A", "deal_won", t0 - 200 * d).add("A", "email_open", t0 - 100 * d)     # beyond the lookback
    ev.add("A", "email_sent", t0 - 20 * d).add("A", "email_click", t0 - 19 * d).add("A", "push_sent", t0 - 2 * h)
    ev.add("B", "email_sent", t0 - 3 * d).add("B", "email_sent", t0 - 1 * d)
    ev.add("B", "web_visit", t0 - 95 * d, ingested=t0 - 94 * d)
    ev.add("C", "sms_sent", t0 - 5 * d).add("C", "sms_click", t0 - 5 * d + h)
    ev.add("C", "chat_sent", t0 + 5 * h, ingested=t0)     # known at t0 but occurs later (clock skew)
    return ev


def test_table_matches_point_in_time_and_incremental_matches_full(
    spark: SparkSession, cfg: NurtureConfig, tmp_path: Path,
) -> None:
    lake = Lake(cfg)
    ev = _history_events(T)
    first = ev.df(spark)
    up1 = update_lead_features(spark, lake, "us", first)
    assert (up1.mode, up1.leads_updated, up1.as_of, up1.table_version) == ("full", 3, T, 0)
    assert latest_features_version(spark, lake, "us") == 0

    table = read_lead_features(spark, lake, "us")
    point = compute_features(first, _requests(spark, [(x, T) for x in "ABC"]), regions=cfg.regions)
    assertDataFrameEqual(table.select(*point.columns), point)

    # New events for B and D (a new lead) arrive; A and C are untouched.
    t2 = T + timedelta(days=2)
    ev.add("B", "email_open", t2 - timedelta(hours=3), ingested=t2 - timedelta(hours=1))
    ev.add("D", "email_sent", t2 - timedelta(days=4), ingested=t2)
    second = ev.df(spark)
    up2 = update_lead_features(spark, lake, "us", second)
    assert (up2.mode, up2.leads_updated, up2.previous_hwm, up2.events_hwm, up2.table_version) == (
        "incremental", 2, T, t2, 1)
    assert update_lead_features(spark, lake, "us", second).mode == "noop"
    assert latest_features_version(spark, lake, "us") == 1

    full_lake = _lake_copy(cfg, tmp_path / "full_lake")
    assert update_lead_features(spark, full_lake, "us", second).mode == "full"
    incremental = read_lead_features(spark, lake, "us")
    full = read_lead_features(spark, full_lake, "us")
    # Recomputed leads are identical; untouched leads keep their older as_of.
    assertDataFrameEqual(incremental.where("lead_id in ('B', 'D')"), full.where("lead_id in ('B', 'D')"))
    assertDataFrameEqual(
        incremental.select("lead_id", "as_of"),
        spark.createDataFrame([("A", T), ("B", t2), ("C", T), ("D", t2)], "lead_id string, as_of timestamp"),
    )
    # Refreshed as of a later instant, both tables give exactly the point-in-time features over all events.
    t3 = t2 + timedelta(days=3, hours=5)
    req = _requests(spark, [(x, t3) for x in "ABCD"])
    truth = compute_features(second, req, regions=cfg.regions)
    assertDataFrameEqual(features_from_table(incremental, req, regions=cfg.regions), truth)
    assertDataFrameEqual(features_from_table(full, req, regions=cfg.regions), truth)
    assert truth.where("lead_id = 'A'").select("lifecycle_stage", "timezone").first() == Row(
        lifecycle_stage="customer", timezone="America/Denver")


# --- context vector -----------------------------------------------------------------------------------


def test_context_vector_is_fixed_length_with_bias(spark: SparkSession, cfg: NurtureConfig) -> None:
    ev = _Events().add("A", "email_sent", T - timedelta(hours=6)).add("A", "email_sent", T - timedelta(hours=7))
    feats = compute_features(ev.df(spark), _requests(spark, [("A", T), ("Z", T)]), regions=cfg.regions)
    vectors = {r["lead_id"]: r["context"] for r in context_vector(feats).select("lead_id", "context").collect()}
    assert len(CONTEXT_COLUMNS) == len(FEATURE_COLUMNS) + 1 == len(vectors["A"]) == len(vectors["Z"])
    slot = {name: i for i, name in enumerate(CONTEXT_COLUMNS)}
    assert vectors["A"][slot["bias"]] == 1.0
    assert vectors["A"][slot["n_email_sent_1d"]] == pytest.approx(math.log1p(2))
    assert vectors["A"][slot["hours_since_email_touch"]] == pytest.approx(6 / CAP)
    assert vectors["Z"][slot["hours_since_email_touch"]] == 1.0
    assert vectors["Z"][slot["stage_new"]] == 1.0


def test_context_vector_expression_equals_each_slot_built_column_by_column(
    spark: SparkSession, cfg: NurtureConfig
) -> None:
    """The one-SQL-expression context vector holds, slot by slot, what the DataFrame API computes."""
    ev = (_Events().add("A", "email_sent", T - timedelta(hours=6)).add("A", "email_open", T - timedelta(hours=5))
          .add("A", "push_sent", T - timedelta(days=2)).add("B", "chat_sent", T - timedelta(days=40)))
    feats = compute_features(ev.df(spark), _requests(spark, [("A", T), ("B", T), ("Z", T)]), regions=cfg.regions)
    settings = FeatureSettings()
    slots = [F.lit(1.0)]
    for c in describe_features(settings):
        value = F.coalesce(F.col(c.name).cast("double"), F.lit(0.0))
        if c.transform == "log1p":
            value = F.log1p(F.greatest(value, F.lit(0.0)))
        elif c.transform == "recency":
            value = value / F.lit(CAP)
        slots.append(value)
    slots += [F.when(F.col("region") == r, 1.0).otherwise(0.0) for r in cfg.regions]
    expected = feats.select("lead_id", F.array(*slots).alias("context"))
    actual = context_vector(feats, settings=settings, regions=cfg.regions).select("lead_id", "context")
    assertDataFrameEqual(actual, expected, rtol=0, atol=0)


@pytest.mark.parametrize("text", ["us", "it's", "back\\slash", "both \\' and '\\", ""])
def test_sql_string_literals_read_back_as_the_same_text(spark: SparkSession, text: str) -> None:
    assert spark.range(1).select(F.expr(sql_string(text)).alias("v")).first()["v"] == text


def test_context_families_pick_slots_of_the_full_vector(spark: SparkSession, cfg: NurtureConfig) -> None:
    ev = (_Events().add("A", "email_sent", T - timedelta(hours=6)).add("A", "email_open", T - timedelta(hours=5))
          .add("B", "push_sent", T - timedelta(days=3)))
    feats = compute_features(ev.df(spark), _requests(spark, [("A", T), ("B", T), ("Z", T)]), regions=cfg.regions)
    everything = FeatureSettings(context_families=None)
    chosen = FeatureSettings(context_families=("recency", "affinity", "crm_stage"))
    full_names = context_columns(everything, regions=cfg.regions)
    names = context_columns(chosen, regions=cfg.regions)
    assert names[0] == "bias" and names[-2:] == ["region_us", "region_eu"]
    assert {c.family for c in describe_features() if c.name in names} == {"recency", "affinity", "crm_stage"}
    assert set(FEATURE_FAMILIES) == {c.family for c in describe_features()}  # the validator's list is complete
    slots = [full_names.index(n) for n in names]
    full = context_vector(feats, settings=everything, regions=cfg.regions)
    picked = full.select("lead_id", F.array(*[F.col("context")[i] for i in slots]).alias("context"))
    assertDataFrameEqual(context_vector(feats, settings=chosen, regions=cfg.regions).select("lead_id", "context"), picked)
    # The choice changes what the bandit reads, not what a feature column means.
    assert chosen.feature_version == everything.feature_version
    with pytest.raises(ConfigError, match="context_families.*unknown: counts"):
        FeatureSettings.from_config(load_config("local", overrides={"features.context_families": ["counts"]}))


def test_settings_validate_and_version(cfg: NurtureConfig) -> None:
    assert FeatureSettings.from_config(cfg) == FeatureSettings()
    assert FeatureSettings(windows_days=(7, 1)).windows_days == (1, 7)
    assert FeatureSettings(fatigue_half_life_hours=24).feature_version != FeatureSettings().feature_version
    with pytest.raises(ValueError, match="lookback"):
        FeatureSettings(windows_days=(1, 120))
    with pytest.raises(ValueError, match="web_sent"):
        FeatureSettings(channels=("web",))


# --- consent and suppression ---------------------------------------------------------------------------


def test_consent_opt_in_opt_out_and_suppression(spark: SparkSession, cfg: NurtureConfig) -> None:
    t = datetime(2026, 1, 1)
    links = [("k_us1", "us1"), ("k_us2", "us2"), ("k_us3a", "us3"), ("k_us3b", "us3"), ("k_eu1", "eu1"),
             ("k_eu2", "eu2"), ("k_eu3", "eu3"), ("k_us4", "us4"), ("k_us5", "us5"), ("k_us6", "us6"),
             ("k_us7", "us7")]
    consent = [
        ("k_us2", "all", "marketing", False, t), ("k_us2", "email", "marketing", True, t + timedelta(days=1)),
        ("k_us3a", "email", "marketing", False, t), ("k_us3b", "email", "marketing", True, t + timedelta(days=1)),
        ("k_eu2", "email", "marketing", True, t), ("k_eu2", "sms", "sales", True, t),   # other purpose
        ("k_eu3", "all", "marketing", True, t), ("k_eu3", "push", "marketing", False, t),
    ]
    current = spark.createDataFrame(
        [(k, c, p, g, ts, f"c{i}", k.split("_")[1][:2]) for i, (k, c, p, g, ts) in enumerate(consent)],
        SILVER_CONSENT_CURRENT,
    )
    ev = _Events()
    for lead, region in (("us1", "us"), ("eu1", "eu"), ("eu2", "eu"), ("eu3", "eu"), ("us2", "us"), ("us3", "us")):
        ev.add(lead, "lead_created", t, region=region)
    ev.add("us4", "email_unsubscribe", t)
    ev.add("us5", "email_complaint", t)
    ev.add("us6", "email_bounce", t, props={"bounce_type": "soft"})
    ev.add("us7", "email_bounce", t, props={"bounce_type": "hard"})
    ev.add("us4", "sms_unsubscribe", t + timedelta(days=30))     # after as_of: ignored
    flags = consent_and_suppression(
        current, spark.createDataFrame(links, "id_key string, lead_id string"), ev.df(spark),
        regions_cfg=cfg.regions, as_of=t + timedelta(days=2),
    )
    y, n = True, False
    # lead: consent email, push, chat, sms | suppressed email, sms, all | allowed email, sms
    expected = {
        "us1": (y, y, y, y, n, n, n, y, y, []),
        "us2": (n, n, n, n, n, n, n, n, n, []),          # 'all' revoke blocks even a later email grant
        "us3": (y, y, y, y, n, n, n, y, y, []),          # latest record across identifiers wins
        "eu1": (n, n, n, n, n, n, n, n, n, []),          # opt-in region, no grant
        "eu2": (y, n, n, n, n, n, n, y, n, []),          # sms grant is for another purpose
        "eu3": (y, n, y, y, n, n, n, y, y, []),
        "us4": (y, y, y, y, y, n, n, n, y, ["email_unsubscribe"]),
        "us5": (y, y, y, y, y, y, y, n, n, ["complaint"]),
        "us6": (y, y, y, y, n, n, n, y, y, []),
        "us7": (y, y, y, y, y, n, n, n, y, ["email_hard_bounce"]),
    }
    assertDataFrameEqual(
        flags.select("lead_id", "consent_email", "consent_push", "consent_chat", "consent_sms",
                     "suppressed_email", "suppressed_sms", "suppressed", "allowed_email", "allowed_sms",
                     "suppression_reasons"),
        spark.createDataFrame(
            [(k, *v) for k, v in expected.items()],
            "lead_id string, consent_email boolean, consent_push boolean, consent_chat boolean, "
            "consent_sms boolean, suppressed_email boolean, suppressed_sms boolean, suppressed boolean, "
            "allowed_email boolean, allowed_sms boolean, suppression_reasons array<string>",
        ),
    )


# --- the job ---------------------------------------------------------------------------------------------


def test_features_job_refreshes_table_and_audits(
    spark: SparkSession, cfg: NurtureConfig, capsys: pytest.CaptureFixture[str],
) -> None:
    identity = pytest.importorskip("nurture_lake.identity")
    if not hasattr(identity, "attach_lead_id"):
        pytest.skip("nurture_lake.identity.attach_lead_id is not available yet")
    from nurture_lake.audit import audit_table
    from nurture_lake.identity.schemas import IDENTITY_GRAPH
    from nurture_lake.jobs.features import main

    lake = Lake(cfg)
    ev = _history_events(T)
    lead_events = ev.df(spark)
    events_table = lake.table("us", "silver", "events")
    events_table.ensure(spark, SILVER_EVENTS)
    events_table.append(lead_events.drop("lead_id"))
    graph = [(_key(x), "crm_id", x, "us", T, T, "r1") for x in "ABC"]
    graph_table = lake.table("us", "silver", "identity_graph")
    graph_table.ensure(spark, IDENTITY_GRAPH)
    graph_table.append(spark.createDataFrame(graph, IDENTITY_GRAPH))

    args = ["--region", "us"] + [f"--set=storage.{k}={getattr(cfg.storage, k)}"
                                 for k in ("lake_root", "checkpoint_root", "landing_root", "report_root")]
    main(args)
    assert "features us: full, 3 leads updated" in capsys.readouterr().out
    main(args)
    assert "features us: noop, 0 leads updated" in capsys.readouterr().out

    point = compute_features(lead_events, _requests(spark, [(x, T) for x in "ABC"]), regions=cfg.regions)
    assertDataFrameEqual(read_lead_features(spark, lake, "us").select(*point.columns), point)
    audits = audit_table(lake).read(spark).where("job = 'features'")
    assertDataFrameEqual(
        audits.select("status", F.col("outputs")["us.gold.lead_features"].alias("version")),
        spark.createDataFrame([("succeeded", 0), ("succeeded", 0)], "status string, version bigint"),
    )


def test_feature_quiet_hours_follow_the_guardrails_unless_set(cfg: NurtureConfig) -> None:
    """The send-hour features defer into the window the guardrails enforce; an explicit setting wins."""
    def with_sections(guard_quiet: dict[str, Any], features: dict[str, Any]) -> NurtureConfig:
        raw = cfg.model_dump(mode="json")
        extra = raw.pop("extra")
        extra["guardrails"] = {**extra["guardrails"], "quiet_hours": {**extra["guardrails"]["quiet_hours"], **guard_quiet}}
        extra["features"] = {**extra["features"], **features}
        return parse_config({**raw, **extra})

    assert FeatureSettings.from_config(cfg).quiet_hours == (21, 8)
    assert FeatureSettings.from_config(with_sections({"start": "22:30", "end": "07:00"}, {})).quiet_hours == (22, 7)
    assert FeatureSettings.from_config(with_sections({"enabled": False}, {})).quiet_hours is None
    explicit = with_sections({"start": "22:30", "end": "07:00"}, {"quiet_hours": [20, 9]})
    assert FeatureSettings.from_config(explicit).quiet_hours == (20, 9)
