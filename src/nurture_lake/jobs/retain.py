"""Retention: delete rows older than each table's configured window, then VACUUM them away."""

from __future__ import annotations

from collections.abc import Sequence

from nurture_lake.audit import audited_run
from nurture_lake.governance import apply_retention, governance_settings
from nurture_lake.jobs.common import job_parser, load_job_config, parse
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake retain [--region R ...] [--dry-run]``."""
    parser = job_parser("retain", __doc__ or "")
    parser.add_argument("--region", dest="regions", action="append", default=None, metavar="R",
                        help="region to clean (repeatable; default: every region and global)")
    parser.add_argument("--dry-run", action="store_true", help="count expired rows, delete nothing")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    settings = governance_settings(cfg)
    lake = Lake(cfg)
    spark = get_spark(cfg, app_name="nurture_lake-retain", master=args.master)
    with audited_run(spark, lake, job="retain", args=vars(args)) as run:
        results = apply_retention(spark, lake, settings, regions=args.regions, dry_run=args.dry_run)
        for r in results:
            run.count(r.table, r.rows_deleted)
            verb = "would delete" if args.dry_run else "deleted"
            print(f"retain {r.table}: {verb} {r.rows_deleted} row(s) with {r.column} < {r.cutoff.isoformat()}")


if __name__ == "__main__":
    main()
