"""Consent: out-of-order ledger events give the right current state."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Row, SparkSession
from pyspark.testing import assertDataFrameEqual

from nurture_lake.config import NurtureConfig
from nurture_lake.consent import current_consent
from nurture_lake.ingest import IngestTables, run_ingest
from nurture_lake.privacy import pseudonym
from nurture_lake.tables import Lake
from tests.test_ingest import event, land


def consent(event_id: str, kind: str, at: str, channel: str | None = "email", purpose: str | None = None,
            email: str = "ada@example.com") -> dict[str, object]:
    return event(event_id, event_type=f"consent_{kind}", occurred_at=at, channel=channel,
                 identifiers={"email": email}, properties={"purpose": purpose} if purpose else {})


def test_out_of_order_consent_latest_occurrence_wins(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    # Batch 1: the newest grant arrives first; batch 2: an older revoke arrives late.
    land(lake, "eu", "events-0001.jsonl", [
        consent("c2", "granted", "2026-11-03T09:00:00+01:00", email="x@example.de") | {"region": "eu"},
    ])
    run_ingest(spark, lake, "eu", progress=False)
    land(lake, "eu", "events-0002.jsonl", [
        consent("c1", "revoked", "2026-11-01T09:00:00+01:00", email="x@example.de") | {"region": "eu"},
        # Same instant, grant and revoke on push: the revoke wins (the safe side).
        consent("c3", "granted", "2026-11-02T12:00:00Z", channel="push", email="x@example.de") | {"region": "eu"},
        consent("c4", "revoked", "2026-11-02T12:00:00Z", channel="push", email="x@example.de") | {"region": "eu"},
        # No channel: applies to all channels; explicit purpose.
        consent("c5", "revoked", "2026-11-04T00:00:00Z", channel=None, purpose="sales", email="x@example.de") | {"region": "eu"},
    ])
    run_ingest(spark, lake, "eu", progress=False)

    key = pseudonym(cfg.hmac_key(), "email", "x@example.de")
    expected = [
        Row(id_key=key, channel="email", purpose="marketing", granted=True, occurred_at=datetime(2026, 11, 3, 8), event_id="c2", region="eu"),
        Row(id_key=key, channel="push", purpose="marketing", granted=False, occurred_at=datetime(2026, 11, 2, 12), event_id="c4", region="eu"),
        Row(id_key=key, channel="all", purpose="sales", granted=False, occurred_at=datetime(2026, 11, 4), event_id="c5", region="eu"),
    ]
    tables = IngestTables.for_region(lake, "eu")
    assertDataFrameEqual(tables.consent_current.read(spark), expected)
    # The incremental state equals a full rebuild from the append-only ledger.
    assertDataFrameEqual(current_consent(tables.consent_ledger.read(spark)), expected)
    assert tables.consent_ledger.read(spark).count() == 5
