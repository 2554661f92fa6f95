"""Make deletes physical: drop deleted rows' files (VACUUM) and the log entries that describe them.

A Delta DELETE only writes a new table version; the old Parquet files stay for time travel until
``VACUUM``. The ``_delta_log`` keeps more: every ``add`` action carries column statistics (min/max
values, e.g. an e-mail address), the ``.crc`` files list files with their statistics and commit
info records predicates. :func:`purge_table` therefore

1. rewrites deletion vectors into files (``REORG TABLE ... APPLY (PURGE)``) when they are enabled,
2. runs ``VACUUM ... RETAIN 0 HOURS`` (needs ``spark.databricks.delta.retentionDurationCheck.enabled=false``),
3. writes a checkpoint of the current version and deletes every log file of an older version — what Delta's own
   log clean-up does after ``delta.logRetentionDuration``, done now. Time travel before the purge ends.

Version numbers are kept, so lineage that names a version stays meaningful for later versions.

:func:`purge_tables` purges several tables side by side: on small tables each step is mostly driver
latency (log reads, Delta commits, tiny Spark jobs), so a few at once keep the cores busy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from py4j.protocol import Py4JError
from pyspark.sql import SparkSession

from nurture_lake.governance.pool import results, side_by_side
from nurture_lake.tables import TableRef

_VERSIONED = re.compile(r"^(\d{20})\.")
_INTERVAL = "delta.checkpointInterval"


@dataclass(frozen=True)
class PurgeResult:
    """What :func:`purge_table` did to one table."""

    table: str
    version: int
    checkpoint_version: int | None
    log_files_deleted: int


def sql_name(table: TableRef) -> str:
    """The table as a SQL identifier: ``delta.`<path>``` or ``catalog.schema.table``."""
    if table.path is not None:
        return "delta.`" + table.path.replace("`", "``") + "`"
    return table.full_name or ""


def _properties(spark: SparkSession, table: TableRef) -> dict[str, str]:
    row = table.delta(spark).detail().select("properties").first()
    return dict(row["properties"] or {}) if row is not None else {}


def _location(spark: SparkSession, table: TableRef) -> str:
    if table.path is not None:
        return table.path
    row = table.delta(spark).detail().select("location").first()
    if row is None:
        raise RuntimeError(f"{table.label}: no location in DESCRIBE DETAIL")
    return str(row["location"])


def _write_checkpoint(spark: SparkSession, table: TableRef, props: dict[str, str], location: str) -> int:
    """Checkpoint the current version: Delta's ``DeltaLog.checkpoint()``; where that JVM API is not
    reachable (e.g. a shared-access cluster) a one-commit ``delta.checkpointInterval=1`` switch."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    try:
        delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, location)  # type: ignore[attr-defined]
        delta_log.update(False, jvm.scala.Option.empty(), jvm.scala.Option.empty())
        delta_log.checkpoint()
        return int(delta_log.unsafeVolatileSnapshot().version())
    except Py4JError:
        pass
    name = sql_name(table)
    spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ('{_INTERVAL}' = '1')")
    version = table.version(spark)
    if _INTERVAL in props:
        spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ('{_INTERVAL}' = '{props[_INTERVAL]}')")
    else:
        spark.sql(f"ALTER TABLE {name} UNSET TBLPROPERTIES IF EXISTS ('{_INTERVAL}')")
    if version is None:
        raise RuntimeError(f"{table.label}: table vanished while purging")
    return version


def _truncate_log(spark: SparkSession, location: str, checkpoint_version: int) -> int:
    """Delete log files (commits, checkpoints, checksums) of versions before ``checkpoint_version``."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    log_dir = jvm.org.apache.hadoop.fs.Path(location.rstrip("/") + "/_delta_log")
    fs = log_dir.getFileSystem(conf)
    names = [status.getPath().getName() for status in fs.listStatus(log_dir) if status.isFile()]
    prefix = f"{checkpoint_version:020d}.checkpoint"
    if not any(n.startswith(prefix) for n in names):
        raise RuntimeError(f"{location}: no checkpoint written at version {checkpoint_version}; log not truncated")
    deleted = 0
    folders = [log_dir]
    staged = jvm.org.apache.hadoop.fs.Path(log_dir, "_staged_commits")
    if fs.exists(staged):
        folders.append(staged)
    for folder in folders:
        for status in fs.listStatus(folder):
            match = _VERSIONED.match(status.getPath().getName())
            if status.isFile() and match and int(match.group(1)) < checkpoint_version:
                fs.delete(status.getPath(), False)
                deleted += 1
    return deleted


@contextmanager
def _listing_parallelism(spark: SparkSession, parallelism: int | None) -> Iterator[None]:
    """VACUUM lists files with ``parallelPartitionDiscovery.parallelism`` tasks (default 10 000: ~30 s of
    empty tasks for a small table on 2 cores); use the cluster's parallelism for the duration."""
    conf_key = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
    previous = spark.conf.get(conf_key, None)
    spark.conf.set(conf_key, str(parallelism or max(1, spark.sparkContext.defaultParallelism)))
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(conf_key)
        else:
            spark.conf.set(conf_key, previous)


def purge_table(
    spark: SparkSession, table: TableRef, *, purge_log: bool = True, listing_parallelism: int | None = None,
) -> PurgeResult:
    """Physically remove everything the current version of ``table`` no longer holds (see module doc).

    ``listing_parallelism``: tasks of VACUUM's file listing (default: the context's default parallelism).
    """
    return purge_tables(spark, [table], purge_log=purge_log, listing_parallelism=listing_parallelism)[0]


def purge_tables(
    spark: SparkSession,
    tables: Sequence[TableRef],
    *,
    purge_log: bool = True,
    listing_parallelism: int | None = None,
    workers: int = 4,
) -> list[PurgeResult]:
    """:func:`purge_table` for each table, ``workers`` tables at a time; results in the order of ``tables``.

    Every table is attempted; the first failure (in table order) is raised once all have finished.
    """
    with _listing_parallelism(spark, listing_parallelism):
        return results(side_by_side(lambda t: _purge_one(spark, t, purge_log=purge_log), tables,
                                    workers=workers, name="purge"))


def _purge_one(spark: SparkSession, table: TableRef, *, purge_log: bool) -> PurgeResult:
    name = sql_name(table)
    props = _properties(spark, table)
    if props.get("delta.enableDeletionVectors", "false").lower() == "true":
        spark.sql(f"REORG TABLE {name} APPLY (PURGE)")
    spark.sql(f"VACUUM {name} RETAIN 0 HOURS").collect()
    checkpoint_version: int | None = None
    deleted = 0
    if purge_log:
        location = _location(spark, table)
        checkpoint_version = _write_checkpoint(spark, table, props, location)
        deleted = _truncate_log(spark, location, checkpoint_version)
    return PurgeResult(
        table=table.label, version=table.version(spark) or 0,
        checkpoint_version=checkpoint_version, log_files_deleted=deleted,
    )


__all__ = ["PurgeResult", "purge_table", "purge_tables", "sql_name"]
