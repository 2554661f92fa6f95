"""Vectorised UTC-offset lookups and ISO-8601 formatting of epoch seconds.

Offsets are tabulated per zone and UTC hour (every DST switch of the zones in use happens on a whole
UTC hour), so a million timestamps format without a Python call per event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

FMT_Z, FMT_PLUS_ZERO, FMT_LOCAL = 0, 1, 2
"""How ``occurred_at`` is written: ``...Z``, ``...+00:00``, or local time with the zone's offset."""


def offset_seconds(zone: str, epoch: float) -> int:
    """UTC offset of ``zone`` at ``epoch`` in seconds."""
    offset = datetime.fromtimestamp(epoch, tz=ZoneInfo(zone)).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


class OffsetTable:
    """UTC offsets per (zone, UTC hour) over ``[first, last]`` epoch seconds (padded by two days)."""

    def __init__(self, zones: tuple[str, ...], first: int, last: int) -> None:
        self.base = (first // 3600 - 48) * 3600
        hours = (last - self.base) // 3600 + 49
        stamps = self.base + 3600 * np.arange(hours)
        self.zones = zones
        self.table = np.array(
            [[offset_seconds(z, float(t)) for t in stamps.tolist()] for z in zones], dtype=np.int64
        ).reshape(len(zones), hours)

    def lookup(self, zone_idx: np.ndarray, epoch: np.ndarray) -> np.ndarray:
        """Offsets (seconds) for parallel arrays of zone indexes and epoch seconds."""
        slot = np.clip((epoch - self.base) // 3600, 0, self.table.shape[1] - 1)
        return self.table[zone_idx, slot]


def suffix(offset: int) -> str:
    """``+HH:MM`` / ``-HH:MM`` for an offset in seconds."""
    sign = "-" if offset < 0 else "+"
    minutes = abs(offset) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def iso_strings(epoch: np.ndarray, offsets: np.ndarray, fmt: np.ndarray) -> list[str]:
    """ISO-8601 strings with an offset: ``fmt`` picks ``Z``, ``+00:00`` or the local offset per element."""
    local = fmt == FMT_LOCAL
    shifted = np.where(local, epoch + offsets, epoch).astype("datetime64[s]")
    bases = np.datetime_as_string(shifted, unit="s").tolist()
    suffixes = {int(o): suffix(int(o)) for o in np.unique(offsets[local]).tolist()} if local.any() else {}
    ends = ("Z", "+00:00")
    return [
        base + (suffixes[off] if f == FMT_LOCAL else ends[f])
        for base, off, f in zip(bases, offsets.tolist(), fmt.tolist(), strict=True)
    ]


def iso_one(epoch: float, zone: str, fmt: int) -> str:
    """One ISO-8601 string (response events)."""
    seconds = int(epoch)
    if fmt == FMT_LOCAL:
        offset = offset_seconds(zone, seconds)
        return datetime.fromtimestamp(seconds + offset, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + suffix(offset)
    text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text + ("Z" if fmt == FMT_Z else "+00:00")
