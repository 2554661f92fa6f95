"""Access audit: who read personal data, when and why (``global.ops.access_log``), and the lookup tool.

Every tool that reads personal data (``erase``, ``lookup``) must state a reason; the row it writes
names the tool, the user, the reason, a one-way subject token (never the identifier) and which
tables were read.

Example::

    subject = resolve_subject(spark, lake, subject_pseudonyms(cfg, "email", "ada@example.com"))
    rows = lookup_subject(spark, lake, subject)
    record_access(spark, lake, tool="lookup", reason="support ticket 42", subject_type="email",
                  subject_token=subject_token(...), tables=sorted(rows))
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from nurture_lake.audit import current_user
from nurture_lake.governance.matchers import GLOBAL_TABLES, REGION_TABLES
from nurture_lake.governance.subject import Subject
from nurture_lake.tables import GLOBAL_REGION, Lake, TableRef

ACCESS_LOG = StructType([
    StructField("access_id", StringType(), False),
    StructField("accessed_at", TimestampType(), False),
    StructField("user", StringType(), False),
    StructField("tool", StringType(), False),            # erase | lookup | ...
    StructField("reason", StringType(), False),
    StructField("subject_type", StringType(), True),
    StructField("subject_token", StringType(), True),    # one-way token, never the identifier or pseudonym
    StructField("tables", StringType(), True),           # JSON list of table labels read
    StructField("run_id", StringType(), True),           # the audited job run
])
"""``global.ops.access_log``: one row per read of personal data by a tool."""


class MissingReason(ValueError):
    """A personal-data read was attempted without a reason."""


def access_log_table(lake: Lake) -> TableRef:
    """``global.ops.access_log``."""
    return lake.table(GLOBAL_REGION, "ops", "access_log")


def require_reason(reason: str | None) -> str:
    """The trimmed reason, or :class:`MissingReason`."""
    if reason is None or not reason.strip():
        raise MissingReason("a reason is required to read personal data (--reason \"...\")")
    return reason.strip()


def record_access(
    spark: SparkSession,
    lake: Lake,
    *,
    tool: str,
    reason: str | None,
    subject_type: str | None = None,
    subject_token: str | None = None,
    tables: list[str] | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> str:
    """Append one access row; raises :class:`MissingReason` before anything is read without a reason."""
    why = require_reason(reason)
    table = access_log_table(lake)
    table.ensure(spark, ACCESS_LOG)
    access_id = uuid.uuid4().hex
    row = (
        access_id, now or datetime.now(UTC), current_user(), tool, why, subject_type, subject_token,
        json.dumps(sorted(tables)) if tables is not None else None, run_id,
    )
    table.append(spark.createDataFrame([row], ACCESS_LOG))
    return access_id


def lookup_subject(spark: SparkSession, lake: Lake, subject: Subject) -> dict[str, DataFrame]:
    """The subject's rows per table label (tables without rows are left out)."""
    key = lake.cfg.hmac_key()
    out: dict[str, DataFrame] = {}
    targets = [(r, lake.table(r, layer, name), m) for r in lake.regions for layer, name, m in REGION_TABLES]
    targets += [(GLOBAL_REGION, lake.table(GLOBAL_REGION, layer, name), m) for layer, name, m in GLOBAL_TABLES]
    for region, table, matcher in targets:
        if not table.exists(spark):
            continue
        condition = matcher(subject, region, key)
        if condition is None:
            continue
        rows = table.read(spark).where(condition)
        if not rows.isEmpty():
            out[table.label] = rows
    return out


__all__ = [
    "ACCESS_LOG",
    "MissingReason",
    "access_log_table",
    "lookup_subject",
    "record_access",
    "require_reason",
]
