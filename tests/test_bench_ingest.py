"""The ingest benchmarks (bench/bench_ingest.py, bench/bench_dedup.py) at a tiny size, and the JVM CPU split
(bench/jvm_cpu.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import reduce
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from bench import bench_dedup, bench_ingest, jvm_cpu, task_time
from nurture_lake.spark import job_group
from nurture_lake.tables import Lake


def test_jvm_cpu_splits_the_work_of_a_job(spark: SparkSession) -> None:
    before = jvm_cpu.sample(spark)
    if not sys.platform.startswith("linux"):  # thread CPU comes from /proc
        assert before is None
        return
    spark.range(3_000_000).select((F.col("id") * 7 % 1013).alias("k")).groupBy("k").count().collect()
    spent = jvm_cpu.since(spark, before)
    assert spent is not None
    assert set(spent) == {"cpu_s", *jvm_cpu.THREAD_GROUPS, "other_s"}
    assert spent["cpu_s"] > 0 and spent["tasks_s"] > 0  # the job ran on executor task threads
    assert all(spent[group] >= 0 for group in jvm_cpu.THREAD_GROUPS)
    parts = sum(spent[group] for group in jvm_cpu.THREAD_GROUPS) + spent["other_s"]
    assert abs(parts - spent["cpu_s"]) <= 0.25  # each figure is rounded to 0.1 s


def test_task_time_counts_the_jobs_after_the_mark_by_job_group(spark: SparkSession) -> None:
    def shuffle(rows: int) -> None:
        spark.range(rows).select((F.col("id") * 7 % 1013).alias("k")).groupBy("k").count().collect()

    with job_group(spark, "test.before", "before the mark"):
        shuffle(200_000)
    mark = task_time.last_job_id(spark)
    assert mark is not None and mark >= 0
    with job_group(spark, "test.after", "after the mark"):
        shuffle(2_000_000)
    shuffle(200_000)  # outside any group
    spent = task_time.by_job_group(spark, after=mark)
    assert spent is not None
    assert set(spent) == {"test.after", task_time.NO_GROUP}  # the job before the mark is not counted
    for times in spent.values():
        assert times.run_s > 0 and times.cpu_s > 0
    assert task_time.by_job_group(spark, after=task_time.last_job_id(spark)) == {}


def test_task_time_survives_the_store_dropping_skipped_stages(spark: SparkSession) -> None:
    # Each collect of a shuffled frame after the first is a job whose map stage is skipped (its shuffle
    # files are reused). Past spark.ui.retainedStages (1,000) the status store drops stages, skipped ones
    # first; those ran nothing, so the totals stay whole and no IncompleteHistory is raised.
    counts = spark.range(1_000).groupBy((F.col("id") % 7).alias("k")).count()
    mark = task_time.last_job_id(spark)
    assert mark is not None
    with job_group(spark, "test.repeat", "the same shuffle read again and again"):
        for _ in range(600):
            counts.collect()
    spent = task_time.by_job_group(spark, after=mark)
    assert spent is not None and set(spent) == {"test.repeat"} and spent["test.repeat"].run_s > 0
    store = spark.sparkContext._jsc.sc().statusStore()  # type: ignore[union-attr]
    jobs = [job for job in task_time._jobs(store) if job.job_id > mark]
    assert len(jobs) >= 600  # with AQE the first collect runs its map stage as a job of its own
    stage_ids = {stage_id for job in jobs for stage_id in job.stage_ids}
    held = set(task_time._stage_times(spark, store))
    assert stage_ids - held  # the store did drop some of these jobs' stages


def test_ingest_benchmark_ingests_every_landing_line_and_reports_its_ratio(spark: SparkSession, tmp_path: Path) -> None:
    root = tmp_path / "bench"
    result = bench_ingest.run(events=2_000, root=root)

    lake = Lake(bench_ingest.bench_config(root.resolve()))
    landing = spark.read.text([str(lake.landing(r)) for r in lake.regions]).select("value")

    def every_region(read: Callable[[str], DataFrame]) -> DataFrame:
        return reduce(DataFrame.unionByName, [read(region) for region in lake.regions])

    bronze = every_region(lambda r: lake.table(r, "bronze", "events_raw").read(spark).select("value"))
    assertDataFrameEqual(bronze, landing)  # every line kept raw, none twice
    assert result["landing_lines"] == landing.count()
    assert result["silver_events"] + result["quarantined"] == result["landing_lines"]
    # The ratio comes from the unrounded times; the printed times are rounded to 0.01 s.
    bare, ours = result["bare_copy_s"], result["ingest_s"]
    assert round((bare - 0.005) / (ours + 0.005), 3) <= result["ratio_ingest_vs_bare"] <= round(
        (bare + 0.005) / (ours - 0.005), 3)
    assert set(result["step_s"]) == set(bench_ingest.BATCH_STEPS)
    # Task time per step: the validating pass and every write ran tasks; "other" holds the jobs outside the steps.
    assert set(result["step_task_s"]) == set(result["step_task_cpu_s"]) == {*bench_ingest.BATCH_STEPS, "other"}
    assert all(result["step_task_s"][step] > 0 for step in ("validate+bronze", "quarantine", "silver"))

    # The floor copies the same lines raw and parses them unchecked: every event ingest kept is among them.
    floor_root = root.resolve() / "floor"

    def floor_table(layer: str, column: str) -> DataFrame:
        return every_region(lambda r: spark.read.format("delta").load(str(floor_root / r / layer)).select(column))

    assertDataFrameEqual(floor_table("bronze", "value"), landing)
    silver_ids = every_region(lambda r: lake.table(r, "silver", "events").read(spark).select("event_id"))
    assertDataFrameEqual(floor_table("silver", "event_id").join(silver_ids, "event_id", "left_semi").distinct(), silver_ids)
    assert result["floor_s"] > 0 and result["ratio_floor_vs_bare"] > 0
    if sys.platform.startswith("linux"):  # the CPU split reads /proc
        for run in ("bare_jvm_cpu", "ingest_jvm_cpu"):
            assert set(result[run]) == {"cpu_s", *jvm_cpu.THREAD_GROUPS, "other_s"}
            assert result[run]["tasks_s"] > 0

    # The warm round ran the same three copies again, in the same JVM, into its own fresh tables.
    assert set(result["warm"]) == {"bare_copy_s", "ingest_s", "ratio_ingest_vs_bare", "floor_s",
                                   "ratio_floor_vs_bare", "step_s", "step_task_s", "step_task_cpu_s",
                                   "bare_jvm_cpu", "ingest_jvm_cpu"}
    warm_lake = Lake(bench_ingest.warm_config(lake.cfg, root.resolve() / "warm1"))
    warm_bronze = every_region(lambda r: warm_lake.table(r, "bronze", "events_raw").read(spark).select("value"))
    assertDataFrameEqual(warm_bronze, landing)
    warm_silver = every_region(lambda r: warm_lake.table(r, "silver", "events").read(spark).select("event_id"))
    assertDataFrameEqual(warm_silver, silver_ids)


def test_dedup_benchmark_finds_copies_within_its_window_and_all_copies_without(spark: SparkSession, tmp_path: Path) -> None:
    # 25 and 30 history days of 200 events; 50 copies each of events ingested 1 and 20 days before the batch.
    rows = bench_dedup.run(200, days=(25, 30), batch=1_000, copies_per_age=50, root=tmp_path / "dedup", spark=spark)
    assert [(r.days, r.silver_rows, r.window_rows, r.whole_found, r.window_found) for r in rows] == [
        (25, 5_000, 1_400, 100, 50),  # the 7-day window holds days 1-7 and finds only the 1-day-old copies
        (30, 6_000, 1_400, 100, 50),  # more history: the window's rows stay the same
    ]
    assert all(r.whole_s > 0 and r.window_s > 0 for r in rows)
