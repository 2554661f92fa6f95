"""Retention per table: delete rows older than the configured window, then purge their files.

Windows come from the ``retention`` config section (``<layer>.<table>: 30d``), applied to that
table in every region and in ``global`` where it exists; the time column is the table's known one
(:data:`~nurture_lake.governance.settings.DEFAULT_TIME_COLUMNS`) or the rule's ``column``.

Example::

    results = apply_retention(spark, lake, governance_settings(cfg))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.governance.pool import results, side_by_side
from nurture_lake.governance.purge import purge_tables
from nurture_lake.governance.settings import GovernanceSettings
from nurture_lake.tables import GLOBAL_REGION, Lake, TableRef


@dataclass(frozen=True)
class RetentionResult:
    """Rows removed from one table by one retention run."""

    table: str
    column: str
    cutoff: datetime
    rows_deleted: int
    purged: bool


def expired(column: str, cutoff: datetime) -> Column:
    """Rows whose ``column`` is before ``cutoff`` (null times are kept: unknown age is not expiry)."""
    return F.coalesce(F.col(column) < F.lit(cutoff).cast("timestamp"), F.lit(False))


def retention_targets(lake: Lake, settings: GovernanceSettings) -> list[tuple[TableRef, str, object]]:
    """``(table, time column, rule)`` for every configured key, in every region and ``global``."""
    out: list[tuple[TableRef, str, object]] = []
    for key, rule in sorted(settings.retention.items()):
        layer, name = key.split(".")
        column = settings.time_column(key) or ""
        for region in [*lake.regions, GLOBAL_REGION]:
            out.append((lake.table(region, layer, name), column, rule))
    return out


def apply_retention(
    spark: SparkSession,
    lake: Lake,
    settings: GovernanceSettings,
    *,
    now: datetime | None = None,
    regions: list[str] | None = None,
    dry_run: bool = False,
) -> list[RetentionResult]:
    """Delete expired rows from every configured table that exists and purge the tables that changed.

    ``settings.table_workers`` tables are cleaned at a time; results keep the order of the targets. If a
    table fails, the tables that did delete rows are purged before the first failure is raised.
    """
    now = now or datetime.now(UTC)
    due: list[tuple[TableRef, DataFrame, str, datetime]] = []
    for table, column, rule in retention_targets(lake, settings):
        if regions is not None and table.region not in regions:
            continue
        if not table.exists(spark):
            continue
        df = table.read(spark)
        if column not in df.columns:
            raise ValueError(f"retention: {table.label} has no time column {column!r}")
        due.append((table, df, column, now - rule.delta))  # type: ignore[attr-defined]

    def clean(target: tuple[TableRef, DataFrame, str, datetime]) -> RetentionResult:
        table, df, column, cutoff = target
        condition = expired(column, cutoff)
        n = df.where(condition).count()
        if n and not dry_run:
            table.delta(spark).delete(condition)
        return RetentionResult(table.label, column, cutoff, n, bool(n) and not dry_run)

    outcomes = side_by_side(clean, due, workers=settings.table_workers, name="retain")
    # Purge what was deleted before reporting a failure: a rerun finds those rows gone and would not purge.
    changed = [t[0] for t, r in zip(due, outcomes, strict=True) if isinstance(r, RetentionResult) and r.purged]
    purge_tables(spark, changed, purge_log=settings.purge_log, workers=settings.table_workers)
    return results(outcomes)


__all__ = ["RetentionResult", "apply_retention", "expired", "retention_targets"]
