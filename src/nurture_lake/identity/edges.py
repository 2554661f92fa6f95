"""Identifier co-occurrence edges from ``silver.events`` (pure transforms).

Identifiers seen together in one event belong to one lead. An event with keys ``k1 < k2 < k3``
yields the star ``k1–k1, k1–k2, k1–k3`` (the self-loop keeps single-identifier events as vertices),
not every pair: connectivity is the same with n instead of n²/2 edges.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

ID_KEY_PATTERN = r"^[a-z_]+:[0-9a-f]{64}$"
"""A keyed pseudonym ``"<type>:<hex HMAC-SHA256>"``; anything else (e.g. a raw identifier) is never linked."""


def event_id_keys(identifiers: Column) -> Column:
    """The sorted, distinct, well-formed pseudonyms of an ``identifiers`` map column."""
    values = F.array_distinct(F.map_values(identifiers))
    return F.array_sort(F.filter(values, lambda v: v.isNotNull() & v.rlike(ID_KEY_PATTERN)))


def event_edges(events: DataFrame) -> DataFrame:
    """Star edges of events, aggregated per ``(src, dst)``.

    Input: ``silver.events`` rows. Output columns: ``src``, ``dst``, ``first_seen_at`` (earliest
    ``occurred_at``), ``event_id`` (that event; ties → smallest id), ``ingested_at`` (earliest).
    """
    keyed = events.select(
        "event_id", "occurred_at", "ingested_at", event_id_keys(F.col("identifiers")).alias("keys")
    ).where(F.size("keys") > 0)
    star = keyed.select(
        F.col("keys")[0].alias("src"),
        F.explode("keys").alias("dst"),
        "occurred_at",
        "event_id",
        "ingested_at",
    )
    return star.groupBy("src", "dst").agg(
        F.min(F.struct("occurred_at", "event_id")).alias("first"),
        F.min("ingested_at").alias("ingested_at"),
    ).select(
        "src",
        "dst",
        F.col("first.occurred_at").alias("first_seen_at"),
        F.col("first.event_id").alias("event_id"),
        "ingested_at",
    )


def edge_vertices(edges: DataFrame) -> DataFrame:
    """``id_key``, ``first_seen_at``: every vertex of ``edges`` with its earliest sighting."""
    ends = edges.select(F.col("src").alias("id_key"), "first_seen_at").union(
        edges.select(F.col("dst").alias("id_key"), "first_seen_at")
    )
    return ends.groupBy("id_key").agg(F.min("first_seen_at").alias("first_seen_at"))


def events_after(events: DataFrame, *, ingested_at: object | None, batch_id: int | None) -> DataFrame:
    """Events ingested after the high-water mark ``(ingested_at, batch_id)``; all events when it is unset."""
    if ingested_at is None:
        return events
    later = F.col("ingested_at") > F.lit(ingested_at)
    same_time_later_batch = (F.col("ingested_at") == F.lit(ingested_at)) & (
        F.col("batch_id") > F.lit(batch_id if batch_id is not None else -1)
    )
    return events.where(later | same_time_later_batch)


__all__ = ["ID_KEY_PATTERN", "edge_vertices", "event_edges", "event_id_keys", "events_after"]
