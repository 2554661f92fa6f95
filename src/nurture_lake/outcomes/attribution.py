"""Outcome attribution: decisions ⋈ later events of the same lead within the reward window.

Rules, in order:

1. An event that names a ``decision_id`` belongs to that decision (if it falls inside its window).
2. An engagement event without ``decision_id`` goes to the lead's latest touch decision whose
   window contains it, preferring one on the event's channel (``policy.attribution: last_touch``).

A decision's window is ``[send_at, send_at + reward.window)`` (``decided_at`` for ``hold``). Only
decisions whose window has closed by ``now`` are emitted — open windows are never used for learning.
Reward = Σ weight(event type) over attributed events − channel cost of the touch; with no
attributed event, the default reward − cost. ``reward_components`` lists every term.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from nurture_lake.actions import RewardSpec
from nurture_lake.schemas import GOLD_DECISION_OUTCOMES

_TOUCH_SUFFIXES = ("_sent", "_delivered")


def _as_column(value: datetime | Column) -> Column:
    return value if isinstance(value, Column) else F.lit(value)


def _window_start() -> Column:
    return F.coalesce(F.col("send_at"), F.col("decided_at"))


def with_windows(decisions: DataFrame, *, reward: RewardSpec) -> DataFrame:
    """Decisions plus their reward window ``[window_start, window_end)``."""
    seconds = int(reward.window_delta.total_seconds())
    return decisions.withColumn("window_start", _window_start()).withColumn(
        "window_end", F.col("window_start") + F.make_dt_interval(F.lit(0), F.lit(0), F.lit(0), F.lit(seconds))
    )


def _responses(lead_events: DataFrame, reward: RewardSpec) -> DataFrame:
    """Events that can carry reward: weighted types, excluding the touches themselves."""
    weighted = list(reward.weights)
    is_touch = F.lit(False)
    for suffix in _TOUCH_SUFFIXES:
        is_touch = is_touch | F.col("event_type").endswith(suffix)
    return lead_events.where(F.col("event_type").isin(*weighted) & ~is_touch).select(
        F.col("event_id").alias("ev_id"), F.col("lead_id").alias("ev_lead"), F.col("event_type").alias("ev_type"),
        F.col("occurred_at").alias("ev_at"), F.col("channel").alias("ev_channel"),
        F.col("decision_id").alias("ev_decision"),
    )


def attribute(
    decisions: DataFrame,
    lead_events: DataFrame,
    *,
    reward: RewardSpec,
    now: datetime | Column,
) -> DataFrame:
    """Closed-window decisions → outcome rows (schema ``GOLD_DECISION_OUTCOMES``).

    ``decisions`` has the ``gold.cadence_decisions`` columns; ``lead_events`` is ``silver.events``
    with ``lead_id``. Pure transform: no I/O.
    """
    all_windows = with_windows(decisions, reward=reward)
    closed = all_windows.where(F.col("window_end") <= _as_column(now))
    events = _responses(lead_events, reward)

    # Rule 1: explicit decision ids.
    explicit = events.join(
        all_windows.select("decision_id", "window_start", "window_end"),
        events["ev_decision"] == F.col("decision_id"),
    ).where((F.col("ev_at") >= F.col("window_start")) & (F.col("ev_at") < F.col("window_end")))
    explicit = explicit.select("ev_id", "decision_id")

    # Rule 2: last touch of the same lead whose window holds the event (same channel first).
    touches = all_windows.where(F.col("channel").isNotNull()).select(
        F.col("decision_id").alias("t_decision"), F.col("lead_id").alias("t_lead"),
        F.col("channel").alias("t_channel"), "window_start", "window_end",
    )
    implicit = events.where(F.col("ev_decision").isNull()).join(
        touches,
        (F.col("ev_lead") == F.col("t_lead")) & (F.col("ev_at") >= F.col("window_start"))
        & (F.col("ev_at") < F.col("window_end")),
    )
    best = Window.partitionBy("ev_id").orderBy(
        (F.col("ev_channel") == F.col("t_channel")).desc_nulls_last(), F.col("window_start").desc(),
        F.col("t_decision"),
    )
    implicit = implicit.withColumn("_r", F.row_number().over(best)).where("_r = 1").select(
        "ev_id", F.col("t_decision").alias("decision_id")
    )

    attributed = explicit.unionByName(implicit).join(events, "ev_id")
    weights = F.create_map(*[x for k, v in reward.weights.items() for x in (F.lit(k), F.lit(float(v)))])
    harm = F.array(*[F.lit(h) for h in reward.harm_events])
    per_decision = attributed.groupBy("decision_id").agg(
        F.sort_array(F.collect_set("ev_id")).alias("attributed_event_ids"),
        F.sum(weights[F.col("ev_type")]).alias("_event_reward"),
        F.max(F.array_contains(harm, F.col("ev_type"))).alias("_harm"),
    )
    # Sum the weights per event type (an event type attributed twice counts twice).
    per_type = attributed.groupBy("decision_id", "ev_type").agg(F.sum(weights[F.col("ev_type")]).alias("w"))
    components = per_type.groupBy("decision_id").agg(F.map_from_entries(F.collect_list(F.struct("ev_type", "w"))).alias("_components"))

    costs = F.create_map(*[x for k, v in reward.channel_cost.items() for x in (F.lit(k), F.lit(float(v)))])
    cost = F.when(F.col("channel").isNull(), F.lit(0.0)).otherwise(F.coalesce(costs[F.col("channel")], F.lit(0.0)))
    out = (
        closed.join(per_decision.select("decision_id", "attributed_event_ids", "_event_reward", "_harm"), "decision_id", "left")
        .join(components, "decision_id", "left")
        .withColumn("_cost", cost)
        .withColumn("_had_events", F.col("_event_reward").isNotNull())
    )
    base = F.when(F.col("_had_events"), F.col("_event_reward")).otherwise(F.lit(float(reward.default)))
    default_term = F.when(F.col("_had_events"), F.create_map()).otherwise(
        F.create_map(F.lit("default"), F.lit(float(reward.default)))
    )
    cost_term = F.when(F.col("_cost") != 0, F.create_map(F.lit("channel_cost"), -F.col("_cost"))).otherwise(F.create_map())
    comps = F.map_concat(
        F.coalesce(F.col("_components"), F.create_map().cast("map<string,double>")),
        default_term.cast("map<string,double>"), cost_term.cast("map<string,double>"),
    )
    return out.select(
        "decision_id", "lead_id", "region", "action_id", "channel", "propensity", "holdout", "model_version",
        "decided_at", "send_at", "window_end",
        (base - F.col("_cost")).alias("reward"),
        comps.alias("reward_components"),
        F.coalesce(F.col("attributed_event_ids"), F.array().cast("array<string>")).alias("attributed_event_ids"),
        F.coalesce(F.col("_harm"), F.lit(False)).alias("harm"),
        _as_column(now).cast("timestamp").alias("attributed_at"),
    ).select(*[f.name for f in GOLD_DECISION_OUTCOMES.fields])
