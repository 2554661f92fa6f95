"""Outcome attribution: explicit ids, last-touch rule, windows, default reward, costs."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Row, SparkSession
from pyspark.testing import assertDataFrameEqual

from nurture_lake.actions import RewardSpec
from nurture_lake.outcomes import attribute

REWARD = RewardSpec(window="7d", default=0.0, weights={"email_click": 1.0, "email_reply": 5.0, "push_open": 0.3,
                                                        "email_unsubscribe": -5.0, "meeting_booked": 10.0},
                    channel_cost={"email": 0.05, "push": 0.02})
DEC_COLS = ("decision_id string, lead_id string, region string, action_id string, channel string, propensity double, "
            "holdout boolean, model_version string, decided_at timestamp, send_at timestamp")
EV_COLS = "event_id string, lead_id string, event_type string, occurred_at timestamp, channel string, decision_id string"


def d(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 11, day, hour)


def test_attribution_rules_and_rewards(spark: SparkSession) -> None:
    decisions = spark.createDataFrame([
        ("d1", "L1", "us", "email@1d", "email", 0.5, False, "3", d(1), d(2)),   # window [2nd, 9th)
        ("d2", "L1", "us", "push@4h", "push", 0.25, False, "3", d(3), d(3, 4)),  # window [3rd 04:00, 10th 04:00)
        ("d3", "L2", "us", "hold", None, 0.8, True, "3", d(1), None),           # hold: window from decided_at
        ("d4", "L3", "us", "email@1d", "email", 0.4, False, "3", d(20), d(21)),  # window still open on the 12th
    ], DEC_COLS)
    events = spark.createDataFrame([
        ("e1", "L1", "email_click", d(2, 10), "email", "d1"),     # explicit → d1
        ("e2", "L1", "email_reply", d(4), "email", None),         # implicit: email touch d1 preferred over push d2
        ("e3", "L1", "push_open", d(4, 1), "push", None),         # implicit: same-channel d2
        ("e4", "L1", "meeting_booked", d(5), None, None),         # implicit, no channel: latest window start → d2
        ("e5", "L1", "email_click", d(1, 12), "email", None),     # before any window: unattributed
        ("e6", "L1", "email_sent", d(2), "email", "d1"),          # a touch is never a reward
        ("e7", "L2", "email_unsubscribe", d(12), "email", None),  # after L2's hold: no touch window to blame
        ("e8", "L1", "email_click", d(9, 1), "email", "d1"),      # explicit but after d1's window: dropped
    ], EV_COLS)

    out = attribute(decisions, events, reward=REWARD, now=d(12))

    assertDataFrameEqual(
        out.select("decision_id", "reward", "reward_components", "attributed_event_ids", "harm", "window_end"),
        [
            Row(decision_id="d1", reward=1.0 + 5.0 - 0.05,
                reward_components={"email_click": 1.0, "email_reply": 5.0, "channel_cost": -0.05},
                attributed_event_ids=["e1", "e2"], harm=False, window_end=d(9)),
            Row(decision_id="d2", reward=0.3 + 10.0 - 0.02,
                reward_components={"push_open": 0.3, "meeting_booked": 10.0, "channel_cost": -0.02},
                attributed_event_ids=["e3", "e4"], harm=False, window_end=d(10, 4)),
            Row(decision_id="d3", reward=0.0, reward_components={"default": 0.0}, attributed_event_ids=[],
                harm=False, window_end=d(8)),
        ],
        checkRowOrder=False,
    )


def test_harm_flag_and_open_windows(spark: SparkSession) -> None:
    decisions = spark.createDataFrame([("d1", "L1", "us", "email@4h", "email", 0.3, False, "1", d(1), d(1, 4))], DEC_COLS)
    events = spark.createDataFrame([("u1", "L1", "email_unsubscribe", d(2), "email", None)], EV_COLS)
    assert attribute(decisions, events, reward=REWARD, now=d(8, 3)).count() == 0  # window closes 8th 04:00
    out = attribute(decisions, events, reward=REWARD, now=d(8, 4))
    assertDataFrameEqual(
        out.select("decision_id", "reward", "harm", "propensity", "holdout"),
        [Row(decision_id="d1", reward=-5.05, harm=True, propensity=0.3, holdout=False)],
    )
