"""Benchmark: ingest's duplicate check as silver's history grows, whole table against a lookback window.

    python -m bench.bench_dedup                                  # 30, 60, 120 days of ~33k events a day
    python -m bench.bench_dedup --per-day 5000 --days 10 20      # quick

Silver is built as ingest leaves it: each simulated day's events are written with their own
``ingested_at``, one file a day, so a file's statistics cover one day. A new micro-batch of ``batch``
valid events, with copies of events ingested 1 and 20 days earlier, is then checked against silver
exactly as ``process_batch`` does (``_silver_history`` + ``_split_duplicates``): against the whole table
(``ingest.dedup_lookback: null``, the default and the same-run baseline) and within a 7-day window.
The whole-table check reads every event id silver holds, so its time grows with the history; the
window reads the last week's files only. A copy whose original is older than the window is not
found (``found`` shows it): that is the trade the window makes.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.ingest.sinks import _silver_history, _split_duplicates
from nurture_lake.schemas import SILVER_EVENTS
from nurture_lake.tables import TableRef

BENCH_ROOT = Path(".bench") / "dedup"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
"""The new batch's ingestion time; history lies before it."""
LOOKBACK = timedelta(days=7)
COPY_AGES_DAYS = (1, 20)
"""Copies in the batch repeat events ingested this many days before it: inside and outside the window."""


@dataclass(frozen=True)
class DedupRow:
    """One history size, both checks."""

    days: int
    silver_rows: int
    window_rows: int
    whole_s: float
    window_s: float
    whole_found: int
    window_found: int

    @property
    def window_vs_whole(self) -> float:
        return self.window_s / self.whole_s if self.whole_s else float("nan")


def _event_id(day: Column, n: Column) -> Column:
    """A stable 32-hex event id for the ``n``-th event of history day ``day`` (1 = the day before the batch)."""
    return F.substring(F.sha2(F.concat_ws(":", F.lit("e"), day.cast("string"), n.cast("string")), 256), 1, 32)


def history_days(spark: SparkSession, first_day: int, last_day: int, per_day: int) -> DataFrame:
    """Silver rows for history days ``first_day..last_day`` (days before :data:`NOW`), ``per_day`` a day."""
    days = last_day - first_day + 1
    ids = spark.range(days * per_day)
    day = (F.lit(first_day) + F.floor(F.col("id") / per_day)).cast("int")
    n = F.col("id") % per_day
    ingested = F.lit(NOW) - F.make_dt_interval(day)
    rows = ids.select(
        _event_id(day, n).alias("event_id"),
        F.lit("web_visit").alias("event_type"),
        (ingested - F.expr("INTERVAL 1 HOUR")).alias("occurred_at"),
        F.lit("us").alias("region"),
        F.create_map(F.lit("cookie_id"), F.concat(F.lit("cookie_id:"), n.cast("string"))).alias("identifiers"),
        F.lit("web").alias("channel"),
        F.lit(None).cast("string").alias("decision_id"),
        F.create_map(F.lit("page"), F.lit("/pricing")).alias("properties"),
        F.lit("1").alias("schema_version"),
        F.concat(F.lit("landing/day-"), day.cast("string"), F.lit(".jsonl")).alias("source_file"),
        ingested.alias("ingested_at"),
        day.cast("bigint").alias("batch_id"),
    )
    # One file a day, as one micro-batch a day would leave it: a file's ingested_at stats cover one day.
    return rows.repartitionByRange(days, "ingested_at").sortWithinPartitions("ingested_at")


def new_batch(spark: SparkSession, size: int, copies_per_age: int) -> DataFrame:
    """``size`` valid rows of the next micro-batch: fresh events plus copies of older ones."""
    fresh = spark.range(size - copies_per_age * len(COPY_AGES_DAYS)).select(
        F.substring(F.sha2(F.concat(F.lit("new:"), F.col("id").cast("string")), 256), 1, 32).alias("event_id")
    )
    copies = [spark.range(copies_per_age).select(_event_id(F.lit(age), F.col("id")).alias("event_id")) for age in COPY_AGES_DAYS]
    rows = fresh
    for part in copies:
        rows = rows.unionByName(part)
    return rows.select(
        "event_id",
        F.lit(NOW - timedelta(minutes=5)).alias("occurred_at"),
        F.lit("landing/new.jsonl").alias("source_file"),
        F.concat(F.lit('{"event_id": "'), F.col("event_id"), F.lit('"}')).alias("value"),
        F.lit(10_000).cast("bigint").alias("batch_id"),
    ).localCheckpoint(eager=True)


def time_check(spark: SparkSession, silver: TableRef, batch: DataFrame, *, since: datetime | None) -> tuple[float, int]:
    """Seconds for one duplicate check of ``batch`` against silver, and how many duplicates it found."""
    start = time.perf_counter()
    keep, dups = _split_duplicates(_silver_history(spark, silver, since=since), batch)
    keep.count()
    found = dups.count() if dups is not None else 0
    return time.perf_counter() - start, found


def run(
    per_day: int = 33_334,
    *,
    days: Sequence[int] = (30, 60, 120),
    batch: int = 50_000,
    copies_per_age: int = 500,
    root: Path = BENCH_ROOT,
    spark: SparkSession | None = None,
) -> list[DedupRow]:
    """Grow silver's history to each of ``days`` (oldest days appended last) and time both checks."""
    if spark is None:
        from nurture_lake.spark import get_spark

        spark = get_spark(app_name="bench_dedup")
    root = root.resolve()
    shutil.rmtree(root, ignore_errors=True)
    silver = TableRef("bench", "silver", "events", path=str(root / "silver"))
    silver.ensure(spark, SILVER_EVENTS)
    rows_batch = new_batch(spark, batch, copies_per_age)
    since = NOW - LOOKBACK

    # Untimed warm-up on a tiny table: the JVM's JIT and first-job start-up would skew the first row.
    warm = TableRef("bench", "silver", "warm_up", path=str(root / "warm"))
    warm.ensure(spark, SILVER_EVENTS)
    warm.append(history_days(spark, 1, 3, 100))
    for bound in (None, since):
        time_check(spark, warm, rows_batch, since=bound)

    out: list[DedupRow] = []
    built = 0
    print(f"{'days':>5} {'silver rows':>12} {'window rows':>12} {'whole s':>8} {'window s':>9} {'ratio':>6} "
          f"{'found whole':>11} {'found window':>12}", flush=True)
    for total_days in days:
        if total_days > built:
            silver.append(history_days(spark, built + 1, total_days, per_day).select(*SILVER_EVENTS.fieldNames()))
            built = total_days
        whole_s, whole_found = time_check(spark, silver, rows_batch, since=None)
        window_s, window_found = time_check(spark, silver, rows_batch, since=since)
        row = DedupRow(
            days=total_days,
            silver_rows=total_days * per_day,
            window_rows=_silver_history(spark, silver, since=since).count(),
            whole_s=whole_s,
            window_s=window_s,
            whole_found=whole_found,
            window_found=window_found,
        )
        out.append(row)
        print(f"{row.days:>5} {row.silver_rows:>12,} {row.window_rows:>12,} {row.whole_s:>8.2f} {row.window_s:>9.2f} "
              f"{row.window_vs_whole:>6.2f} {row.whole_found:>11} {row.window_found:>12}", flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bench.bench_dedup [--per-day N] [--days 30 60 120] [--batch N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--per-day", type=int, default=33_334, help="silver events a history day (default 33,334)")
    parser.add_argument("--days", type=int, nargs="+", default=[30, 60, 120], help="history lengths (default 30 60 120)")
    parser.add_argument("--batch", type=int, default=50_000, help="valid events in the new micro-batch")
    args = parser.parse_args(list(argv) if argv is not None else None)
    run(args.per_day, days=args.days, batch=args.batch)


def bench(scale: float = 1.0) -> list[DedupRow]:
    """``make bench`` entry: ~1M, 2M, 4M silver rows (30, 60, 120 days); scale multiplies the daily volume."""
    return run(max(int(33_334 * scale), 100))


if __name__ == "__main__":
    main()
