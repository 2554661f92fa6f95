"""SQL text for expressions built as one string (one JVM call instead of several per Python column op)."""

from __future__ import annotations


def sql_string(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_double(value: float | None) -> str:
    """``value`` as an exact SQL double (``NULL`` for ``None``)."""
    return "CAST(NULL AS DOUBLE)" if value is None else f"CAST({sql_string(repr(float(value)))} AS DOUBLE)"


__all__ = ["sql_double", "sql_string"]
