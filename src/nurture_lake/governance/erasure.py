"""Right to erasure: delete every row about a subject from every table of every region, physically.

A request is queued in ``global.ops.erasure_requests`` (pseudonyms only, never the raw value) and
processed in batch: :func:`resolve_subject` finds the subject's id_keys, leads and global leads;
each table of :data:`~nurture_lake.governance.matchers.REGION_TABLES` (every region) and
:data:`~nurture_lake.governance.matchers.GLOBAL_TABLES` is searched and the matching rows deleted;
then every touched table is purged (:func:`~nurture_lake.governance.purge.purge_table`: VACUUM with
zero retention plus log truncation) so no file under the lake root holds the subject any more.
A completed request keeps only ``subject_token`` (one-way, see :func:`subject_token`) and counts.

Scope: the lake. Landing files and streaming checkpoints are raw input outside it; see
:func:`erase_landing` for the landing folder. Streams reading a purged table must be restarted.

Example::

    request_id = submit_request(spark, lake, subject_type="email", pseudonyms=[p], reason="GDPR art. 17")
    reports = process_pending(spark, lake)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from nurture_lake.audit import current_user
from nurture_lake.governance.matchers import GLOBAL_TABLES, REGION_TABLES, payload_condition
from nurture_lake.governance.pool import results, side_by_side
from nurture_lake.governance.purge import PurgeResult, purge_table, purge_tables
from nurture_lake.governance.subject import Subject, resolve_subject, subject_token
from nurture_lake.privacy import normalise_identifier
from nurture_lake.schemas import IDENTIFIER_TYPES
from nurture_lake.tables import GLOBAL_REGION, Lake, TableRef

ERASURE_REQUESTS = StructType([
    StructField("request_id", StringType(), False),
    StructField("subject_type", StringType(), False),            # email | phone | crm_id | device_id | cookie_id
    StructField("subject_pseudonyms", ArrayType(StringType()), True),  # while pending only; null once done
    StructField("subject_token", StringType(), False),           # one-way token of the first pseudonym, kept
    StructField("requested_at", TimestampType(), False),
    StructField("requested_by", StringType(), False),
    StructField("reason", StringType(), False),
    StructField("status", StringType(), False),                  # pending | done
    StructField("attempts", LongType(), False),
    StructField("processed_at", TimestampType(), True),
    StructField("rows_deleted", MapType(StringType(), LongType()), True),  # table label -> rows
    StructField("error", StringType(), True),                    # last failure, if any
])
"""``global.ops.erasure_requests``: the pseudonymous record that an erasure was asked for and done."""

PENDING, DONE = "pending", "done"


def erasure_requests_table(lake: Lake) -> TableRef:
    """``global.ops.erasure_requests``."""
    return lake.table(GLOBAL_REGION, "ops", "erasure_requests")


@dataclass
class ErasureReport:
    """What erasing one subject did."""

    request_id: str | None
    leads: int
    id_keys: int
    rows_deleted: dict[str, int] = field(default_factory=dict)
    purged: list[PurgeResult] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Rows deleted over all tables."""
        return sum(self.rows_deleted.values())


def erasure_tables(lake: Lake) -> list[tuple[str, TableRef, object]]:
    """``(region, table, matcher)`` for every table erasure searches, regions first, then global."""
    out: list[tuple[str, TableRef, object]] = []
    for region in lake.regions:
        out.extend((region, lake.table(region, layer, name), m) for layer, name, m in REGION_TABLES)
    out.extend((GLOBAL_REGION, lake.table(GLOBAL_REGION, layer, name), m) for layer, name, m in GLOBAL_TABLES)
    return out


def erase_subject(
    spark: SparkSession,
    lake: Lake,
    subject: Subject,
    *,
    purge: str = "touched",
    purge_log: bool = True,
    request_id: str | None = None,
    workers: int = 4,
) -> ErasureReport:
    """Delete the subject's rows everywhere, then purge (``touched`` tables, or ``all`` existing ones).

    ``purge="all"`` is for a retry after a failure: rows deleted by the failed attempt are gone from
    the current version, but their files may not have been vacuumed yet. ``workers`` tables are
    searched, deleted from and purged at a time.
    """
    key = lake.cfg.hmac_key()
    report = ErasureReport(request_id=request_id, leads=len(subject.leads), id_keys=len(subject.id_keys))
    candidates: list[tuple[TableRef, Column | None]] = [
        (table, matcher(subject, region, key))  # type: ignore[operator]
        for region, table, matcher in erasure_tables(lake)
        if table.exists(spark)
    ]
    searched = [(table, condition) for table, condition in candidates if condition is not None]
    found = results(side_by_side(lambda tc: _delete_matching(spark, *tc), searched, workers=workers, name="erase"))
    report.rows_deleted.update((table.label, n) for (table, _), n in zip(searched, found, strict=True) if n)
    to_purge = [table for table, _ in candidates if purge == "all" or table.label in report.rows_deleted]
    report.purged.extend(purge_tables(spark, to_purge, purge_log=purge_log, workers=workers))
    return report


def _delete_matching(spark: SparkSession, table: TableRef, condition: Column) -> int:
    """Delete the rows of ``table`` that match ``condition``; returns how many there were."""
    n = table.read(spark).where(condition).count()
    if n:
        table.delta(spark).delete(condition)
    return n


def submit_request(
    spark: SparkSession,
    lake: Lake,
    *,
    subject_type: str,
    pseudonyms: list[str],
    reason: str,
    now: datetime | None = None,
) -> str:
    """Queue an erasure request (status ``pending``); returns its id."""
    if subject_type not in IDENTIFIER_TYPES:
        raise ValueError(f"unknown identifier type {subject_type!r}")
    if not pseudonyms or not reason.strip():
        raise ValueError("an erasure request needs the subject's pseudonym(s) and a reason")
    table = erasure_requests_table(lake)
    table.ensure(spark, ERASURE_REQUESTS)
    request_id = uuid.uuid4().hex
    row = (
        request_id, subject_type, sorted(pseudonyms), subject_token(sorted(pseudonyms)[0]),
        now or datetime.now(UTC), current_user(), reason.strip(), PENDING, 0, None, None, None,
    )
    table.append(spark.createDataFrame([row], ERASURE_REQUESTS))
    return request_id


def pending_requests(spark: SparkSession, lake: Lake) -> list[dict[str, object]]:
    """Pending requests, oldest first."""
    table = erasure_requests_table(lake)
    if not table.exists(spark):
        return []
    rows = table.read(spark).where(F.col("status") == PENDING).orderBy("requested_at", "request_id").collect()
    return [row.asDict() for row in rows]


def _update(spark: SparkSession, lake: Lake, request_id: str, values: dict[str, object]) -> None:
    def lit(name: str, v: object) -> F.Column:
        if isinstance(v, dict):
            flat = [x for k, n in sorted(v.items()) for x in (F.lit(k), F.lit(int(n)).cast("bigint"))]
            return F.create_map(*flat) if flat else F.create_map().cast(MapType(StringType(), LongType()))
        return F.lit(v).cast(ERASURE_REQUESTS[name].dataType)

    erasure_requests_table(lake).delta(spark).update(
        condition=F.col("request_id") == request_id, set={k: lit(k, v) for k, v in values.items()}
    )


def process_pending(
    spark: SparkSession,
    lake: Lake,
    *,
    raw: dict[str, Iterable[tuple[str, str]]] | None = None,
    request_ids: Iterable[str] | None = None,
    purge_log: bool = True,
    now: datetime | None = None,
    workers: int = 4,
) -> list[ErasureReport]:
    """Process pending requests (all, or ``request_ids``); ``raw`` maps a request id to known raw values.

    A request is marked ``done`` with its counts only after its tables were purged; on failure it stays
    pending with ``attempts`` + 1 and the error, and the retry purges every table. Once any request is
    done, the request table itself is purged so older versions holding its pseudonyms are gone.
    """
    wanted = set(request_ids) if request_ids is not None else None
    reports: list[ErasureReport] = []
    for request in pending_requests(spark, lake):
        rid = str(request["request_id"])
        if wanted is not None and rid not in wanted:
            continue
        pseudonyms = list(request["subject_pseudonyms"] or [])  # type: ignore[call-overload]
        subject = resolve_subject(spark, lake, pseudonyms, raw=(raw or {}).get(rid, ()))
        attempts = int(request["attempts"])  # type: ignore[call-overload]
        try:
            report = erase_subject(
                spark, lake, subject, purge="all" if attempts else "touched", purge_log=purge_log, request_id=rid,
                workers=workers,
            )
        except Exception as exc:
            _update(spark, lake, rid, {"attempts": attempts + 1, "error": str(exc)[:2000]})
            raise
        _update(spark, lake, rid, {
            "status": DONE, "attempts": attempts + 1, "processed_at": now or datetime.now(UTC),
            "rows_deleted": report.rows_deleted, "subject_pseudonyms": None, "error": None,
        })
        reports.append(report)
    if reports:
        purge_table(spark, erasure_requests_table(lake), purge_log=purge_log)
    return reports


def raw_readings(lake: Lake, id_type: str, value: str) -> list[tuple[str, str]]:
    """``(id_type, normalised value)`` for each region's reading of a raw identifier."""
    readings = {
        normalise_identifier(id_type, value, phone_region=r.phone_region) for r in lake.cfg.regions.values()
    }
    return sorted((id_type, v) for v in readings if v)


def erase_landing(spark: SparkSession, lake: Lake, subject: Subject) -> dict[str, int]:
    """Rewrite the landing files of every region without the subject's lines; returns lines removed per file.

    Landing files are raw input outside the lake; ingest's file source tracks files by name, so a
    rewritten file is not ingested again. Matching is the bronze payload matcher, row by row.
    """
    key = lake.cfg.hmac_key()
    removed: dict[str, int] = {}
    for region in lake.regions:
        folder = lake.landing(region)
        files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
        if not files:
            continue
        condition = payload_condition("value", subject, region, key)
        if condition is None:
            continue
        lines = spark.read.text([str(f) for f in files]).select(
            "value", F.col("_metadata.file_path").alias("file")
        )
        hits = lines.where(condition).groupBy("file").agg(F.collect_set("value").alias("lines")).collect()
        for row in hits:
            path = Path(row["file"].removeprefix("file:"))
            drop = set(row["lines"])
            kept = [line for line in path.read_text().splitlines() if line not in drop]
            tmp = path.with_name(f".{path.name}.erase-tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            tmp.replace(path)
            removed[str(path)] = len(drop)
    return removed


def request_summary(report: ErasureReport) -> str:
    """One human-readable line about a processed request."""
    tables = json.dumps(report.rows_deleted, sort_keys=True)
    return (
        f"erasure {report.request_id}: {report.leads} lead(s), {report.id_keys} id_key(s), "
        f"{report.total} row(s) deleted {tables}, {len(report.purged)} table(s) purged"
    )


__all__ = [
    "DONE",
    "ERASURE_REQUESTS",
    "PENDING",
    "ErasureReport",
    "erase_landing",
    "erase_subject",
    "erasure_requests_table",
    "erasure_tables",
    "pending_requests",
    "process_pending",
    "raw_readings",
    "request_summary",
    "submit_request",
]
