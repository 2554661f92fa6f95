"""Joining other data to the identity graph (pure transforms): events → lead, old lead → survivor."""

from __future__ import annotations

import math

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from nurture_lake.identity.edges import event_id_keys


def attach_lead_id(events: DataFrame, graph: DataFrame) -> DataFrame:
    """``events`` (``silver.events`` columns) plus ``lead_id`` from ``graph`` (``id_key``, ``lead_id``).

    After connected components every identifier of an event maps to the same lead; should the graph
    lag behind the events, the lead of the event's smallest mapped id_key wins (deterministic). An
    event none of whose identifiers is in the graph gets a null ``lead_id``. Rows are matched back by
    ``event_id`` (unique in ``silver.events``).

    Example: ``attach_lead_id(lake.table("us", "silver", "events").read(spark), graph_df)``.
    """
    keys = events.select("event_id", F.explode(event_id_keys(F.col("identifiers"))).alias("id_key"))
    mapped = (
        keys.join(graph.select("id_key", "lead_id"), "id_key")
        .groupBy("event_id")
        .agg(F.min(F.struct("id_key", "lead_id"))["lead_id"].alias("lead_id"))
    )
    return events.join(mapped, "event_id", "left").select(*events.columns, "lead_id")


def resolve_merges(
    df: DataFrame,
    merges: DataFrame,
    *,
    lead_col: str = "lead_id",
    region_col: str | None = "region",
    max_chain: int = 64,
) -> DataFrame:
    """Replace merged lead ids in ``df[lead_col]`` by their final survivor, following chains (a→b, b→c ⇒ a→c).

    ``merges`` holds ``merged_lead_id`` and ``surviving_lead_id`` (``silver.lead_merges``). When both
    DataFrames have ``region_col`` the match is per region (a lead id is unique within its region).
    Chains up to ``max_chain`` merges long are resolved by pointer doubling (log2 self-joins of the
    small merges table). Columns and their order are unchanged.
    """
    by_region = region_col is not None and region_col in df.columns and region_col in merges.columns
    keys = ["region"] if by_region else []
    step = merges.select(
        *([F.col(region_col).alias("region")] if by_region else []),
        F.col("merged_lead_id").alias("lead"),
        F.col("surviving_lead_id").alias("target"),
    ).distinct()
    for _ in range(max(1, math.ceil(math.log2(max(2, max_chain))))):
        nxt = step.select(*keys, F.col("lead").alias("target"), F.col("target").alias("next_target"))
        step = step.join(nxt, [*keys, "target"], "left").select(
            *keys, "lead", F.coalesce("next_target", "target").alias("target")
        )
    mapping = step.select(
        *([F.col("region").alias("__region")] if by_region else []),
        F.col("lead").alias("__lead"),
        F.col("target").alias("__survivor"),
    )
    condition = F.col(lead_col) == F.col("__lead")
    if by_region:
        condition = condition & (F.col(region_col) == F.col("__region"))
    joined = df.join(mapping, condition, "left")
    return joined.select(
        *[
            F.coalesce(F.col("__survivor"), F.col(lead_col)).alias(lead_col) if c == lead_col else F.col(c)
            for c in df.columns
        ]
    )


__all__ = ["attach_lead_id", "resolve_merges"]
