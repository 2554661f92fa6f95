"""Score due leads into gold.cadence_decisions (Structured Streaming over silver.events, per region)."""

from __future__ import annotations

from collections.abc import Sequence

from nurture_lake.audit import audited_run
from nurture_lake.jobs.common import add_stream_args, job_parser, load_job_config, log, parse
from nurture_lake.scoring.run import decisions_table
from nurture_lake.scoring.stream import run_scoring
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake score [--region R] [--once | --continuous [--timeout-seconds S]]``."""
    parser = job_parser("score", __doc__ or "")
    add_stream_args(parser, verb="score")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    lake = Lake(cfg)
    spark = get_spark(cfg, app_name="nurture_lake.score", master=args.master)
    for region in args.region or lake.regions:
        with audited_run(spark, lake, job="score", region=region, args=vars(args)) as run:
            run.read(spark, lake.table(region, "silver", "events"))
            counts = run_scoring(spark, lake, region, job_run_id=run.run_id, once=args.once,
                                 timeout_s=args.timeout_seconds)
            run.wrote(spark, decisions_table(lake, region), rows=counts.decisions)
        log(f"score {region}: {counts.batches} batches, {counts.due} due leads, {counts.decisions} decisions")


if __name__ == "__main__":
    main()
