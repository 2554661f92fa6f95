"""What every streaming job shares: the trigger choice and waiting for a query to finish."""

from __future__ import annotations

from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from nurture_lake.config import NurtureConfig


def with_trigger(writer: DataStreamWriter, cfg: NurtureConfig, *, once: bool) -> DataStreamWriter:
    """``availableNow`` for scheduled runs and tests, ``processingTime`` (``ingest.processing_time``) otherwise."""
    return writer.trigger(availableNow=True) if once else writer.trigger(processingTime=cfg.ingest.processing_time)


def await_query(query: StreamingQuery, *, once: bool, timeout_s: float | None, name: str) -> None:
    """Wait for ``query``: to its end with ``once``, else until ``timeout_s`` (then stop it) or forever.

    Raises ``RuntimeError`` naming the query when it failed.
    """
    if once:
        query.awaitTermination()
    else:
        finished = query.awaitTermination(timeout_s) if timeout_s is not None else query.awaitTermination()
        if not finished:
            query.stop()
    if query.exception() is not None:
        raise RuntimeError(f"{name} failed: {query.exception()}")
