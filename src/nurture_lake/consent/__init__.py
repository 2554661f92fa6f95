"""Consent: the append-only ledger and the current state per identifier, channel and purpose."""

from nurture_lake.consent.ledger import (
    ALL_CHANNELS,
    DEFAULT_PURPOSE,
    consent_ledger_rows,
    current_consent,
    upsert_consent_current,
)

__all__ = [
    "ALL_CHANNELS",
    "DEFAULT_PURPOSE",
    "consent_ledger_rows",
    "current_consent",
    "upsert_consent_current",
]
