"""Streaming progress captured to ``global.ops.stream_metrics``.

A :class:`MetricsListener` receives every streaming query's events on Spark's listener thread
and only *buffers* plain Python tuples there; :meth:`MetricsListener.flush` (called from the
driver's main thread after a query, or at job end) appends the buffer to Delta.

Example::

    listener = install_metrics_listener(spark, lake)
    run_ingest(spark, lake, "us")
    listener.flush()          # rows for every progress / idle / terminated event so far
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from py4j.protocol import Py4JError
from pyspark.sql import SparkSession
from pyspark.sql.streaming.listener import (
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
    StreamingQueryListener,
)
from pyspark.sql.types import (
    DoubleType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from nurture_lake.tables import GLOBAL_REGION, Lake, TableRef

__all__ = [
    "STREAM_METRICS", "MetricsListener", "install_metrics_listener", "metrics_listener", "stream_metrics_table",
]

STREAM_METRICS = StructType([
    StructField("app_id", StringType(), True),                  # Spark application id of the driver
    StructField("query_name", StringType(), True),              # queryName(...) of the stream, if set
    StructField("query_id", StringType(), False),               # stable across restarts (checkpoint)
    StructField("run_id", StringType(), False),                 # new on every start
    StructField("event", StringType(), False),                  # "progress" | "idle" | "terminated"
    StructField("batch_id", LongType(), True),                  # null for idle / terminated
    StructField("timestamp", TimestampType(), False),           # trigger start (UTC)
    StructField("num_input_rows", LongType(), True),
    StructField("input_rows_per_second", DoubleType(), True),
    StructField("processed_rows_per_second", DoubleType(), True),
    StructField("batch_duration_ms", LongType(), True),
    StructField("trigger_execution_ms", LongType(), True),
    StructField("add_batch_ms", LongType(), True),
    StructField("durations_ms", MapType(StringType(), LongType()), True),   # every durationMs entry
    StructField("state_rows_total", LongType(), True),          # Σ numRowsTotal over state operators
    StructField("state_memory_bytes", LongType(), True),        # Σ memoryUsedBytes over state operators
    StructField("sources", StringType(), True),                 # source descriptions, "; "-joined
    StructField("sink", StringType(), True),
    StructField("exception", StringType(), True),               # terminated with an error
    StructField("recorded_at", TimestampType(), False),         # when the listener saw the event
])
"""``global.ops.stream_metrics``: one row per streaming progress, idle or termination event."""

_Row = tuple[object, ...]


def stream_metrics_table(lake: Lake) -> TableRef:
    """``global.ops.stream_metrics``."""
    return lake.table(GLOBAL_REGION, "ops", "stream_metrics")


def _ts(text: str | None) -> datetime:
    """Spark's ISO instant (``2026-11-01T10:00:00.123Z``) as an aware UTC datetime."""
    if not text:
        return datetime.now(UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


class MetricsListener(StreamingQueryListener):
    """Buffers one row per query event; :meth:`flush` writes them to Delta from the driver."""

    def __init__(self, spark: SparkSession, table: TableRef) -> None:
        self._spark = spark
        self.table = table
        self._app_id = spark.sparkContext.applicationId
        self._lock = threading.Lock()
        self._rows: list[_Row] = []
        self._names: dict[str, str | None] = {}

    # -- listener thread: buffer only --------------------------------------------------------
    def onQueryStarted(self, event: QueryStartedEvent) -> None:
        with self._lock:
            self._names[str(event.id)] = event.name

    def onQueryProgress(self, event: QueryProgressEvent) -> None:
        p = event.progress
        durations = {str(k): int(v) for k, v in (p.durationMs or {}).items()}
        states = p.stateOperators or []
        row: _Row = (
            self._app_id, p.name, str(p.id), str(p.runId), "progress", int(p.batchId), _ts(p.timestamp),
            int(p.numInputRows), _finite(p.inputRowsPerSecond), _finite(p.processedRowsPerSecond),
            int(p.batchDuration), durations.get("triggerExecution"), durations.get("addBatch"), durations,
            sum(int(s.numRowsTotal) for s in states) if states else None,
            sum(int(s.memoryUsedBytes) for s in states) if states else None,
            "; ".join(s.description for s in p.sources or []) or None,
            p.sink.description if p.sink is not None else None,
            None, datetime.now(UTC),
        )
        with self._lock:
            self._names.setdefault(str(p.id), p.name)
            self._rows.append(row)

    def onQueryIdle(self, event: QueryIdleEvent) -> None:
        self._append_status(str(event.id), str(event.runId), "idle", _ts(event.timestamp), None)

    def onQueryTerminated(self, event: QueryTerminatedEvent) -> None:
        self._append_status(str(event.id), str(event.runId), "terminated", datetime.now(UTC), event.exception)

    def _append_status(self, qid: str, run_id: str, kind: str, at: datetime, exception: str | None) -> None:
        with self._lock:
            name = self._names.get(qid)
            self._rows.append((
                self._app_id, name, qid, run_id, kind, None, at,
                None, None, None, None, None, None, None, None, None, None, None,
                exception[:4000] if exception else None, datetime.now(UTC),
            ))

    # -- driver thread ----------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Rows buffered and not yet flushed."""
        with self._lock:
            return len(self._rows)

    def _drain_listener_bus(self, timeout_ms: int) -> None:
        # Events reach Python asynchronously; wait until Spark's listener bus has delivered them.
        try:
            bus = self._spark.sparkContext._jsc.sc().listenerBus()  # type: ignore[union-attr]
            bus.waitUntilEmpty(timeout_ms)
        except Py4JError:
            return

    def flush(self, *, timeout_ms: int = 10_000) -> int:
        """Append every buffered row to the metrics table; returns the number of rows written."""
        self._drain_listener_bus(timeout_ms)
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        self.table.ensure(self._spark, STREAM_METRICS)
        self.table.append(self._spark.createDataFrame(rows, STREAM_METRICS))
        return len(rows)

    def remove(self, *, timeout_ms: int = 10_000) -> None:
        """Wait for pending events, then unregister from the session (rows stay buffered until :meth:`flush`)."""
        self._drain_listener_bus(timeout_ms)
        self._spark.streams.removeListener(self)


def install_metrics_listener(spark: SparkSession, lake: Lake) -> MetricsListener:
    """Register a :class:`MetricsListener` on ``spark`` writing to ``global.ops.stream_metrics``."""
    listener = MetricsListener(spark, stream_metrics_table(lake))
    spark.streams.addListener(listener)
    return listener


@contextmanager
def metrics_listener(spark: SparkSession, lake: Lake) -> Iterator[MetricsListener]:
    """Install a listener for a block; on exit (also on error) flush its rows and unregister it."""
    listener = install_metrics_listener(spark, lake)
    try:
        yield listener
    finally:
        listener.remove()
        listener.flush()
