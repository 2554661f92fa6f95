"""Deploy the Databricks jobs (streaming, learning, governance) by name, or print them with --dry-run."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from nurture_lake.config import ConfigError
from nurture_lake.deploy import (
    DeployError,
    DeploySettings,
    JobValidationError,
    deploy_jobs,
    job_definitions,
    validate_jobs,
    workspace_client,
)
from nurture_lake.jobs.common import job_parser, load_job_config, log, parse


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake deploy [--env databricks] [--dry-run] [--job NAME ...]``.

    No Spark and no tables: the run is recorded by the workspace (job history, audit logs),
    so this job writes no ``ops.audit_runs`` row.
    """
    parser = job_parser("deploy", __doc__ or "")
    parser.set_defaults(env="databricks")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate and print every job's JSON (JobSettings.as_dict()); no credentials, no network")
    parser.add_argument("--job", action="append", default=None, metavar="NAME",
                        help="only this job name (repeatable; default: every job)")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    try:
        settings = DeploySettings.from_config(cfg)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    definitions = job_definitions(settings)
    if args.job:
        unknown = sorted(set(args.job) - {j.name for j in definitions})
        if unknown:
            parser.error(f"unknown job(s) {', '.join(unknown)}; defined: {', '.join(j.name or '' for j in definitions)}")
        definitions = [j for j in definitions if j.name in args.job]
    try:
        validate_jobs([j.as_dict() for j in definitions])
        if args.dry_run:
            print(json.dumps([j.as_dict() for j in definitions], indent=2, sort_keys=True))
            return
        client = workspace_client(settings)
        for result in deploy_jobs(client.jobs, definitions):
            log(f"deploy: {result.action} {result.name} (job id {result.job_id})")
    except (JobValidationError, DeployError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
