"""Ingest: landing events → bronze (raw) → silver (typed, deduplicated) + quarantine, consent."""

from nurture_lake.ingest.kafka import kafka_options, kafka_records, kafka_stream
from nurture_lake.ingest.parse import CHECK_ORDER, rank_duplicates, validate_events
from nurture_lake.ingest.sinks import BATCH_STEPS, IngestCounts, IngestTables, process_batch
from nurture_lake.ingest.stream import IngestRun, landing_stream, run_ingest, run_ingest_regions, start_ingest

__all__ = [
    "BATCH_STEPS",
    "CHECK_ORDER",
    "IngestCounts",
    "IngestRun",
    "IngestTables",
    "kafka_options",
    "kafka_records",
    "kafka_stream",
    "landing_stream",
    "process_batch",
    "rank_duplicates",
    "run_ingest",
    "run_ingest_regions",
    "start_ingest",
    "validate_events",
]
