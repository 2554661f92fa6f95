"""Build the identity graph per region (stable lead ids, merges), then the cross-region view."""

from __future__ import annotations

from collections.abc import Sequence

from nurture_lake.audit import audited_run
from nurture_lake.identity import identity_config, run_global, run_region
from nurture_lake.jobs.common import job_parser, load_job_config, log, parse
from nurture_lake.spark import get_spark
from nurture_lake.tables import GLOBAL_REGION, Lake


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake identity [--region R ...] [--skip-global]``."""
    parser = job_parser("identity", __doc__ or "")
    parser.add_argument(
        "--region", dest="regions", action="append", default=None, metavar="R",
        help="region to process (repeatable; default: every configured region)",
    )
    parser.add_argument("--skip-global", action="store_true", help="do not rebuild global.silver.global_leads")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    settings = identity_config(cfg)
    lake = Lake(cfg)
    regions = args.regions or lake.regions
    unknown = [r for r in regions if r not in cfg.regions]
    if unknown:
        parser.error(f"unknown region(s) {', '.join(unknown)}; configured: {', '.join(cfg.regions)}")
    spark = get_spark(cfg, app_name="nurture_lake-identity", master=args.master)

    for region in regions:
        log(f"identity: region {region}")
        with audited_run(spark, lake, job="identity", region=region, args=vars(args)) as run:
            s = run_region(spark, lake, region, run=run, settings=settings)
        print(
            f"identity {s.region}: events read {s.events_read}, new edges {s.new_edges}, edges {s.edges}, "
            f"id_keys {s.id_keys}, leads {s.leads}, merges {s.merges}, changed id_keys {s.changed_id_keys}, "
            f"CC iterations {s.cc_iterations}"
        )
    if not args.skip_global:
        log("identity: global view")
        with audited_run(spark, lake, job="identity_global", region=GLOBAL_REGION, args=vars(args)) as run:
            g = run_global(spark, lake, run=run, settings=settings)
        print(
            f"identity global: regional leads {g.regional_leads}, global leads {g.global_leads}, "
            f"cross-region leads {g.cross_region_leads}, CC iterations {g.cc_iterations}"
        )


if __name__ == "__main__":
    main()
