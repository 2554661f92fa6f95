"""Policy health, feature drift, SLO checks and the HTML report; exits 3 when an SLO is breached."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from nurture_lake.actions import parse_duration
from nurture_lake.audit import AuditRun, audited_run
from nurture_lake.features.store import lead_features_table
from nurture_lake.jobs.common import job_parser, load_job_config, log, parse
from nurture_lake.monitor import (
    SLO_BREACH_EXIT_CODE,
    MonitorSettings,
    baseline_version,
    check_slos,
    numeric_columns,
    policy_health,
    psi,
    read_policy_inputs,
    write_feature_drift,
    write_policy_health,
    write_report,
)
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake

_NOT_FEATURES = ("local_hour",)
"""Numeric columns of ``gold.lead_features`` that are not drift-checked (clock-driven)."""


def _health(spark: SparkSession, lake: Lake, run: AuditRun) -> None:
    inputs = read_policy_inputs(spark, lake)
    if inputs is None:
        log("monitor: no decisions yet, policy health skipped")
        return
    for region in lake.regions:
        for layer, name in (("gold", "cadence_decisions"), ("gold", "decision_outcomes"), ("silver", "events")):
            run.read(spark, lake.table(region, layer, name))
    health = policy_health(*inputs).cache()
    rows = health.count()
    table = write_policy_health(spark, lake, health)
    health.unpersist()
    run.wrote(spark, table, rows=rows)
    log(f"monitor: policy health, {rows} (day, region, version) rows")


def _drift(spark: SparkSession, lake: Lake, run: AuditRun, settings: MonitorSettings,
           *, pinned: int | None, now: datetime) -> None:
    for region in lake.regions:
        table = lead_features_table(lake, region)
        serving_version = table.version(spark)
        if serving_version is None:
            continue
        training_version = pinned if pinned is not None else baseline_version(
            spark, table, age=parse_duration(settings.drift_baseline_age), now=now
        )
        if training_version is None:
            continue
        run.inputs[f"{table.label}@training"] = training_version
        run.read(spark, table)
        training, serving = table.read(spark, version=training_version), table.read(spark)
        columns = [c for c in numeric_columns(serving, exclude=_NOT_FEATURES) if c in training.columns]
        drift = psi(training, serving, columns=columns, bins=settings.psi_bins, epsilon=settings.psi_epsilon,
                    warn=settings.psi_warn, alert=settings.psi_alert)
        out = write_feature_drift(spark, lake, drift, region=region, run_at=now,
                                  training_version=training_version, serving_version=serving_version)
        run.wrote(spark, out, rows=len(columns))
        log(f"monitor: drift {region}: {len(columns)} features, v{training_version} vs v{serving_version}")


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake monitor [--now ISO] [--baseline-version N] [--skip-drift] [--no-report]``."""
    parser = job_parser("monitor", __doc__ or "")
    parser.add_argument("--now", type=datetime.fromisoformat, default=None,
                        help="evaluation time, ISO-8601 (default: now); SLO look-back windows end here")
    parser.add_argument("--baseline-version", type=int, default=None,
                        help="Delta version of gold.lead_features to use as the training snapshot "
                             "(default: monitor.drift_baseline_version, else by monitor.drift_baseline_age)")
    parser.add_argument("--skip-drift", action="store_true", help="do not compute feature drift")
    parser.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    settings = MonitorSettings.from_config(cfg)
    lake = Lake(cfg)
    now: datetime = args.now or datetime.now(UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    spark = get_spark(cfg, app_name="nurture_lake.monitor", master=args.master)
    with audited_run(spark, lake, job="monitor", args=vars(args)) as run:
        _health(spark, lake, run)
        if not args.skip_drift:
            pinned = args.baseline_version if args.baseline_version is not None else settings.drift_baseline_version
            _drift(spark, lake, run, settings, pinned=pinned, now=now)
        slos = check_slos(spark, lake, settings, now=now)
        breached = [s for s in slos if not s.ok]
        run.count("slo_breaches", len(breached))
        if not args.no_report:
            index = write_report(spark, lake, slos=slos, settings=settings, now=now)
            log(f"monitor: report {index}")
    for slo in slos:
        print(("SLO OK       " if slo.ok else "SLO BREACHED ") + slo.message)
    if breached:
        print(f"monitor: {len(breached)} SLO(s) breached: " + "; ".join(s.message for s in breached),
              file=sys.stderr)
        raise SystemExit(SLO_BREACH_EXIT_CODE)


__all__ = ["main"]
