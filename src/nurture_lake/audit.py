"""Audit rows: one per job run, in ``global.ops.audit_runs``.

Every job wraps its work in :func:`audited_run`; the row records who ran what, with which
configuration and code, which table versions it read and wrote, how many rows, and how it ended.

Example::

    with audited_run(spark, lake, job="ingest", region="us") as run:
        run.read(lake.table("us", "bronze", "events_raw"))
        ...
        run.wrote(silver_events, rows=1234)
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from pyspark.sql import SparkSession
from pyspark.sql.types import LongType, MapType, StringType, StructField, StructType, TimestampType

from nurture_lake import __version__
from nurture_lake.config import PROJECT_ROOT
from nurture_lake.tables import GLOBAL_REGION, Lake, TableRef

AUDIT_RUNS = StructType([
    StructField("run_id", StringType(), False),
    StructField("job", StringType(), False),
    StructField("region", StringType(), True),
    StructField("user", StringType(), False),
    StructField("reason", StringType(), True),
    StructField("args", StringType(), True),
    StructField("config_hash", StringType(), False),
    StructField("code_version", StringType(), False),
    StructField("started_at", TimestampType(), False),
    StructField("finished_at", TimestampType(), False),
    StructField("status", StringType(), False),
    StructField("error", StringType(), True),
    StructField("inputs", MapType(StringType(), LongType()), True),
    StructField("outputs", MapType(StringType(), LongType()), True),
    StructField("row_counts", MapType(StringType(), LongType()), True),
])


@lru_cache(maxsize=1)
def code_version() -> str:
    """``NURTURE_LAKE_CODE_VERSION``, else the git commit of the checkout, else the package version."""
    explicit = os.environ.get("NURTURE_LAKE_CODE_VERSION")
    if explicit:
        return explicit
    try:
        out = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return f"nurture_lake-{__version__}"


def current_user() -> str:
    """The OS / cluster user running the job."""
    return os.environ.get("NURTURE_LAKE_USER") or getpass.getuser()


@dataclass
class AuditRun:
    """Collects what a job run read and wrote; becomes one audit row."""

    job: str
    region: str | None
    config_hash: str
    args: str | None = None
    reason: str | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    inputs: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)

    def read(self, spark: SparkSession, table: TableRef) -> int | None:
        """Record the version of ``table`` this run reads (``None`` if it does not exist yet)."""
        version = table.version(spark)
        if version is not None:
            self.inputs[table.label] = version
        return version

    def wrote(self, spark: SparkSession, table: TableRef, *, rows: int | None = None) -> None:
        """Record the version of ``table`` after this run wrote it, and the rows written."""
        version = table.version(spark)
        if version is not None:
            self.outputs[table.label] = version
        if rows is not None:
            self.row_counts[table.label] = self.row_counts.get(table.label, 0) + int(rows)

    def count(self, name: str, rows: int) -> None:
        """Record a named row count that is not a table (e.g. ``quarantine.bad_timestamp``)."""
        self.row_counts[name] = self.row_counts.get(name, 0) + int(rows)


def audit_table(lake: Lake) -> TableRef:
    """``global.ops.audit_runs``."""
    return lake.table(GLOBAL_REGION, "ops", "audit_runs")


def write_audit_row(spark: SparkSession, lake: Lake, run: AuditRun, *, status: str, error: str | None) -> None:
    """Append the run's audit row."""
    table = audit_table(lake)
    table.ensure(spark, AUDIT_RUNS)
    row = (
        run.run_id, run.job, run.region, current_user(), run.reason, run.args, run.config_hash,
        code_version(), run.started_at, datetime.now(UTC),
        status, error, run.inputs, run.outputs, run.row_counts,
    )
    table.append(spark.createDataFrame([row], AUDIT_RUNS))


@contextmanager
def audited_run(
    spark: SparkSession,
    lake: Lake,
    *,
    job: str,
    region: str | None = None,
    args: dict[str, object] | None = None,
    reason: str | None = None,
    started_at: datetime | None = None,
) -> Iterator[AuditRun]:
    """Run a block as an audited job run; the row is written on success and on failure.

    ``started_at`` defaults to now; a job that ran several regions side by side passes the start
    of the shared run.
    """
    run = AuditRun(
        job=job,
        region=region,
        config_hash=lake.cfg.config_hash(),
        args=json.dumps(args, sort_keys=True, default=str) if args else None,
        reason=reason,
    )
    if started_at is not None:
        run.started_at = started_at
    try:
        yield run
    except BaseException as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        write_audit_row(spark, lake, run, status="failed", error=detail[:4000])
        raise
    write_audit_row(spark, lake, run, status="succeeded", error=None)
