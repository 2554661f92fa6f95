"""Ingest landing events into bronze, silver and quarantine (Structured Streaming, per region)."""

from __future__ import annotations

from collections.abc import Sequence

from nurture_lake.audit import audited_run
from nurture_lake.ingest import IngestCounts, IngestTables, kafka_stream, run_ingest
from nurture_lake.jobs.common import add_stream_args, job_parser, load_job_config, log, parse
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


def _summary(region: str, counts: IngestCounts) -> str:
    bad = ", ".join(f"{k}={v}" for k, v in sorted(counts.quarantine.items())) or "none"
    return (f"ingest {region}: {counts.batches} batches, {counts.raw} raw lines, "
            f"{counts.silver} new silver events, quarantined: {bad}")


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake ingest [--source files|kafka] [--region R] [--once | --continuous [--timeout-seconds S]]``."""
    parser = job_parser("ingest", __doc__ or "")
    parser.add_argument("--source", choices=("files", "kafka"), default="files",
                        help="landing files (default) or the region's Kafka topic (config section kafka)")
    add_stream_args(parser, verb="ingest")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    lake = Lake(cfg)
    regions = args.region or lake.regions
    spark = get_spark(cfg, app_name="nurture_lake.ingest", master=args.master)
    for region in regions:
        tables = IngestTables.for_region(lake, region)
        with audited_run(spark, lake, job="ingest", region=region, args=vars(args)) as run:
            source = kafka_stream(spark, cfg.kafka, region=region) if args.source == "kafka" else None
            counts = run_ingest(spark, lake, region, once=args.once, timeout_s=args.timeout_seconds,
                                source=source, source_name=args.source)
            for table, rows in ((tables.bronze, counts.raw), (tables.silver, counts.silver),
                                (tables.quarantine, sum(counts.quarantine.values()))):
                run.wrote(spark, table, rows=rows)
            for reason, rows in counts.quarantine.items():
                run.count(f"quarantine.{reason}", rows)
        log(_summary(region, counts))


if __name__ == "__main__":
    main()
