"""Schemas of the tables the identity graph writes.

Per region (under the region's own root): ``silver.identity_edges``, ``silver.identity_graph``,
``silver.lead_merges``, ``silver.identity_state``. Across regions: ``global.silver.global_leads``,
which holds lead ids only (no id_key, no raw identifier).
"""

from __future__ import annotations

from pyspark.sql.types import LongType, StringType, StructField, StructType, TimestampType

IDENTITY_EDGES = StructType([
    StructField("src", StringType(), False),              # smallest id_key of the linking event (star centre)
    StructField("dst", StringType(), False),              # another id_key of the event; src == dst marks a vertex
    StructField("region", StringType(), False),
    StructField("first_seen_at", TimestampType(), False), # earliest occurred_at of an event holding both keys
    StructField("event_id", StringType(), False),         # that earliest event (ties: smallest event_id)
    StructField("ingested_at", TimestampType(), False),   # ingest time of the run's batch that first added the edge
    StructField("run_id", StringType(), False),           # identity run that inserted / last updated the edge
])
"""``silver.identity_edges``: one row per (src, dst); self-loops keep single-identifier events as vertices."""

IDENTITY_GRAPH = StructType([
    StructField("id_key", StringType(), False),           # pseudonym "<type>:<hmac hex>"
    StructField("id_type", StringType(), False),
    StructField("lead_id", StringType(), False),          # stable lead id ("L" + sha256(anchor id_key)[:20])
    StructField("region", StringType(), False),
    StructField("first_seen_at", TimestampType(), False), # earliest occurred_at of the id_key
    StructField("updated_at", TimestampType(), False),
    StructField("run_id", StringType(), False),
])
"""``silver.identity_graph``: id_key → lead_id, one row per id_key."""

LEAD_MERGES = StructType([
    StructField("merged_lead_id", StringType(), False),   # the lead id that stopped existing
    StructField("surviving_lead_id", StringType(), False),# the lead it was merged into (at that time)
    StructField("region", StringType(), False),
    StructField("merged_at", TimestampType(), False),
    StructField("run_id", StringType(), False),
    StructField("batch_id", LongType(), True),            # highest silver.events batch_id read by that run
])
"""``silver.lead_merges``: append-only history; follow chains with :func:`resolve_merges`."""

IDENTITY_STATE = StructType([
    StructField("region", StringType(), False),
    StructField("run_id", StringType(), False),
    StructField("updated_at", TimestampType(), False),
    StructField("events_version", LongType(), True),      # silver.events Delta version read
    StructField("hwm_ingested_at", TimestampType(), True),# high-water mark: last ingested_at processed
    StructField("hwm_batch_id", LongType(), True),        # ... and the highest batch_id at that ingested_at
    StructField("events_read", LongType(), False),
    StructField("cc_iterations", LongType(), False),
])
"""``silver.identity_state``: one row per run that processed events; the latest row is the high-water mark."""

GLOBAL_LEADS = StructType([
    StructField("region", StringType(), False),
    StructField("lead_id", StringType(), False),
    StructField("global_lead_id", StringType(), False),
])
"""``global.silver.global_leads``: regional lead → cross-region lead, linked through shared pseudonyms only."""

__all__ = ["GLOBAL_LEADS", "IDENTITY_EDGES", "IDENTITY_GRAPH", "IDENTITY_STATE", "LEAD_MERGES"]
