"""Replay the decision tables against the event history and consent ledger; exit 1 on any violation."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.actions import ActionSpace
from nurture_lake.audit import audited_run
from nurture_lake.config import NurtureConfig
from nurture_lake.guardrails import GuardrailConfig, check_decisions
from nurture_lake.identity import attach_lead_id
from nurture_lake.jobs.common import job_parser, load_job_config, log, parse
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


def check_region(spark: SparkSession, cfg: NurtureConfig, region: str) -> DataFrame | None:
    """The violations of one region's decision table, or ``None`` when it has no decision table yet."""
    lake = Lake(cfg)
    decisions_ref = lake.table(region, "gold", "cadence_decisions")
    if not decisions_ref.exists(spark):
        return None
    graph = lake.table(region, "silver", "identity_graph").read(spark)
    events = attach_lead_id(lake.table(region, "silver", "events").read(spark), graph)
    ledger = lake.table(region, "silver", "consent_ledger")
    if ledger.exists(spark):
        consent = ledger.read(spark).join(graph.select("id_key", "lead_id"), "id_key")
    else:
        consent = spark.createDataFrame([], "lead_id string, channel string, purpose string, granted boolean, occurred_at timestamp")
    return check_decisions(
        spark, decisions_ref.read(spark), events, consent,
        config=GuardrailConfig.from_config(cfg), action_space=ActionSpace.from_config(cfg),
        region_timezones={code: r.timezone for code, r in cfg.regions.items()},
        lead_timezones=_lead_timezones(spark, lake, region),
    )


def _lead_timezones(spark: SparkSession, lake: Lake, region: str) -> DataFrame | None:
    """Each lead's time zone as the feature layer resolved it (what scoring used for quiet hours)."""
    features = lake.table(region, "gold", "lead_features")
    return features.read(spark).select("lead_id", "timezone") if features.exists(spark) else None


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_parser("check-guardrails", __doc__ or "")
    parser.add_argument("--region", default=None, help="check one region (default: every configured region)")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    spark = get_spark(cfg, app_name="nurture_lake-check_guardrails", master=args.master)
    lake = Lake(cfg)
    regions = [args.region] if args.region else lake.regions
    total = 0
    with audited_run(spark, lake, job="check_guardrails", region=args.region, args=vars(args)) as run:
        for region in regions:
            violations = check_region(spark, cfg, region)
            if violations is None:
                log(f"{region}: no decision table yet")
                continue
            violations = violations.cache()
            count = violations.count()
            run.count(f"{region}.violations", count)
            total += count
            print(f"{region}: {count} violation(s)")
            for row in violations.groupBy("rule").count().orderBy("rule").collect():
                print(f"  {row['rule']:<28} {row['count']}")
            for row in violations.orderBy("decision_id", "rule").limit(20).collect():
                print(f"    {row['decision_id']}  {row['rule']}: {row['detail']}")
            violations.unpersist()
    if total:
        print(f"guardrail check FAILED: {total} violation(s)", file=sys.stderr)
        raise SystemExit(1)
    print("guardrail check passed: no violations")


if __name__ == "__main__":
    main()
