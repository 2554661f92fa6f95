"""The ingest streaming query: landing files (or Kafka) → ``process_batch`` per micro-batch.

``availableNow`` (``once=True``) processes everything new and stops — for scheduled cluster runs,
the demo and tests; otherwise a ``processingTime`` trigger runs until stopped (or ``timeout_s``).
The checkpoint lives under ``<checkpoint_root>/<region>/ingest_<source>``; rerunning with the
same checkpoint processes only new files.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

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
    from nurture_lake.jobs.common import log

    tables = IngestTables.for_region(lake, region)
    tables.ensure_all(spark)
    counts = IngestCounts()
    app_id = f"nurture_lake.ingest.{region}.{source_name}"
    stream = source if source is not None else landing_stream(spark, lake, region)

    def upsert_events(micro_batch: DataFrame, batch_id: int) -> None:
        raw, silver, quarantine = process_batch(
            spark, lake.cfg, tables, micro_batch, batch_id, region=region, app_id=app_id
        )
        counts.add(raw=raw, silver=silver, quarantine=quarantine)
        if progress:
            bad = sum(quarantine.values())
            log(f"ingest {region}: batch {batch_id}: {raw} raw → {silver} silver, {bad} quarantined")

    writer = (
        stream.writeStream.queryName(f"ingest_{region}_{source_name}")
        .option("checkpointLocation", lake.checkpoint(region, f"ingest_{source_name}"))
        .foreachBatch(upsert_events)
    )
    with metrics_listener(spark, lake):  # progress of every micro-batch → global.ops.stream_metrics
        query = with_trigger(writer, lake.cfg, once=once).start()
        await_query(query, once=once, timeout_s=timeout_s, name=f"ingest {region}")
    return counts
