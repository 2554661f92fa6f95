"""Attribute outcomes to decisions whose reward window has closed (gold.decision_outcomes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from nurture_lake.audit import audited_run
from nurture_lake.jobs.common import job_parser, load_job_config, log, parse
from nurture_lake.loop import attribute_region, outcomes_table
from nurture_lake.scoring.run import decisions_table, lead_events
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake attribute [--region R] [--as-of ISO]``."""
    parser = job_parser("attribute", __doc__ or "")
    parser.add_argument("--region", action="append", default=None,
                        help="region to attribute (repeatable; default: every configured region)")
    parser.add_argument("--as-of", default=None,
                        help="close windows that ended by this instant (ISO-8601; default: now)")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    lake = Lake(cfg)
    now = datetime.fromisoformat(args.as_of) if args.as_of else datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    spark = get_spark(cfg, app_name="nurture_lake.attribute", master=args.master)
    for region in args.region or lake.regions:
        with audited_run(spark, lake, job="attribute", region=region, args=vars(args)) as run:
            run.read(spark, decisions_table(lake, region))
            run.read(spark, lake.table(region, "silver", "events"))
            written = attribute_region(spark, lake, region, events=lead_events(spark, lake, region), now=now)
            run.wrote(spark, outcomes_table(lake, region), rows=written)
        log(f"attribute {region}: {written} outcomes (windows closed by {now:%Y-%m-%d %H:%M} UTC)")


if __name__ == "__main__":
    main()
