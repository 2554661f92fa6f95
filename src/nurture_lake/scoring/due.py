"""Which leads are due for a decision, and the touch history the caps count.

A lead is due when a trigger event for it arrives, or when its last decision is older than
``review_after`` (scheduled review). A lead with a pending touch (decided, not yet sent) is not
decided again until that touch has gone out.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from nurture_lake.actions import parse_duration

TOUCH_STRUCT = "array<struct<channel:string,at:timestamp>>"


def touch_history(decisions: DataFrame | None, lead_events: DataFrame) -> DataFrame:
    """Per lead: ``touch_times`` — every touch sent or pending, as (channel, at).

    Touches of our own decisions come from the decision table (at their ``send_at``, so pending
    ones count); ``<channel>_sent`` events that answer no decision of ours (other systems' sends)
    come from the events.
    """
    sent = lead_events.where(F.col("event_type").endswith("_sent"))
    if decisions is not None:
        ours = decisions.where(F.col("channel").isNotNull()).select(
            "lead_id", "channel", F.col("send_at").alias("at"), "decision_id"
        )
        foreign = sent.join(ours.select("decision_id"), "decision_id", "left_anti")
        touches = ours.drop("decision_id").unionByName(
            foreign.select("lead_id", "channel", F.col("occurred_at").alias("at"))
        )
    else:
        touches = sent.select("lead_id", "channel", F.col("occurred_at").alias("at"))
    return touches.groupBy("lead_id").agg(
        F.sort_array(F.collect_list(F.struct("channel", "at"))).cast(TOUCH_STRUCT).alias("touch_times")
    )


def _latest_trigger(events: DataFrame, *, now: datetime) -> DataFrame:
    """Per lead, its latest event (by ``occurred_at``, then ``event_id``) as an event trigger decided at ``now``."""
    latest = Window.partitionBy("lead_id").orderBy(F.col("occurred_at").desc(), F.col("event_id").desc())
    return events.withColumn("_r", F.row_number().over(latest)).where("_r = 1").select(
        "lead_id", "region", F.lit(now).cast("timestamp").alias("decided_at"),
        F.col("event_id").alias("trigger"), F.lit("event").alias("trigger_type"),
    )


def catch_up_events(events: DataFrame, *, horizon: datetime | None, window: str) -> DataFrame:
    """The events a batch may catch never-decided leads from: ingested in ``(horizon - window, horizon]``.

    ``horizon`` is the batch's newest ``ingested_at``, so a replayed batch sees the same events; the
    lower bound keeps the scan proportional to ``window`` (Delta skips older files by their
    ``ingested_at`` statistics) instead of the whole history. ``None`` (an empty batch) → no events.
    """
    if horizon is None:
        return events.limit(0)
    since = horizon - parse_duration(window)
    return events.where((F.col("ingested_at") <= F.lit(horizon)) & (F.col("ingested_at") > F.lit(since)))


def due_leads(
    lead_events: DataFrame,
    decisions: DataFrame | None,
    *,
    since: datetime,
    now: datetime,
    trigger_event_types: tuple[str, ...],
    review_after: str,
    undecided_events: DataFrame | None = None,
) -> DataFrame:
    """Leads due at ``now``: (lead_id, region, decided_at, trigger, trigger_type).

    Event triggers are trigger-type events that occurred in ``(since, now]``; the latest one per
    lead names the decision's trigger. Reviews are leads whose last decision is at least
    ``review_after`` old. Leads with a touch still pending at ``now`` are left out.

    ``undecided_events`` (the region's lead events, optional) catches up leads that have a trigger
    event up to ``now`` but no decision at all — e.g. their first events reached the scorer before
    identity linked them to a lead. They are due, triggered by their latest such event (so the
    decision id is the one an on-time decision would have had).
    """
    fresh = lead_events.where(
        F.col("event_type").isin(*trigger_event_types)
        & (F.col("occurred_at") > F.lit(since)) & (F.col("occurred_at") <= F.lit(now))
    )
    by_event = _latest_trigger(fresh, now=now)
    if undecided_events is not None:
        missed = undecided_events.where(
            F.col("event_type").isin(*trigger_event_types) & (F.col("occurred_at") <= F.lit(now))
        )
        if decisions is not None:
            missed = missed.join(decisions.select("lead_id").distinct(), "lead_id", "left_anti")
        missed = missed.join(fresh.select("lead_id").distinct(), "lead_id", "left_anti")
        by_event = by_event.unionByName(_latest_trigger(missed, now=now))
    if decisions is None:
        return by_event
    last = decisions.groupBy("lead_id").agg(
        F.max("decided_at").alias("_last_decided"),
        F.max(F.when(F.col("send_at") > F.lit(now), F.lit(1))).alias("_pending"),
        F.first("region").alias("_region"),
    )
    review_cut = now - parse_duration(review_after)
    review = last.where((F.col("_last_decided") <= F.lit(review_cut)) & F.col("_pending").isNull()).select(
        "lead_id", F.col("_region").alias("region"), F.lit(now).cast("timestamp").alias("decided_at"),
        F.lit(f"review:{now.isoformat()}").alias("trigger"), F.lit("review").alias("trigger_type"),
    )
    pending = last.where(F.col("_pending").isNotNull()).select("lead_id")
    events_first = by_event.unionByName(review.join(by_event.select("lead_id"), "lead_id", "left_anti"))
    return events_first.join(pending, "lead_id", "left_anti")
