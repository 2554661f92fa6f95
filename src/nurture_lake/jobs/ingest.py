"""Ingest landing events into bronze, silver and quarantine (Structured Streaming, per region)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from nurture_lake.audit import audited_run
from nurture_lake.ingest import IngestCounts, IngestTables, kafka_stream, run_ingest_regions
from nurture_lake.jobs.common import add_stream_args, job_parser, load_job_config, log, parse
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


def _summary(region: str, counts: IngestCounts) -> str:
    bad = ", ".join(f"{k}={v}" for k, v in sorted(counts.quarantine.items())) or "none"
    return (f"ingest {region}: {counts.batches} batches, {counts.raw} raw lines, "
            f"{counts.silver} new silver events, quarantined: {bad}")


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake ingest [--source files|kafka] [--region R] [--once | --continuous [--timeout-seconds S]]``.

    Every selected region's query runs side by side in one Spark session; each region gets its own
    audit row, and the job fails (after the other regions finished) if any region failed.
    """
    parser = job_parser("ingest", __doc__ or "")
    parser.add_argument("--source", choices=("files", "kafka"), default="files",
                        help="landing files (default) or the region's Kafka topic (config section kafka)")
    add_stream_args(parser, verb="ingest")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    lake = Lake(cfg)
    regions = args.region or lake.regions
    spark = get_spark(cfg, app_name="nurture_lake.ingest", master=args.master)
    started = datetime.now(UTC)
    sources = (
        {region: kafka_stream(spark, cfg.kafka, region=region) for region in regions}
        if args.source == "kafka" else None
    )
    results = run_ingest_regions(spark, lake, regions, once=args.once, sources=sources, source_name=args.source,
                                 timeout_s=args.timeout_seconds)
    failed: list[str] = []
    for region in regions:
        tables = IngestTables.for_region(lake, region)
        outcome = results[region]
        try:
            with audited_run(spark, lake, job="ingest", region=region, args=vars(args), started_at=started) as run:
                if isinstance(outcome, BaseException):
                    raise outcome
                for table, rows in ((tables.bronze, outcome.raw), (tables.silver, outcome.silver),
                                    (tables.quarantine, sum(outcome.quarantine.values()))):
                    run.wrote(spark, table, rows=rows)
                for reason, rows in outcome.quarantine.items():
                    run.count(f"quarantine.{reason}", rows)
        except Exception as exc:  # noqa: BLE001 - recorded in the audit row; the job fails below
            log(f"ingest {region}: FAILED: {exc}")
            failed.append(region)
            continue
        log(_summary(region, outcome))
    if failed:
        raise SystemExit(f"ingest failed for region(s): {', '.join(failed)} (see global.ops.audit_runs)")


if __name__ == "__main__":
    main()
