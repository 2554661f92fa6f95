"""Look up every row about one person (audited: who, when and why go to global.ops.access_log)."""

from __future__ import annotations

from collections.abc import Sequence

from nurture_lake.audit import audited_run
from nurture_lake.governance import (
    governance_settings,
    lookup_subject,
    record_access,
    resolve_subject,
    subject_pseudonyms,
    subject_token,
)
from nurture_lake.jobs.common import job_parser, load_job_config, parse
from nurture_lake.schemas import IDENTIFIER_TYPES
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake lookup --subject X --type T --reason "..." [--limit N]``."""
    parser = job_parser("lookup", __doc__ or "")
    parser.add_argument("--subject", required=True, help="the raw identifier to look up")
    parser.add_argument("--type", dest="id_type", required=True, choices=IDENTIFIER_TYPES)
    parser.add_argument("--reason", required=True, help="why this personal data is read (recorded)")
    parser.add_argument("--limit", type=int, default=None, help="rows printed per table")
    args = parse(parser, argv)
    if not args.reason.strip():
        parser.error("--reason must not be empty: say why this personal data is read")
    cfg = load_job_config(args)
    settings = governance_settings(cfg)
    try:
        pseudonyms = subject_pseudonyms(cfg, args.id_type, args.subject)
    except ValueError as exc:
        parser.error(str(exc))
    lake = Lake(cfg)
    spark = get_spark(cfg, app_name="nurture_lake-lookup", master=args.master)
    limit = args.limit or settings.lookup_row_limit
    with audited_run(spark, lake, job="lookup", args={"type": args.id_type}, reason=args.reason.strip()) as run:
        subject = resolve_subject(spark, lake, pseudonyms)
        found = lookup_subject(spark, lake, subject)
        record_access(
            spark, lake, tool="lookup", reason=args.reason, subject_type=args.id_type,
            subject_token=subject_token(pseudonyms[0]), tables=sorted(found), run_id=run.run_id,
        )
        leads = ", ".join(f"{r}:{lead}" for r, lead in sorted(subject.leads)) or "none"
        print(f"subject ({args.id_type}): leads {leads}")
        for label, df in found.items():
            rows = df.limit(limit).collect()
            run.count(label, len(rows))
            print(f"\n== {label} ({len(rows)} row(s) shown)")
            for row in rows:
                print("  " + repr(row.asDict(recursive=True)))


if __name__ == "__main__":
    main()
