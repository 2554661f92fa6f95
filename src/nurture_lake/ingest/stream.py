"""The ingest streaming query: landing files (or Kafka) → ``process_batch`` per micro-batch.

``availableNow`` (``once=True``) processes everything new and stops — for scheduled cluster runs,
the demo and tests; otherwise a ``processingTime`` trigger runs until stopped (or ``timeout_s``).
The checkpoint lives under ``<checkpoint_root>/<region>/ingest_<source>``; rerunning with the
same checkpoint processes only new files.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from nurture_lake.ingest.sinks import IngestCounts, IngestTables, process_batch
from nurture_lake.monitor import metrics_listener
from nurture_lake.streaming import await_query, with_trigger
from nurture_lake.tables import Lake


def landing_stream(spark: SparkSession, lake: Lake, region: str) -> DataFrame:
    """Raw lines of the region's landing files, one row per line, with their source file."""
    folder = lake.landing(region)
    folder.mkdir(parents=True, exist_ok=True)
    return (
        spark.readStream.format("text")
        .option("maxFilesPerTrigger", lake.cfg.ingest.max_files_per_trigger)
        .option("pathGlobFilter", "*.jsonl")
        .load(str(folder))
        .select("value", F.col("_metadata.file_path").alias("source_file"))
    )


@dataclass
class IngestRun:
    """A started ingest query and the counts its micro-batches add up."""

    region: str
    query: StreamingQuery
    counts: IngestCounts


def start_ingest(
    spark: SparkSession,
    lake: Lake,
    region: str,
    *,
    once: bool = True,
    source: DataFrame | None = None,
    source_name: str = "files",
    progress: bool = True,
) -> IngestRun:
    """Start the ingest query for ``region`` (not waiting for it); see :func:`run_ingest`."""
    from nurture_lake.jobs.common import log

    tables = IngestTables.for_region(lake, region)
    tables.ensure_all(spark)
    counts = IngestCounts()
    app_id = f"nurture_lake.ingest.{region}.{source_name}"
    stream = source if source is not None else landing_stream(spark, lake, region)

    def upsert_events(micro_batch: DataFrame, batch_id: int) -> None:
        steps: dict[str, float] = {}
        started = time.perf_counter()
        raw, silver, quarantine = process_batch(
            spark, lake.cfg, tables, micro_batch, batch_id, region=region, app_id=app_id, step_seconds=steps
        )
        counts.add(raw=raw, silver=silver, quarantine=quarantine, step_seconds=steps)
        if progress:
            bad = sum(quarantine.values())
            slowest = ", ".join(f"{name} {s:.1f}" for name, s in sorted(steps.items(), key=lambda kv: -kv[1])[:3])
            log(f"ingest {region}: batch {batch_id}: {raw} raw → {silver} silver, {bad} quarantined "
                f"in {time.perf_counter() - started:.1f} s (slowest steps, s: {slowest})")

    writer = (
        stream.writeStream.queryName(f"ingest_{region}_{source_name}")
        .option("checkpointLocation", lake.checkpoint(region, f"ingest_{source_name}"))
        .foreachBatch(upsert_events)
    )
    return IngestRun(region, with_trigger(writer, lake.cfg, once=once).start(), counts)


def run_ingest(
    spark: SparkSession,
    lake: Lake,
    region: str,
    *,
    once: bool = True,
    source: DataFrame | None = None,
    source_name: str = "files",
    timeout_s: float | None = None,
    progress: bool = True,
) -> IngestCounts:
    """Run the ingest query for ``region`` and return what it wrote.

    ``source`` defaults to :func:`landing_stream`; the Kafka source passes its own stream with the
    same ``value`` column plus Kafka lineage columns and ``source_name="kafka"``.
    """
    outcome = run_ingest_regions(
        spark, lake, [region], once=once, sources={region: source} if source is not None else None,
        source_name=source_name, timeout_s=timeout_s, progress=progress,
    )[region]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def run_ingest_regions(
    spark: SparkSession,
    lake: Lake,
    regions: Sequence[str],
    *,
    once: bool = True,
    sources: Mapping[str, DataFrame] | None = None,
    source_name: str = "files",
    timeout_s: float | None = None,
    progress: bool = True,
) -> dict[str, IngestCounts | BaseException]:
    """Ingest several regions' landing files at once: one query each, running side by side.

    The queries share the session, so one region's Delta commits and small jobs overlap another's
    heavy stages and both cores stay busy. Returns each region's counts, or the error its query
    failed with (the other regions still finish). ``sources`` maps a region to its stream (Kafka);
    regions not in it read their landing files.
    """
    out: dict[str, IngestCounts | BaseException] = {}
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with metrics_listener(spark, lake):  # progress of every micro-batch → global.ops.stream_metrics
        runs: list[IngestRun] = []
        for region in regions:
            try:
                runs.append(start_ingest(spark, lake, region, once=once, source=(sources or {}).get(region),
                                         source_name=source_name, progress=progress))
            except Exception as exc:  # noqa: BLE001 - reported per region to the caller
                out[region] = exc
        for run in runs:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            try:
                await_query(run.query, once=once, timeout_s=left, name=f"ingest {run.region}")
                out[run.region] = run.counts
            except Exception as exc:  # noqa: BLE001 - reported per region to the caller
                out[run.region] = exc
    return {region: out[region] for region in regions}
