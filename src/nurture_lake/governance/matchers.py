"""Which rows of which table are about a subject: one boolean Column per table (pure expressions).

:data:`REGION_TABLES` lists every regional table holding personal or lead-level data and how a
row is matched; :data:`GLOBAL_TABLES` the cross-region ones. Raw payloads (bronze, quarantine)
are matched twice: their ``identifiers`` are parsed, normalised and pseudonymised with the ingest
functions (phones by their digits), and their text is searched for each raw value in JSON quotes
(this also finds malformed lines).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import phonenumbers
from pyspark.sql import Column
from pyspark.sql import functions as F

from nurture_lake.governance.subject import Subject
from nurture_lake.privacy import normalise_identifier_col, pseudonym_col
from nurture_lake.schemas import IDENTIFIER_TYPES

Matcher = Callable[[Subject, str, bytes], Column | None]
"""``(subject, region, hmac_key) → condition``; ``None`` when the table cannot hold the subject."""


def _isin(column: str, values: list[str]) -> Column | None:
    return F.col(column).isin(sorted(set(values))) if values else None


def _any(*conditions: Column | None) -> Column | None:
    present = [c for c in conditions if c is not None]
    if not present:
        return None
    out = present[0]
    for c in present[1:]:
        out = out | c
    return F.coalesce(out, F.lit(False))


def phone_digit_forms(e164: str) -> list[str]:
    """Digit strings a written form of the phone number reduces to (international, national, trunk 0)."""
    digits = "".join(c for c in e164 if c.isdigit())
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return [digits] if digits else []
    zeros = "0" * (parsed.number_of_leading_zeros or 1) if parsed.italian_leading_zero else ""
    national = f"{zeros}{parsed.national_number}"
    cc = str(parsed.country_code)
    return sorted({cc + national, national, "0" + national, "00" + cc + national})


def payload_condition(column: str, subject: Subject, region: str, key: bytes) -> Column | None:
    """Rows whose raw JSON ``column`` names one of the subject's identifiers (see module doc)."""
    keys = sorted(subject.id_keys)
    parts: list[Column | None] = []
    for id_type in IDENTIFIER_TYPES:
        text = F.get_json_object(F.col(column), f"$.identifiers.{id_type}")
        if id_type == "phone":
            forms = sorted({d for t, v in subject.values(region) if t == "phone" for d in phone_digit_forms(v)})
            if forms:
                parts.append(F.regexp_replace(text, r"[^0-9]", "").isin(forms))
        elif any(k.startswith(f"{id_type}:") for k in keys):
            parts.append(pseudonym_col(key, id_type, normalise_identifier_col(id_type, text)).isin(keys))
    lowered = F.lower(F.col(column))
    for _, value in subject.values(region):
        # The value as a JSON string, allowing the blanks normalisation trimmed: "  Ada@Example.COM ".
        quoted = json.dumps(value.lower())[1:-1].replace("\\E", "")
        parts.append(lowered.rlike(r'"\s*\Q' + quoted + r'\E\s*"'))
    return _any(*parts)


def _payload(column: str) -> Matcher:
    return lambda s, r, k: payload_condition(column, s, r, k)


def _keys(*columns: str) -> Matcher:
    return lambda s, r, k: _any(*(_isin(c, sorted(s.id_keys)) for c in columns))


def _leads(*columns: str) -> Matcher:
    return lambda s, r, k: _any(*(_isin(c, s.lead_ids(r)) for c in columns))


def _events(s: Subject, r: str, k: bytes) -> Column | None:
    keys = sorted(s.id_keys)
    return F.coalesce(F.arrays_overlap(F.map_values("identifiers"), F.array(*map(F.lit, keys))), F.lit(False))


def _graph(s: Subject, r: str, k: bytes) -> Column | None:
    return _any(_keys("id_key")(s, r, k), _leads("lead_id")(s, r, k))


def _global_leads(s: Subject, r: str, k: bytes) -> Column | None:
    regions = sorted({region for region, _ in s.leads})
    by_lead = [(F.col("region") == region) & F.col("lead_id").isin(s.lead_ids(region)) for region in regions]
    return _any(_isin("global_lead_id", sorted(s.global_leads)), *by_lead)


REGION_TABLES: tuple[tuple[str, str, Matcher], ...] = (
    ("bronze", "events_raw", _payload("value")),
    ("silver", "events", _events),
    ("silver", "events_quarantine", _payload("payload")),
    ("silver", "identifiers", _keys("id_key")),
    ("silver", "consent_ledger", _keys("id_key")),
    ("silver", "consent_current", _keys("id_key")),
    ("silver", "identity_edges", _keys("src", "dst")),
    ("silver", "identity_graph", _graph),
    ("silver", "lead_merges", _leads("merged_lead_id", "surviving_lead_id")),
    ("gold", "lead_features", _leads("lead_id")),
    ("gold", "cadence_decisions", _leads("lead_id")),
    ("gold", "decision_outcomes", _leads("lead_id")),
)
"""Every regional table that can hold data about a lead, with its matcher. ``identity_state`` holds none."""

GLOBAL_TABLES: tuple[tuple[str, str, Matcher], ...] = (
    ("silver", "global_leads", _global_leads),
)
"""Cross-region tables about leads (pseudonymous lead ids only)."""


__all__ = ["GLOBAL_TABLES", "REGION_TABLES", "Matcher", "payload_condition", "phone_digit_forms"]
