"""Benchmark: distributed connected components on synthetic edges at 1×, 2×, 4× the base size.

    python -m bench.bench_identity --edges 100000          # quick (shared machines)
    python -m bench.bench_identity --edges 1000000 --scales 1 2 4

The edges are generated in Spark (no driver-side data): ``n`` edges inside blocks of 64 vertices,
so components are small random graphs plus, per block, one link to the next block for every
``chain_every``-th block, which builds long chains that stress the iteration count.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.identity.components import connected_components

_BLOCK_EDGES = 48
_BLOCK_VERTICES = 64


@dataclass(frozen=True)
class BenchRow:
    """One measured size."""

    scale: int
    edges: int
    vertices: int
    components: int
    iterations: int
    seconds: float

    @property
    def edges_per_second(self) -> float:
        return self.edges / self.seconds if self.seconds else float("inf")

    @property
    def microseconds_per_edge(self) -> float:
        return 1e6 * self.seconds / self.edges if self.edges else 0.0


def synthetic_edges(spark: SparkSession, n_edges: int, *, chain_every: int = 8, seed: int = 17) -> DataFrame:
    """``src``, ``dst`` (long): random edges within 64-vertex blocks, some blocks chained to the next."""
    ids = spark.range(n_edges)
    block = F.floor(F.col("id") / _BLOCK_EDGES)
    offset = lambda salt: F.pmod(F.xxhash64(F.col("id"), F.lit(seed + salt)), F.lit(_BLOCK_VERTICES))  # noqa: E731
    is_chain = (F.col("id") % _BLOCK_EDGES == 0) & (block % chain_every != 0)
    return ids.select(
        (block * _BLOCK_VERTICES + offset(1)).alias("src"),
        F.when(is_chain, (block - 1) * _BLOCK_VERTICES + offset(2))
        .otherwise(block * _BLOCK_VERTICES + offset(3))
        .alias("dst"),
    )


def measure(spark: SparkSession, n_edges: int, *, scale: int) -> BenchRow:
    """Build ``n_edges`` edges, materialise them, then time connected components alone."""
    edges = synthetic_edges(spark, n_edges).localCheckpoint(eager=True)
    start = time.perf_counter()
    result = connected_components(edges)
    stats = result.components.agg(
        F.count(F.lit(1)).alias("vertices"), F.countDistinct("component").alias("components")
    ).first()
    seconds = time.perf_counter() - start
    assert stats is not None
    return BenchRow(scale, n_edges, int(stats["vertices"]), int(stats["components"]), result.iterations, seconds)


def run(n_edges: int = 1_000_000, *, scales: Sequence[int] = (1, 2, 4), spark: SparkSession | None = None) -> list[BenchRow]:
    """Measure connected components at each ``scale × n_edges`` and print one line per size."""
    if spark is None:
        from nurture_lake.spark import get_spark

        spark = get_spark(app_name="bench_identity")
    measure(spark, 2_000, scale=0)  # untimed warm-up: JVM JIT and first-job start-up would skew the 1x row
    rows = []
    print(f"{'scale':>5} {'edges':>10} {'vertices':>10} {'components':>10} {'iters':>5} {'wall s':>8} "
          f"{'edges/s':>10} {'us/edge':>8}")
    for scale in scales:
        row = measure(spark, n_edges * scale, scale=scale)
        rows.append(row)
        print(f"{row.scale:>5} {row.edges:>10} {row.vertices:>10} {row.components:>10} {row.iterations:>5} "
              f"{row.seconds:>8.2f} {row.edges_per_second:>10.0f} {row.microseconds_per_edge:>8.2f}", flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bench.bench_identity --edges N [--scales 1 2 4]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--edges", type=int, default=1_000_000, help="edges at scale 1 (default 1,000,000)")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4], help="scale factors (default 1 2 4)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    run(args.edges, scales=args.scales)


def bench(scale: float = 1.0) -> list[BenchRow]:
    """``make bench`` entry: 1M edges at 1×, 2×, 4× (scale multiplies the base size)."""
    return run(int(1_000_000 * scale))


if __name__ == "__main__":
    main()
