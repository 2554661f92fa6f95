"""Service-level objectives over the lake; a breach makes ``nurture-lake monitor`` exit 3.

Each check returns an :class:`SloResult` with the observed value, the limit and a message that
says by how much it broke, e.g.
``decision_freshness_p95_minutes = 95.00 > 60.00 (over by 35.00)``.
A check with no data to judge passes with ``value=None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from nurture_lake.audit import audit_table
from nurture_lake.monitor.drift import feature_drift_table
from nurture_lake.monitor.health import policy_health_table
from nurture_lake.monitor.settings import MonitorSettings
from nurture_lake.tables import Lake

__all__ = ["SLO_BREACH_EXIT_CODE", "SloResult", "check_slos"]

SLO_BREACH_EXIT_CODE = 3
"""Exit status of ``nurture-lake monitor`` when at least one SLO is breached."""


@dataclass(frozen=True)
class SloResult:
    """One SLO evaluation: ``ok`` when ``value`` is ``None`` (no data) or ``value <= limit``."""

    name: str
    value: float | None
    limit: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.value is None or self.value <= self.limit

    @property
    def message(self) -> str:
        """``name = value > limit (over by x)`` for breaches; ``name = value <= limit`` otherwise."""
        if self.value is None:
            return f"{self.name}: no data (limit {self.limit:g})"
        if self.ok:
            return f"{self.name} = {self.value:.4g} <= {self.limit:g}"
        over = self.value - self.limit
        extra = f" — {self.detail}" if self.detail else ""
        return f"{self.name} = {self.value:.4g} > {self.limit:g} (over by {over:.4g}){extra}"


def _aware_utc(moment: datetime) -> datetime:
    # Spark converts an aware datetime literal exactly; a naive one would use the process time zone.
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _freshness(spark: SparkSession, lake: Lake, settings: MonitorSettings) -> SloResult:
    name, limit = "decision_freshness_p95_minutes", settings.slo_freshness_p95_minutes
    table = policy_health_table(lake)
    if not table.exists(spark):
        return SloResult(name, None, limit)
    rows = table.read(spark).where(F.col("freshness_p95_minutes").isNotNull())
    latest = rows.agg(F.max("day")).first()
    if latest is None or latest[0] is None:
        return SloResult(name, None, limit)
    worst = (
        rows.where(F.col("day") == F.lit(latest[0]))
        .orderBy(F.col("freshness_p95_minutes").desc(), "region", "model_version").first()
    )
    assert worst is not None
    detail = f"day {latest[0]}, region {worst['region']}, model version {worst['model_version']}"
    return SloResult(name, float(worst["freshness_p95_minutes"]), limit, detail)


def _quarantine(spark: SparkSession, lake: Lake, settings: MonitorSettings, since: datetime) -> SloResult:
    name, limit = "quarantine_rate", settings.slo_quarantine_rate
    good = bad = 0
    for region in lake.regions:
        for layer_name, is_bad in (("events", False), ("events_quarantine", True)):
            ref = lake.table(region, "silver", layer_name)
            if ref.exists(spark):
                n = ref.read(spark).where(F.col("ingested_at") >= F.lit(since)).count()
                bad, good = (bad + n, good) if is_bad else (bad, good + n)
    if good + bad == 0:
        return SloResult(name, None, limit)
    return SloResult(name, bad / (good + bad), limit, f"{bad} of {good + bad} rows ingested since {since:%Y-%m-%d %H:%M}")


def _failed_runs(spark: SparkSession, lake: Lake, settings: MonitorSettings, since: datetime) -> SloResult:
    name, limit = "failed_job_runs", float(settings.slo_failed_runs)
    table = audit_table(lake)
    if not table.exists(spark):
        return SloResult(name, 0.0, limit)
    failed = table.read(spark).where((F.col("status") == "failed") & (F.col("started_at") >= F.lit(since)))
    jobs = sorted({r["job"] for r in failed.select("job").distinct().collect()})
    return SloResult(name, float(failed.count()), limit, f"failed jobs: {', '.join(jobs)}" if jobs else "")


def _drift(spark: SparkSession, lake: Lake, settings: MonitorSettings) -> SloResult:
    name, limit = "feature_drift_alerts", float(settings.slo_drift_alerts)
    table = feature_drift_table(lake)
    if not table.exists(spark):
        return SloResult(name, None, limit)
    rows = table.read(spark)
    latest = rows.agg(F.max("run_at")).first()
    if latest is None or latest[0] is None:
        return SloResult(name, None, limit)
    alerts = rows.where((F.col("run_at") == F.lit(latest[0])) & (F.col("status") == "alert"))
    found = [f"{r['region']}.{r['feature']} (PSI {r['psi']:.3f})" for r in alerts.orderBy("region", "feature").collect()]
    return SloResult(name, float(len(found)), limit, f"alerting features: {', '.join(found)}" if found else "")


def check_slos(
    spark: SparkSession, lake: Lake, settings: MonitorSettings, *, now: datetime | None = None
) -> list[SloResult]:
    """Evaluate every SLO; the quarantine and failed-run SLOs look back ``slo_window_hours`` from ``now``."""
    since = _aware_utc((now or datetime.now(UTC)) - timedelta(hours=settings.slo_window_hours))
    return [
        _freshness(spark, lake, settings),
        _quarantine(spark, lake, settings, since),
        _failed_runs(spark, lake, settings, since),
        _drift(spark, lake, settings),
    ]
