"""Benchmark of the feature layer: point-in-time features for every lead over synthetic lead events.

Generates ``events`` lead events for ``leads`` leads with ``spark.range`` (no Python loops), writes
them to parquet under ``.bench/features`` (generation is not timed), then times
``compute_features`` for one request per lead (as of the newest event) and, separately, the
``gold.lead_features`` row build (compact history + features). Prints wall time, events/s and
microseconds per event at each scale (1x, 2x, 4x multiply both leads and events).

    python -m bench.bench_features --leads 10000 --events 500000 --scales 1 2 4
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.config import PROJECT_ROOT, load_config
from nurture_lake.features import FeatureSettings, build_feature_rows, compute_features
from nurture_lake.spark import get_spark

AS_OF = datetime(2026, 6, 1)
SPAN_DAYS = 120
# Event mix (repeats set the weights): touches, engagements, organic and stage events.
MIX = (
    ["email_sent"] * 30 + ["email_delivered"] * 10 + ["email_open"] * 12 + ["email_click"] * 4
    + ["email_reply"] + ["push_sent"] * 10 + ["push_open"] * 4 + ["chat_sent"] * 4 + ["chat_reply"]
    + ["sms_sent"] * 3 + ["sms_click"] + ["web_visit"] * 8 + ["form_submit"] + ["meeting_booked"]
    + ["email_unsubscribe"]
)
ZONES = ("America/New_York", "America/Chicago", "America/Los_Angeles", "America/Denver")


def synthetic_lead_events(spark: SparkSession, *, leads: int, events: int, seed: int = 7) -> DataFrame:
    """``events`` lead events (silver.events columns the features read, plus ``lead_id``)."""
    mix = F.array(*(F.lit(t) for t in MIX))
    zones = F.array(*(F.lit(z) for z in ZONES))
    span_s = SPAN_DAYS * 86_400
    ident = F.col("id")
    lead = F.pmod(F.xxhash64(ident, F.lit(seed)), F.lit(leads))
    body = spark.range(events).select(
        F.concat(F.lit("e"), ident.cast("string")).alias("event_id"),
        F.element_at(mix, (F.pmod(F.xxhash64(ident, F.lit(seed + 1)), F.lit(len(MIX))) + 1).cast("int"))
        .alias("event_type"),
        (F.lit(AS_OF).cast("timestamp")
         - F.make_interval(secs=F.pmod(F.xxhash64(ident, F.lit(seed + 2)), F.lit(span_s)).cast("decimal(18,6)")))
        .alias("occurred_at"),
        F.concat(F.lit("L"), lead.cast("string")).alias("lead_id"),
    )
    created = spark.range(leads).select(
        F.concat(F.lit("c"), F.col("id").cast("string")).alias("event_id"),
        F.lit("lead_created").alias("event_type"),
        (F.lit(AS_OF).cast("timestamp") - F.expr(f"INTERVAL {SPAN_DAYS + 1} DAYS")).alias("occurred_at"),
        F.concat(F.lit("L"), F.col("id").cast("string")).alias("lead_id"),
    )
    both = body.unionByName(created)
    return both.select(
        "event_id", "event_type", "occurred_at", F.lit("us").alias("region"),
        F.create_map(F.lit("crm_id"), F.col("lead_id")).alias("identifiers"),
        F.split("event_type", "_").getItem(0).alias("channel"),
        F.lit(None).cast("string").alias("decision_id"),
        F.when(F.col("event_type") == "lead_created", F.create_map(
            F.lit("timezone"),
            F.element_at(zones, (F.pmod(F.xxhash64("lead_id"), F.lit(len(ZONES))) + 1).cast("int")),
        )).alias("properties"),
        F.lit("1").alias("schema_version"), F.lit(None).cast("string").alias("source_file"),
        (F.col("occurred_at") + F.expr("INTERVAL 90 SECONDS")).alias("ingested_at"),
        F.lit(0).cast("long").alias("batch_id"), "lead_id",
    )


def _timed(df: DataFrame) -> float:
    start = time.perf_counter()
    df.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - start


def run(leads: int = 100_000, events: int = 5_000_000, scale: int = 1, *, spark: SparkSession | None = None) -> dict[str, Any]:
    """Time the feature computation at ``scale`` x (leads and events); print and return the figures."""
    cfg = load_config("local")
    spark = spark or get_spark(cfg, app_name="nurture_lake.bench_features")
    n_leads, n_events = leads * scale, events * scale
    path = PROJECT_ROOT / ".bench" / "features" / f"events_{n_leads}_{n_events}"
    if not path.exists():
        synthetic_lead_events(spark, leads=n_leads, events=n_events).write.mode("overwrite").parquet(str(path))
    lead_events = spark.read.parquet(str(path))
    total = n_events + n_leads
    requests = spark.range(n_leads).select(
        F.concat(F.lit("L"), F.col("id").cast("string")).alias("lead_id"), F.lit(AS_OF).cast("timestamp").alias("as_of"),
    )
    settings = FeatureSettings.from_config(cfg)
    pit = _timed(compute_features(lead_events, requests, regions=cfg.regions, settings=settings))
    table = _timed(build_feature_rows(
        lead_events, region="us", as_of=AS_OF, events_hwm=AS_OF, regions=cfg.regions, settings=settings,
    ))
    result = {
        "scale": scale, "leads": n_leads, "events": total,
        "compute_features_s": pit, "compute_features_events_per_s": total / pit, "compute_features_us_per_event": 1e6 * pit / total,
        "table_rows_s": table, "table_rows_events_per_s": total / table, "table_rows_us_per_event": 1e6 * table / total,
    }
    print(
        f"{scale}x  leads={n_leads:>9,} events={total:>11,}  "
        f"compute_features {pit:7.1f}s {total / pit:>11,.0f} ev/s {1e6 * pit / total:6.2f} us/ev  |  "
        f"table rows {table:7.1f}s {total / table:>11,.0f} ev/s {1e6 * table / total:6.2f} us/ev",
        flush=True,
    )
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_features", description=__doc__)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--keep-data", action="store_true", help="keep the generated parquet under .bench/features")
    args = parser.parse_args(list(argv) if argv is not None else None)
    results = [run(args.leads, args.events, scale) for scale in args.scales]
    base = results[0]
    for r in results[1:]:
        ratio = r["compute_features_us_per_event"] / base["compute_features_us_per_event"]
        print(f"cost per event at {r['scale']}x vs {base['scale']}x: {ratio:.2f} (1.00 = linear scaling)")
    if not args.keep_data:
        shutil.rmtree(PROJECT_ROOT / ".bench" / "features", ignore_errors=True)


def bench(scale: float = 1.0) -> list[dict[str, Any]]:
    """``make bench`` entry: 100k leads × 5M events at 1×, 2×, 4× (scale multiplies the base size)."""
    return [run(int(100_000 * scale), int(5_000_000 * scale), s) for s in (1, 2, 4)]


if __name__ == "__main__":
    main()
