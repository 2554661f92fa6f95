"""Bad records: each has exactly one defect, named by the quarantine reason ingest must give it.

``corrupt(line, kind, ...)`` turns one valid landing line into a bad one. Duplicates are not made
here: a duplicate is an exact copy of an earlier good line (see :mod:`nurture_lake.simulator.organic`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np

from nurture_lake.schemas import REQUIRED_FIELDS, QuarantineReason

UNKNOWN_EVENT_TYPES: tuple[str, ...] = ("page_view", "email_opened", "webinar_attended", "sms_read", "fax_sent")
UNKNOWN_CHANNELS: tuple[str, ...] = ("fax", "carrier_pigeon", "telex", "billboard")
UNSUPPORTED_VERSIONS: tuple[str, ...] = ("2", "0", "1.1", "99")
_UNPARSEABLE = ("not a timestamp", "2026-13-45T25:61:00Z", "yesterday", "12/31/2026 10:00")
_FAR_FUTURE_DAYS = 36500  # a century ahead of the event: future for any ingest clock, deterministic


def corrupt(
    line: str,
    kind: str,
    rng: np.random.Generator,
    *,
    epoch: int,
    other_regions: tuple[str, ...],
) -> str:
    """A bad version of ``line`` (a valid landing line of an event at ``epoch``) with one defect of ``kind``."""
    if kind == QuarantineReason.MALFORMED_JSON:
        cut = int(rng.integers(len(line) // 4, len(line) - 1))
        return line[:cut]  # a strict prefix of a JSON object is never valid JSON
    event = json.loads(line)
    if kind == QuarantineReason.MISSING_REQUIRED_FIELD:
        del event[REQUIRED_FIELDS[int(rng.integers(len(REQUIRED_FIELDS)))]]
    elif kind == QuarantineReason.WRONG_TYPE:
        if rng.random() < 0.5:
            event["identifiers"] = json.dumps(event["identifiers"], separators=(",", ":"))
        else:
            event["properties"] = [f"{k}={v}" for k, v in (event.get("properties") or {"x": "y"}).items()]
    elif kind == QuarantineReason.UNKNOWN_EVENT_TYPE:
        event["event_type"] = UNKNOWN_EVENT_TYPES[int(rng.integers(len(UNKNOWN_EVENT_TYPES)))]
    elif kind == QuarantineReason.UNKNOWN_CHANNEL:
        event["channel"] = UNKNOWN_CHANNELS[int(rng.integers(len(UNKNOWN_CHANNELS)))]
    elif kind == QuarantineReason.BAD_TIMESTAMP:
        event["occurred_at"] = _bad_timestamp(rng, epoch)
    elif kind == QuarantineReason.NO_IDENTIFIERS:
        event["identifiers"] = {}
    elif kind == QuarantineReason.REGION_MISMATCH:
        event["region"] = other_regions[int(rng.integers(len(other_regions)))] if other_regions else "zz"
    elif kind == QuarantineReason.UNSUPPORTED_SCHEMA_VERSION:
        event["schema_version"] = UNSUPPORTED_VERSIONS[int(rng.integers(len(UNSUPPORTED_VERSIONS)))]
    else:
        raise ValueError(f"cannot make a bad record of kind {kind!r}")
    return json.dumps(event, separators=(",", ":"))


def _bad_timestamp(rng: np.random.Generator, epoch: int) -> str:
    variant = int(rng.integers(3))
    if variant == 0:
        return _UNPARSEABLE[int(rng.integers(len(_UNPARSEABLE)))]
    if variant == 1:  # no offset: a naive local-looking time
        return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    future = epoch + _FAR_FUTURE_DAYS * 86400
    return datetime.fromtimestamp(future, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
