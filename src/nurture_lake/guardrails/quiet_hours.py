"""Quiet hours in the lead's local time: the same arithmetic in Python and as Spark columns.

Times are integers (microseconds since the epoch): UTC instants, or *local wall times* (the wall
clock of the lead's zone read as if it were UTC). Converting a local wall time back to UTC uses the
earlier offset in a DST overlap and shifts forward across a DST gap — Java's ``atZone`` (Spark's
``to_utc_timestamp``) and Python's ``zoneinfo`` with ``fold=0`` agree on both. When that earliest
reading lies before the instant being deferred (an overlap hour read in its second fold), the send
keeps the instant's own offset instead, so a deferral never moves a send earlier.

Deferral is applied twice: after a DST gap the first result can land (pathologically) in quiet time
again; whatever is still quiet after the second pass is *blocked* by the caller, never sent.

Example::

    qh = QuietHours(start="21:00", end="08:00")
    defer_micros(t, "Europe/Berlin", qh)   # (send_micros, ok)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from nurture_lake.guardrails.config import QuietHours

DAY_MICROS = 86_400_000_000
DEFER_PASSES = 2
"""How often deferral is applied before a still-quiet send is blocked."""

_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_MICRO = timedelta(microseconds=1)


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


# --------------------------------------------------------------------------------------- Python


def to_micros(moment: datetime) -> int:
    """An aware datetime → UTC microseconds since the epoch (naive datetimes are read as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH_UTC) // _MICRO


def from_micros(micros: int) -> datetime:
    """UTC microseconds → an aware UTC datetime."""
    return _EPOCH_UTC + timedelta(microseconds=micros)


def local_micros(utc_micros: int, zone: str) -> int:
    """The local wall time of an instant in ``zone``."""
    local = from_micros(utc_micros).astimezone(_zone(zone)).replace(tzinfo=None)
    return (local - _EPOCH_NAIVE) // _MICRO


def utc_of_local(local: int, zone: str) -> int:
    """The instant of a local wall time (``fold=0``: earlier offset in overlaps, shifted across gaps)."""
    naive = _EPOCH_NAIVE + timedelta(microseconds=local)
    return to_micros(naive.replace(tzinfo=_zone(zone), fold=0))


def _in_window(mod: int, qh: QuietHours) -> bool:
    start, end = qh.start_micros, qh.end_micros
    if start == end:
        return False
    if start < end:
        return start <= mod < end
    return mod >= start or mod < end


def _weekend(day: int, qh: QuietHours) -> bool:
    return ((day + 3) % 7) + 1 in qh.weekend_days


def is_quiet_local(local: int, qh: QuietHours) -> bool:
    """Whether a local wall time is quiet (inside the window or on a quiet week day)."""
    if not qh.active:
        return False
    day, mod = divmod(local, DAY_MICROS)
    return _weekend(day, qh) or _in_window(mod, qh)


def is_quiet(utc_micros: int, zone: str, qh: QuietHours) -> bool:
    """Whether an instant is quiet in ``zone``."""
    return is_quiet_local(local_micros(utc_micros, zone), qh)


def _first_allowed_mod(qh: QuietHours) -> int:
    return qh.end_micros if _in_window(0, qh) else 0


def next_allowed_local(local: int, qh: QuietHours) -> int:
    """The first non-quiet local wall time at or after ``local``."""
    if not is_quiet_local(local, qh):
        return local
    day, mod = divmod(local, DAY_MICROS)
    if not _weekend(day, qh) and (qh.start_micros < qh.end_micros or mod < qh.end_micros):
        return day * DAY_MICROS + qh.end_micros
    next_day = next(day + k for k in range(1, 8) if not _weekend(day + k, qh))
    return next_day * DAY_MICROS + _first_allowed_mod(qh)


def _defer_once(utc_micros: int, zone: str, qh: QuietHours) -> int:
    local = local_micros(utc_micros, zone)
    if not is_quiet_local(local, qh):
        return utc_micros
    target = next_allowed_local(local, qh)
    moved = utc_of_local(target, zone)
    return moved if moved >= utc_micros else utc_micros + (target - local)


def defer_micros(utc_micros: int, zone: str, qh: QuietHours) -> tuple[int, bool]:
    """Defer an instant out of quiet hours: ``(send_micros, ok)``; ``ok`` is False when still quiet."""
    send = utc_micros
    for _ in range(DEFER_PASSES):
        send = _defer_once(send, zone, qh)
    return send, not is_quiet(send, zone, qh)


# ---------------------------------------------------------------------------------------- Spark
# The Spark twins build SQL expression text (one JVM parse per expression instead of a py4j call per
# node); arguments are SQL expressions of µs values and of the zone name.


def local_micros_sql(utc_micros: str, zone: str) -> str:
    """Spark twin of :func:`local_micros`."""
    return f"unix_micros(from_utc_timestamp(timestamp_micros({utc_micros}), {zone}))"


def utc_of_local_sql(local: str, zone: str) -> str:
    """Spark twin of :func:`utc_of_local`."""
    return f"unix_micros(to_utc_timestamp(timestamp_micros({local}), {zone}))"


def _day_sql(local: str) -> str:
    return f"(({local} - pmod({local}, {DAY_MICROS}L)) div {DAY_MICROS}L)"


def _weekend_sql(day: str, qh: QuietHours) -> str:
    if not qh.weekend_days:
        return "false"
    return f"((pmod({day} + 3, 7) + 1) IN ({', '.join(str(d) for d in qh.weekend_days)}))"


def _in_window_sql(mod: str, qh: QuietHours) -> str:
    start, end = qh.start_micros, qh.end_micros
    if start == end:
        return "false"
    if start < end:
        return f"({mod} >= {start}L AND {mod} < {end}L)"
    return f"({mod} >= {start}L OR {mod} < {end}L)"


def is_quiet_local_sql(local: str, qh: QuietHours) -> str:
    """Spark twin of :func:`is_quiet_local`."""
    if not qh.active:
        return "false"
    return f"({_weekend_sql(_day_sql(local), qh)} OR {_in_window_sql(f'pmod({local}, {DAY_MICROS}L)', qh)})"


def next_allowed_local_sql(local: str, qh: QuietHours) -> str:
    """Spark twin of :func:`next_allowed_local`."""
    day = _day_sql(local)
    same_day = f"NOT {_weekend_sql(day, qh)}"
    if qh.start_micros > qh.end_micros:
        same_day += f" AND pmod({local}, {DAY_MICROS}L) < {qh.end_micros}L"
    if qh.weekend_days:
        options = ", ".join(
            f"CASE WHEN NOT {_weekend_sql(f'({day} + {k})', qh)} THEN {day} + {k} END" for k in range(1, 8)
        )
        next_day = f"coalesce({options})"
    else:
        next_day = f"({day} + 1)"
    return (
        f"CASE WHEN NOT {is_quiet_local_sql(local, qh)} THEN {local} "
        f"WHEN {same_day} THEN {day} * {DAY_MICROS}L + {qh.end_micros}L "
        f"ELSE {next_day} * {DAY_MICROS}L + {_first_allowed_mod(qh)}L END"
    )


def defer_step_sql(utc_micros: str, local: str, target: str, zone: str, qh: QuietHours) -> str:
    """One deferral pass given the instant, its local wall time and :func:`next_allowed_local_sql` of it."""
    moved = utc_of_local_sql(target, zone)
    return (
        f"CASE WHEN NOT {is_quiet_local_sql(local, qh)} THEN {utc_micros} "
        f"WHEN {moved} >= {utc_micros} THEN {moved} "
        f"ELSE {utc_micros} + ({target} - {local}) END"
    )
