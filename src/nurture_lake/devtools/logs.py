"""The end of a daemon's log, for the error raised when the daemon fails to start."""

from __future__ import annotations

from pathlib import Path

__all__ = ["log_tail"]


def log_tail(log: Path, lines: int = 15) -> str:
    """``--- last lines of <log> ---`` and the log's last ``lines`` lines (``(no log)`` when it is missing)."""
    text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else ["(no log)"]
    return f"--- last lines of {log} ---\n" + "\n".join(text)
