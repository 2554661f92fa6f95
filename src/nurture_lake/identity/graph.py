"""Incremental identity graph: new edges + existing ``id_key → lead_id`` → changed rows and merges.

Only components touched by new edges are recomputed. Each existing lead that one of the new
edges touches enters the computation as a single *lead vertex* (``lead|<lead_id>``) linked to
its id_keys seen in the new edges, so connected components runs on a graph the size of the new
data, not of the whole history.

Lead ids are stable:

* a component with no existing lead gets ``prefix + sha256(smallest id_key)[:n]``;
* a component with one existing lead keeps it;
* a component bridging several existing leads keeps the *survivor* — the lead first seen
  earliest (as recorded before the run), ties broken by the smallest lead id — and every other
  lead is recorded as merged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from nurture_lake.identity._frames import checkpoint_fresh
from nurture_lake.identity.components import connected_components
from nurture_lake.identity.edges import edge_vertices

LEAD_VERTEX_PREFIX = "lead|"
"""Prefix of lead vertices in the reduced graph; ``|`` never occurs in an id_key."""


def lead_id_for(id_key: str, *, prefix: str = "L", hex_chars: int = 20) -> str:
    """The lead id a new component anchored at ``id_key`` receives (Python twin of :func:`lead_id_col`)."""
    return prefix + hashlib.sha256(id_key.encode("utf-8")).hexdigest()[:hex_chars]


def lead_id_col(anchor: Column, *, prefix: str = "L", hex_chars: int = 20) -> Column:
    """Spark expression of :func:`lead_id_for`."""
    return F.concat(F.lit(prefix), F.substring(F.sha2(anchor, 256), 1, hex_chars))


@dataclass(frozen=True)
class GraphUpdate:
    """What one incremental run changes."""

    changes: DataFrame
    """``id_key``, ``lead_id``, ``first_seen_at``: rows to insert or overwrite in the graph."""
    merges: DataFrame
    """``merged_lead_id``, ``surviving_lead_id``: leads bridged into a survivor by this run."""
    iterations: int
    """Connected-components iterations of this run."""


def _fresh(df: DataFrame) -> DataFrame:
    # Materialise small intermediates that are used more than once (also sidesteps the Spark 4.0.x
    # optimizer crash on self-joins of aggregates over unions).
    return checkpoint_fresh(df)


def update_graph(
    graph: DataFrame,
    new_edges: DataFrame,
    *,
    lead_prefix: str = "L",
    hex_chars: int = 20,
    max_iterations: int = 100,
    local_max_edges: int = 0,
) -> GraphUpdate:
    """Fold ``new_edges`` (``src``, ``dst``, ``first_seen_at``) into ``graph`` (``id_key``, ``lead_id``, ``first_seen_at``).

    Runs Spark jobs (connected components iterates until a fixed point); returns DataFrames of
    the changes to apply, it writes nothing.
    """
    old = graph.select("id_key", "lead_id", F.col("first_seen_at").alias("old_first_seen_at"))
    seen = _fresh(edge_vertices(new_edges))
    known = _fresh(seen.join(old, "id_key").select("id_key", "lead_id"))

    # Every id_key of the leads touched by this run, with first sightings updated by late events.
    touched = known.select("lead_id").distinct()
    touched_keys = _fresh(
        old.join(touched, "lead_id")
        .join(seen, "id_key", "left")
        .select(
            "id_key",
            "lead_id",
            F.least("old_first_seen_at", F.coalesce("first_seen_at", "old_first_seen_at")).alias("first_seen_at"),
            "old_first_seen_at",
        )
    )
    # Age of a lead as recorded before this run: a late event in the same run cannot reorder survivors.
    lead_first = touched_keys.groupBy("lead_id").agg(F.min("old_first_seen_at").alias("lead_first_seen_at"))

    reduced = new_edges.select("src", "dst").union(
        known.select(F.col("id_key").alias("src"), F.concat(F.lit(LEAD_VERTEX_PREFIX), "lead_id").alias("dst"))
    )
    cc = connected_components(reduced, max_iterations=max_iterations, local_max_edges=local_max_edges)
    comp = _fresh(cc.components)

    is_lead = F.col("vertex").startswith(LEAD_VERTEX_PREFIX)
    comp_leads = comp.where(is_lead).select(
        "component", F.expr(f"substring(vertex, {len(LEAD_VERTEX_PREFIX) + 1})").alias("lead_id")
    ).join(lead_first, "lead_id")
    survivors = comp_leads.groupBy("component").agg(
        F.min(F.struct("lead_first_seen_at", "lead_id"))["lead_id"].alias("survivor")
    )
    anchors = comp.where(~is_lead).groupBy("component").agg(F.min("vertex").alias("anchor"))
    assigned = _fresh(
        anchors.join(survivors, "component", "left").select(
            "component",
            F.coalesce(
                F.col("survivor"), lead_id_col(F.col("anchor"), prefix=lead_prefix, hex_chars=hex_chars)
            ).alias("lead_id"),
        )
    )
    merges = _fresh(
        comp_leads.join(survivors, "component")
        .where(F.col("lead_id") != F.col("survivor"))
        .select(F.col("lead_id").alias("merged_lead_id"), F.col("survivor").alias("surviving_lead_id"))
    )

    from_new = (
        comp.where(~is_lead)
        .join(assigned, "component")
        .join(seen, F.col("vertex") == F.col("id_key"))
        .select("id_key", "lead_id", "first_seen_at")
    )
    repointed = touched_keys.join(
        merges, F.col("lead_id") == F.col("merged_lead_id")
    ).select("id_key", F.col("surviving_lead_id").alias("lead_id"), "first_seen_at")
    candidates = from_new.union(repointed).groupBy("id_key").agg(
        F.min("lead_id").alias("lead_id"), F.min("first_seen_at").alias("first_seen_at")
    )
    changes = (
        candidates.join(old.withColumnRenamed("lead_id", "old_lead_id"), "id_key", "left")
        .select(
            "id_key",
            "lead_id",
            F.least("first_seen_at", F.coalesce("old_first_seen_at", "first_seen_at")).alias("first_seen_at"),
            "old_lead_id",
            "old_first_seen_at",
        )
        .where(
            F.col("old_lead_id").isNull()
            | (F.col("old_lead_id") != F.col("lead_id"))
            | (F.col("first_seen_at") < F.col("old_first_seen_at"))
        )
        .select("id_key", "lead_id", "first_seen_at")
    )
    return GraphUpdate(changes=_fresh(changes), merges=merges, iterations=cc.iterations)


__all__ = ["LEAD_VERTEX_PREFIX", "GraphUpdate", "lead_id_col", "lead_id_for", "update_graph"]
