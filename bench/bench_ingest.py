"""Ingest throughput on simulated events versus a bare JSON → Delta copy of the same files.

``python -m bench.bench_ingest --events 1000000`` (``make bench`` runs it at the issue's size).
Both runs read the same landing files in the same process; the ratio (ours / bare) shows what full
validation, pseudonymisation, deduplication, quarantine and the consent ledger cost. Each run's driver
JVM CPU is split into Spark tasks, JIT compilation, garbage collection and the rest (``bench.jvm_cpu``).

Between them runs the *floor*: the bronze → silver shape with none of that work (raw lines with their
file and ingest time to a bronze table, then one ``from_json`` with the landing schema to a silver
table). Its ratio to the bare copy says how much of the target the layering alone leaves. It runs
second, in a JVM the bare copy has warmed, which favours it over the bare copy.

The headline figures are the first, cold round: a fresh JVM, as a scheduled ``--once`` job runs. A warm
round follows (``--warm-rounds``, default 1): the same three runs again in the same JVM into fresh tables,
which is what a long-running stream sees once its code is compiled and JIT-warm (``warm`` in the output).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType, StructField, StructType

from bench import jvm_cpu, task_time
from nurture_lake.config import NurtureConfig, load_config
from nurture_lake.ingest import BATCH_STEPS, IngestCounts, run_ingest_regions
from nurture_lake.schemas import LANDING_FIELDS
from nurture_lake.simulator import SimulatorConfig, World
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake

BENCH_ROOT = Path(".bench") / "ingest"
_MAP_FIELDS = ("identifiers", "properties")
LANDING_AS_TEXT = StructType([
    StructField(name, MapType(StringType(), StringType()) if name in _MAP_FIELDS else StringType())
    for name in LANDING_FIELDS
])
"""The landing contract read without checks: every field as text, the two objects as text maps."""


def bench_config(root: Path) -> NurtureConfig:
    """The local configuration with every root under ``root``."""
    return load_config("local", overrides={
        "storage.lake_root": str(root / "lake"), "storage.checkpoint_root": str(root / "checkpoints"),
        "storage.landing_root": str(root / "landing"), "storage.report_root": str(root / "reports"),
    })


def warm_config(cfg: NurtureConfig, out: Path) -> NurtureConfig:
    """``cfg`` with its tables and checkpoints under ``out`` (a warm round's), reading the same landing files."""
    return cfg.model_copy(update={"storage": cfg.storage.model_copy(update={
        "lake_root": str(out / "lake"), "checkpoint_root": str(out / "checkpoints"),
    })})


def simulate(cfg: NurtureConfig, events: int) -> int:
    """Write at least about ``events`` landing lines (20 simulated days, 5 files a day a region).

    A lead writes ~0.92 lines a simulated day at ``events_per_lead_day: 1`` (measured), hence the 1.1.
    """
    days = 20
    sim = SimulatorConfig.from_config(cfg, overrides={
        "leads": max(int(events * 1.1) // days, 100), "days": days, "files_per_day": 5, "events_per_lead_day": 1.0,
    })
    manifest = World(cfg, sim).generate_organic()
    return sum(r.good_events + sum(r.bad_events.values()) for r in manifest.regions.values())


def floor_copy(spark: SparkSession, landing: Path, out: Path) -> None:
    """One region's lines → a bronze table (line, file, ingest time) → a parsed silver table, unchecked."""
    bronze = (
        spark.read.text(str(landing))
        .select("value", F.col("_metadata.file_path").alias("source_file"), F.current_timestamp().alias("ingested_at"))
    )
    bronze.write.format("delta").mode("overwrite").save(str(out / "bronze"))
    (
        spark.read.format("delta").load(str(out / "bronze"))
        .select(F.from_json("value", LANDING_AS_TEXT).alias("_e"), "source_file", "ingested_at")
        .select("_e.*", "source_file", "ingested_at")
        .write.format("delta").mode("overwrite").save(str(out / "silver"))
    )


def step_task_time(groups: dict[str, task_time.TaskTime] | None) -> dict[str, task_time.TaskTime] | None:
    """Task time per batch step (:data:`BATCH_STEPS`), summed over batches and regions.

    The job groups of :func:`~nurture_lake.ingest.sinks.process_batch` end in ``.<batch id>.<step>``;
    jobs outside them (the streaming source's file listing, Delta's snapshot reads before a batch) go
    to ``other``.
    """
    if groups is None:
        return None
    steps = dict.fromkeys((*BATCH_STEPS, "other"), task_time.TaskTime(0.0, 0.0))
    for group, spent in groups.items():
        step = group.rsplit(".", 1)[-1]
        key = step if step in BATCH_STEPS else "other"
        steps[key] = steps[key] + spent
    return steps


def _round(spark: SparkSession, cfg: NurtureConfig, out: Path) -> dict[str, Any]:
    """One measured round: the bare copy, the floor, then ingest, each into fresh tables under ``out``."""
    lake = Lake(cfg)
    bare_s = 0.0
    cpu_before = jvm_cpu.sample(spark)
    for region in lake.regions:
        t0 = time.perf_counter()
        spark.read.json(str(lake.landing(region))).write.format("delta").mode("overwrite").save(
            str(out / "bare" / region)
        )
        bare_s += time.perf_counter() - t0
    bare_cpu = jvm_cpu.since(spark, cpu_before)

    t0 = time.perf_counter()
    for region in lake.regions:
        floor_copy(spark, lake.landing(region), out / "floor" / region)
    floor_s = time.perf_counter() - t0

    # As `nurture-lake ingest` runs it: every region's query side by side in one session.
    cpu_before, jobs_before = jvm_cpu.sample(spark), task_time.last_job_id(spark)
    t0 = time.perf_counter()
    results = run_ingest_regions(spark, lake, lake.regions, progress=False)
    ours_s = time.perf_counter() - t0
    ingest_cpu = jvm_cpu.since(spark, cpu_before)
    step_tasks = step_task_time(task_time.by_job_group(spark, after=jobs_before))
    total = IngestCounts()
    for region, counts in results.items():
        if isinstance(counts, BaseException):
            raise RuntimeError(f"ingest {region} failed") from counts
        total.merge(counts)
    steps = dict.fromkeys(BATCH_STEPS, 0.0) | total.step_seconds
    return {
        "silver_events": total.silver,
        "quarantined": sum(total.quarantine.values()),
        "bare_copy_s": round(bare_s, 2),
        "ingest_s": round(ours_s, 2),
        "ratio_ingest_vs_bare": round(bare_s / ours_s, 3),
        "floor_s": round(floor_s, 2),
        "ratio_floor_vs_bare": round(bare_s / floor_s, 3),
        # Where ingest spends its time: each step's wall time, summed over regions (their queries run
        # side by side, so these add up to more than ingest_s).
        "step_s": {name: round(seconds, 2) for name, seconds in steps.items()},
        # The executor run time and CPU time of each step's tasks, summed over regions (None without a
        # JVM gateway): the work, without the waits for the other region's tasks that step_s includes.
        "step_task_s": None if step_tasks is None else {k: round(v.run_s, 2) for k, v in step_tasks.items()},
        "step_task_cpu_s": None if step_tasks is None else {k: round(v.cpu_s, 2) for k, v in step_tasks.items()},
        # Driver JVM CPU seconds of each run by thread group (None off Linux): both cores are busy in
        # both runs, so this says what the ratio is made of.
        "bare_jvm_cpu": bare_cpu,
        "ingest_jvm_cpu": ingest_cpu,
    }


def run(events: int = 1_000_000, root: Path = BENCH_ROOT, *, warm_rounds: int = 1) -> dict[str, Any]:
    """The cold round (a fresh JVM: the headline figures, as a scheduled job runs), then ``warm_rounds``
    more in the same JVM into fresh tables (``warm``: what a long-running stream sees once its code is
    compiled and JIT-warm; the last round's figures)."""
    root = root.resolve()
    shutil.rmtree(root, ignore_errors=True)
    cfg = bench_config(root)
    started = time.perf_counter()
    lines = simulate(cfg, events)
    print(f"simulated {lines:,} landing lines in {time.perf_counter() - started:.1f} s", flush=True)
    spark = get_spark(cfg, app_name="bench.ingest")

    cold = _round(spark, cfg, root)
    result: dict[str, Any] = {
        "landing_lines": lines,
        **cold,
        "bare_copy_events_per_s": round(lines / cold["bare_copy_s"]),
        "ingest_events_per_s": round(lines / cold["ingest_s"]),
        "target_ratio": 0.6,
    }
    for i in range(1, warm_rounds + 1):
        print(f"warm round {i}/{warm_rounds}", flush=True)
        out = root / f"warm{i}"
        warm = _round(spark, warm_config(cfg, out), out)
        counts = ("silver_events", "quarantined")
        if [warm[key] for key in counts] != [cold[key] for key in counts]:
            raise RuntimeError(f"warm round {i} wrote other counts than the cold one: {warm} vs {cold}")
        result["warm"] = {key: value for key, value in warm.items() if key not in counts}
    for key, value in result.items():
        print(f"  {key:<24} {value}")
    return result


def bench(scale: float = 1.0) -> dict[str, Any]:
    return run(int(1_000_000 * scale))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--warm-rounds", type=int, default=1,
                        help="rounds after the cold one, in the same JVM into fresh tables (default 1; 0: cold only)")
    args = parser.parse_args()
    run(args.events, warm_rounds=args.warm_rounds)
