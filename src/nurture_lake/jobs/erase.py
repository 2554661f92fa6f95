"""Right to erasure: queue and process erasure requests across every region (VACUUM included)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from nurture_lake.audit import audited_run
from nurture_lake.governance import (
    erase_landing,
    erasure_tables,
    governance_settings,
    process_pending,
    raw_readings,
    record_access,
    request_summary,
    resolve_subject,
    submit_request,
    subject_pseudonyms,
    subject_token,
)
from nurture_lake.jobs.common import job_parser, load_job_config, log, parse
from nurture_lake.schemas import IDENTIFIER_TYPES
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake

PENDING_REASON = "process queued erasure requests"


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake erase --subject X --type T --reason "..." [--landing]`` or ``nurture-lake erase --pending``."""
    parser = job_parser("erase", __doc__ or "")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--subject", help="the raw identifier of the person to erase (never stored)")
    what.add_argument("--pending", action="store_true", help="process every pending request in the queue")
    parser.add_argument("--type", dest="id_type", choices=IDENTIFIER_TYPES, help="identifier type of --subject")
    parser.add_argument("--reason", help="why (legal basis / ticket); required with --subject")
    parser.add_argument("--queue-only", action="store_true", help="only queue the request (processed by --pending)")
    parser.add_argument("--landing", action="store_true", help="also rewrite landing files without the subject")
    args = parse(parser, argv)
    if args.subject is not None and args.id_type is None:
        parser.error("--type is required with --subject")
    if args.subject is not None and not (args.reason or "").strip():
        parser.error("--reason is required with --subject: say why this personal data is being processed")
    reason = (args.reason or "").strip() or PENDING_REASON
    cfg = load_job_config(args)
    settings = governance_settings(cfg)
    pseudonyms: list[str] = []
    if args.subject is not None:
        try:
            pseudonyms = subject_pseudonyms(cfg, args.id_type, args.subject)
        except ValueError as exc:
            parser.error(str(exc))
    lake = Lake(cfg)
    spark = get_spark(cfg, app_name="nurture_lake-erase", master=args.master)
    # The audit row never carries the subject: only its type and the mode.
    audit_args = {"type": args.id_type, "pending": args.pending, "queue_only": args.queue_only, "landing": args.landing}
    with audited_run(spark, lake, job="erase", args=audit_args, reason=reason) as run:
        raw: dict[str, list[tuple[str, str]]] = {}
        request_ids: list[str] | None = None
        if args.subject is not None:
            token = subject_token(pseudonyms[0])
            record_access(
                spark, lake, tool="erase", reason=reason, subject_type=args.id_type, subject_token=token,
                tables=[t.label for _, t, _ in erasure_tables(lake)], run_id=run.run_id,
            )
            readings = raw_readings(lake, args.id_type, args.subject)
            if args.landing:
                subject = resolve_subject(spark, lake, pseudonyms, raw=readings)
                removed = erase_landing(spark, lake, subject)
                run.count("erasure.landing_lines", sum(removed.values()))
                print(f"landing: {sum(removed.values())} line(s) removed from {len(removed)} file(s)")
            rid = submit_request(spark, lake, subject_type=args.id_type, pseudonyms=pseudonyms, reason=reason)
            print(f"erasure request {rid} queued ({args.id_type}, token {token})")
            if args.queue_only:
                return
            raw, request_ids = {rid: readings}, [rid]
        else:
            record_access(spark, lake, tool="erase", reason=reason, run_id=run.run_id,
                          tables=[t.label for _, t, _ in erasure_tables(lake)])
        log("erase: processing requests")
        reports = process_pending(spark, lake, raw=raw, request_ids=request_ids, purge_log=settings.purge_log,
                                  workers=settings.table_workers)
        for report in reports:
            for label, n in report.rows_deleted.items():
                run.count(label, n)
            print(request_summary(report))
        if not reports:
            print("erase: no pending request", file=sys.stderr)


if __name__ == "__main__":
    main()
