"""The streaming scorer: ``silver.events`` appends → due leads → decisions (``foreachBatch``).

Each micro-batch's trigger events (plus leads due for review) are scored as of the wall clock and
MERGEd into ``gold.cadence_decisions`` by deterministic ``decision_id``: a replayed batch or a
restarted query never duplicates a decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.identity import attach_lead_id, identity_tables
from nurture_lake.scoring.decide import ScoringSettings
from nurture_lake.scoring.due import catch_up_events, due_leads
from nurture_lake.scoring.run import decisions_table, lead_events, score_region
from nurture_lake.monitor import metrics_listener
from nurture_lake.streaming import await_query, with_trigger
from nurture_lake.tables import Lake


@dataclass
class ScoreCounts:
    """Decisions written over the batches of a run."""

    batches: int = 0
    due: int = 0
    decisions: int = 0


def score_batch(
    spark: SparkSession, lake: Lake, region: str, batch: DataFrame, batch_id: int, *, job_run_id: str,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Score the leads a micro-batch of silver events makes due; returns (due leads, decisions written)."""
    settings = ScoringSettings.from_config(lake.cfg)
    now = now or datetime.now(UTC)
    graph = identity_tables(lake, region).graph
    if not graph.exists(spark):
        return 0, 0
    fresh = attach_lead_id(batch, graph.read(spark)).where(F.col("lead_id").isNotNull())
    table = decisions_table(lake, region)
    existing = table.read(spark) if table.exists(spark) else None
    # Every event of this batch counts as new, whatever its event time (late events trigger too).
    window_start = datetime(1970, 1, 1, tzinfo=UTC)
    events = lead_events(spark, lake, region)
    # Leads never decided are caught up too: their first events may have reached an earlier batch
    # before identity linked them to a lead (those events had no lead_id then). Only events ingested
    # by this batch's newest count (so a replayed batch decides what it decided the first time) and
    # within ``scoring.catch_up_window`` of it.
    horizon = batch.agg(F.max("ingested_at")).first()[0]
    caught_up = catch_up_events(events, horizon=horizon, window=settings.catch_up_window)
    due = due_leads(
        fresh.withColumn("occurred_at", F.least(F.col("occurred_at"), F.lit(now))), existing,
        since=window_start, now=now, trigger_event_types=settings.trigger_event_types,
        review_after=settings.review_after,
        undecided_events=caught_up.withColumn("occurred_at", F.least(F.col("occurred_at"), F.lit(now))),
    ).where(F.col("region") == region).localCheckpoint()
    n_due = due.count()
    if n_due == 0:
        return 0, 0
    score_region(
        spark, lake, region, due, events=events, known_at=now, batch_id=batch_id, job_run_id=job_run_id,
    )
    # Rows this run inserted for this batch: a replayed batch (after a restart, a new run id) inserts none.
    inserted = table.read(spark).where((F.col("job_run_id") == job_run_id) & (F.col("batch_id") == batch_id))
    return n_due, inserted.count()


def run_scoring(
    spark: SparkSession,
    lake: Lake,
    region: str,
    *,
    job_run_id: str,
    once: bool = True,
    timeout_s: float | None = None,
    progress: bool = True,
) -> ScoreCounts:
    """Run the scoring query over ``region``'s ``silver.events`` stream."""
    from nurture_lake.jobs.common import log

    counts = ScoreCounts()
    events = lake.table(region, "silver", "events")

    def upsert_cadence_decisions(micro_batch: DataFrame, batch_id: int) -> None:
        due, made = score_batch(spark, lake, region, micro_batch, batch_id, job_run_id=job_run_id)
        counts.batches += 1
        counts.due += due
        counts.decisions += made
        if progress:
            log(f"score {region}: batch {batch_id}: {due} due leads → {made} decisions")

    writer = (
        events.read_stream(spark).writeStream.queryName(f"score_{region}")
        .option("checkpointLocation", lake.checkpoint(region, "score"))
        .foreachBatch(upsert_cadence_decisions)
    )
    with metrics_listener(spark, lake):  # progress of every micro-batch → global.ops.stream_metrics
        query = with_trigger(writer, lake.cfg, once=once).start()
        await_query(query, once=once, timeout_s=timeout_s, name=f"score {region}")
    return counts


__all__ = ["ScoreCounts", "run_scoring", "score_batch"]
