"""Explain one decision: guardrails, features as of its version, model, MLflow run, training data."""

from __future__ import annotations

import json
from collections.abc import Sequence

from nurture_lake.governance import DecisionNotFound, explain_decision, render_explanation
from nurture_lake.jobs.common import job_parser, load_job_config, parse
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake explain <decision_id> [--region R] [--json]``."""
    parser = job_parser("explain", __doc__ or "")
    parser.add_argument("decision_id", help="the decision to explain")
    parser.add_argument("--region", default=None, help="region of the decision (default: search all)")
    parser.add_argument("--json", action="store_true", help="print the lineage as JSON")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    if args.region is not None and args.region not in cfg.regions:
        parser.error(f"unknown region {args.region!r}; configured: {', '.join(cfg.regions)}")
    lake = Lake(cfg)
    spark = get_spark(cfg, app_name="nurture_lake-explain", master=args.master)
    try:
        lineage = explain_decision(spark, lake, args.decision_id, region=args.region)
    except DecisionNotFound as exc:
        print(f"explain: {exc}")
        raise SystemExit(1) from None
    print(json.dumps(lineage, indent=2, default=str) if args.json else render_explanation(lineage))


if __name__ == "__main__":
    main()
