"""Distributed connected components: min-label hooking with pointer jumping.

Every vertex keeps a parent pointer ``p(v) <= v``. One iteration

1. joins each edge ``(u, v)`` with both parents ``pu``, ``pv``;
2. *hooks* where they differ: the larger parent is pointed at the smaller one
   (``p(max(pu, pv)) <- min(pu, pv)``), and each endpoint at the other's parent
   (``p(u) <- pv``, ``p(v) <- pu``), keeping the minimum proposal per vertex;
3. *jumps* pointers once: ``p(v) <- p(p(v))``;
4. cuts lineage with ``localCheckpoint()`` (once per iteration).

Parents only ever decrease and always stay inside the component, so the loop reaches a fixed
point; there every edge has equal parents and every parent is a root, i.e. each vertex points at
the smallest vertex of its component. Hooking whole trees at their roots plus pointer jumping
needs O(log n) iterations on long chains instead of the n of plain label propagation.

Vertex ids may be of any orderable type (strings, longs). Example::

    result = connected_components(edges_df, src="a", dst="b")
    result.components   # columns: vertex, component (= smallest vertex of the component)
    result.iterations
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from nurture_lake.identity._frames import checkpoint_fresh


class ComponentsDidNotConverge(RuntimeError):
    """Raised when connected components needs more than ``max_iterations`` iterations."""


@dataclass(frozen=True)
class ComponentsResult:
    """Output of :func:`connected_components`."""

    components: DataFrame
    """``vertex``, ``component``: one row per vertex; ``component`` is the smallest vertex of its component."""
    iterations: int
    """Hook-and-jump iterations run, including the last one that confirmed the fixed point."""


def _checkpoint(df: DataFrame) -> DataFrame:
    # Materialise each step and cut its lineage (and Spark 4.0's growing origin plan).
    return checkpoint_fresh(df)


def connected_components(
    edges: DataFrame,
    *,
    src: str = "src",
    dst: str = "dst",
    max_iterations: int = 100,
    local_max_edges: int = 0,
) -> ComponentsResult:
    """Connected components of the undirected graph given by ``edges`` (``src``, ``dst`` columns).

    A row with ``src == dst`` (or a null ``dst``) declares an isolated vertex. This function runs
    Spark jobs (one small count per iteration) because the number of iterations depends on the data.

    ``local_max_edges > 0``: a graph of at most that many edge rows (an incremental run's delta) is
    solved on the driver with union-find in one collect instead — the same result (each vertex's
    smallest component member) without a dozen tiny Spark jobs per iteration; ``iterations`` is 0.
    """
    raw = edges.select(F.col(src).alias("u"), F.coalesce(F.col(dst), F.col(src)).alias("v")).where(
        F.col("u").isNotNull()
    )
    if local_max_edges > 0:
        rows = raw.limit(local_max_edges + 1).collect()
        if len(rows) <= local_max_edges:
            labels = _union_find_labels((r["u"], r["v"]) for r in rows)
            schema = StructType([StructField("vertex", raw.schema["u"].dataType, True),
                                 StructField("component", raw.schema["u"].dataType, True)])
            components = edges.sparkSession.createDataFrame(sorted(labels.items()), schema)
            return ComponentsResult(components=components, iterations=0)
    links = _checkpoint(
        raw.where(F.col("u") != F.col("v"))
        .select(F.least("u", "v").alias("u"), F.greatest("u", "v").alias("v"))
        .distinct(),
    )
    vertices = raw.select(F.col("u").alias("id")).union(raw.select(F.col("v").alias("id"))).distinct()
    # Start one propagation step ahead: each vertex points at its smallest neighbour (or itself).
    smallest_neighbour = links.groupBy(F.col("v").alias("id")).agg(F.min("u").alias("n"))
    parent = _checkpoint(
        vertices.join(smallest_neighbour, "id", "left").select(
            "id", F.coalesce(F.col("n"), F.col("id")).alias("p")
        ),
    )

    iterations = 0
    while True:
        iterations += 1
        if iterations > max_iterations:
            raise ComponentsDidNotConverge(
                f"connected components did not converge within {max_iterations} iterations"
            )
        parent = _iterate(links, parent)
        if parent.where(F.col("changed")).limit(1).count() == 0:
            break
        parent = parent.drop("changed")

    components = parent.select(F.col("id").alias("vertex"), F.col("p").alias("component"))
    return ComponentsResult(components=components, iterations=iterations)


def _union_find_labels(pairs: Iterable[tuple[Any, Any]]) -> dict[Any, Any]:
    """Every vertex of ``pairs`` → the smallest vertex of its connected component (driver-side)."""
    parent: dict[Any, Any] = {}

    def root(x: Any) -> Any:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    for u, v in pairs:
        ru, rv = root(u), root(v)
        if ru != rv:  # the smaller root wins, so every root is its component's minimum
            parent[max(ru, rv)] = min(ru, rv)
    return {x: root(x) for x in parent}


def _iterate(links: DataFrame, parent: DataFrame) -> DataFrame:
    """One hook + pointer-jump step; the result carries ``changed`` per vertex."""
    pu = parent.select(F.col("id").alias("u"), F.col("p").alias("pu"))
    pv = parent.select(F.col("id").alias("v"), F.col("p").alias("pv"))
    joined = links.join(pu, "u").join(pv, "v").where(F.col("pu") != F.col("pv"))
    low, high = F.least("pu", "pv"), F.greatest("pu", "pv")
    proposals = (
        joined.select(high.alias("id"), low.alias("p"))
        .union(joined.select(F.col("u").alias("id"), F.col("pv").alias("p")))
        .union(joined.select(F.col("v").alias("id"), F.col("pu").alias("p")))
        .groupBy("id")
        .agg(F.min("p").alias("proposed"))
    )
    # Cached, hooked is a leaf for the optimizer: the self-join below then avoids the Spark 4.0.x
    # crash on self-joins of aggregates over unions, and it is computed once.
    hooked = parent.join(proposals, "id", "left").select(
        "id",
        F.least(F.col("p"), F.coalesce(F.col("proposed"), F.col("p"))).alias("p"),
        F.col("p").alias("old_p"),
    ).cache()
    grand = hooked.select(F.col("id").alias("p"), F.col("p").alias("pp"))
    jumped = hooked.join(grand, "p").select(
        "id",
        F.col("pp").alias("p"),
        (F.col("pp") != F.col("old_p")).alias("changed"),
    )
    result = _checkpoint(jumped)
    hooked.unpersist()
    return result


__all__ = ["ComponentsDidNotConverge", "ComponentsResult", "connected_components"]
