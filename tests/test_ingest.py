"""Ingest: contract validation, quarantine reasons, dedup, restarts, residency."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from nurture_lake.config import NurtureConfig
from nurture_lake.ingest import BATCH_STEPS, IngestCounts, IngestTables, run_ingest, validate_events
from nurture_lake.ingest.sinks import _silver_history
from nurture_lake.privacy import pseudonym
from nurture_lake.schemas import SILVER_EVENTS
from nurture_lake.schemas import QuarantineReason as R
from nurture_lake.tables import Lake


def event(event_id: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": event_id,
        "event_type": "web_visit",
        "occurred_at": "2026-11-01T10:00:00Z",
        "region": "us",
        "identifiers": {"email": " Ada@Example.COM ", "cookie_id": "c-1"},
        "channel": "web",
        "properties": {"page": "/pricing"},
        "schema_version": "1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def land(lake: Lake, region: str, name: str, lines: list[str | dict[str, Any]]) -> Path:
    folder = lake.landing(region)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines))
    return path


def raw_batch(spark: SparkSession, lines: list[str | dict[str, Any]], source_file: str = "f1.jsonl") -> DataFrame:
    """A micro-batch as the landing stream delivers it: one ``value`` row per line, with its file."""
    return spark.createDataFrame([(json.dumps(x) if isinstance(x, dict) else x, source_file) for x in lines],
                                 "value string, source_file string")


BAD_LINES: dict[str, list[str | dict[str, Any]]] = {
    R.MALFORMED_JSON: ['{"event_id": "m1", "event_type": "web_vis', "[1, 2, 3]"],
    R.MISSING_REQUIRED_FIELD: [event("r1", occurred_at=_DROP), event("r2", identifiers=_DROP)],
    R.WRONG_TYPE: [
        event("t1", identifiers="ada@example.com"),
        event("t2", properties=["a", "b"]),
        event("t3", event_type=42),
        event("t4", identifiers={"email": {"nested": "x"}}),
    ],
    R.UNKNOWN_EVENT_TYPE: [event("u1", event_type="telepathy")],
    R.UNKNOWN_CHANNEL: [event("ch1", channel="pigeon")],
    R.UNSUPPORTED_SCHEMA_VERSION: [event("s1", schema_version="9")],
    R.BAD_TIMESTAMP: [
        event("b1", occurred_at="yesterday"),
        event("b2", occurred_at="2026-11-01T10:00:00"),  # no offset
        event("b3", occurred_at="2999-01-01T00:00:00Z"),  # far future
        event("b4", occurred_at="2026-13-45T10:00:00Z"),
    ],
    R.REGION_MISMATCH: [event("g1", region="eu")],
    R.NO_IDENTIFIERS: [event("n1", identifiers={}), event("n2", identifiers={"phone": "not a phone"})],
}


def test_every_quarantine_reason_from_a_real_bad_record(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    good = [event("ok-1"), event("ok-2", event_type="email_open", channel="email")]
    lines: list[str | dict[str, Any]] = list(good)
    for bad in BAD_LINES.values():
        lines.extend(bad)
    land(lake, "us", "events-0001.jsonl", lines)

    counts = run_ingest(spark, lake, "us", progress=False)

    tables = IngestTables.for_region(lake, "us")
    quarantine = tables.quarantine.read(spark)
    expected_q = [
        Row(event_id=(x.get("event_id") if isinstance(x, dict) else None), reason=reason)
        for reason, bad in BAD_LINES.items() for x in bad
    ]
    assertDataFrameEqual(quarantine.select("event_id", "reason"), expected_q)
    # The original payload is kept verbatim for every quarantined row.
    payloads = {r["payload"] for r in quarantine.collect()}
    assert '{"event_id": "m1", "event_type": "web_vis' in payloads
    assert set(R.ALL) - {R.DUPLICATE_EVENT_ID} == set(counts.quarantine)
    # The detail names the failing field(s) (the checks test booleans; the text is built for failed rows only).
    assertDataFrameEqual(
        quarantine.where(F.col("reason").isin(R.MISSING_REQUIRED_FIELD, R.WRONG_TYPE, R.NO_IDENTIFIERS))
        .select("event_id", "reason_detail"),
        [
            Row(event_id="r1", reason_detail="missing: occurred_at"),
            Row(event_id="r2", reason_detail="missing: identifiers"),
            Row(event_id="t1", reason_detail="identifiers must be an object"),
            Row(event_id="t2", reason_detail="properties must be an object"),
            Row(event_id="t3", reason_detail="event_type must be a string"),
            Row(event_id="t4", reason_detail="identifiers values must be strings"),
            Row(event_id="n1", reason_detail="no usable identifier (email, phone, crm_id, device_id, cookie_id)"),
            Row(event_id="n2", reason_detail="no usable identifier (email, phone, crm_id, device_id, cookie_id)"),
        ],
    )

    key = cfg.hmac_key()
    expected_ids = {"email": pseudonym(key, "email", "ada@example.com"), "cookie_id": pseudonym(key, "cookie_id", "c-1")}
    ts = datetime(2026, 11, 1, 10)
    assertDataFrameEqual(
        tables.silver.read(spark).select("event_id", "event_type", "occurred_at", "region", "identifiers", "channel"),
        [
            Row(event_id="ok-1", event_type="web_visit", occurred_at=ts, region="us", identifiers=expected_ids, channel="web"),
            Row(event_id="ok-2", event_type="email_open", occurred_at=ts, region="us", identifiers=expected_ids, channel="email"),
        ],
    )
    # Bronze keeps every raw line, good and bad.
    assert tables.bronze.read(spark).count() == len(lines)


def test_validate_events_types_and_offsets(spark: SparkSession, cfg: NurtureConfig) -> None:
    lines = [
        json.dumps(event("a", occurred_at="2026-03-29T03:30:00+02:00", identifiers={"phone": "(415) 555-0132"})),
        json.dumps(event("b", schema_version=1, decision_id="d-7", properties={"n": 3})),
    ]
    raw = spark.createDataFrame(
        [(v, "f.jsonl", datetime(2026, 11, 2), 0) for v in lines],
        "value string, source_file string, ingested_at timestamp, batch_id long",
    )
    key = cfg.hmac_key()
    out = validate_events(raw, region="us", hmac_key=key, phone_region="US", supported_versions=("1",),
                          max_future_skew_hours=24)
    assertDataFrameEqual(
        out.select("event_id", "occurred_at", "identifiers", "decision_id", "properties", "schema_version", "reason"),
        [
            Row(event_id="a", occurred_at=datetime(2026, 3, 29, 1, 30),
                identifiers={"phone": pseudonym(key, "phone", "+14155550132")}, decision_id=None,
                properties={"page": "/pricing"}, schema_version="1", reason=None),
            Row(event_id="b", occurred_at=datetime(2026, 11, 1, 10),
                identifiers={"email": pseudonym(key, "email", "ada@example.com"),
                             "cookie_id": pseudonym(key, "cookie_id", "c-1")},
                decision_id="d-7", properties={"n": "3"}, schema_version="1", reason=None),
        ],
    )


def test_only_json_objects_pass_the_object_check(spark: SparkSession, cfg: NurtureConfig) -> None:
    """Blanks may precede an object; other JSON values and broken lines are ``malformed_json``."""
    lines = [
        " \t" + json.dumps(event("blank-led")),
        "{}",
        '"{not an object}"',
        "42",
        "null",
        "[{}]",
        "",
        "{",
    ]
    raw = spark.createDataFrame(
        [(v, "f.jsonl", datetime(2026, 11, 2), 0) for v in lines],
        "value string, source_file string, ingested_at timestamp, batch_id long",
    )
    out = validate_events(raw, region="us", hmac_key=cfg.hmac_key(), phone_region="US", supported_versions=("1",),
                          max_future_skew_hours=24)
    assertDataFrameEqual(
        out.select("value", "event_id", "reason"),
        [Row(value=lines[0], event_id="blank-led", reason=None),
         Row(value="{}", event_id=None, reason=R.MISSING_REQUIRED_FIELD)]
        + [Row(value=v, event_id=None, reason=R.MALFORMED_JSON) for v in lines[2:]],
    )


def test_restart_adds_only_new_events_and_dedups_across_batches(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    land(lake, "us", "events-0001.jsonl", [event("e1"), event("e2"), event("e2")])
    first = run_ingest(spark, lake, "us", progress=False)
    assert (first.silver, first.quarantine) == (2, {R.DUPLICATE_EVENT_ID: 1})

    # Rerun with nothing new: nothing happens.
    again = run_ingest(spark, lake, "us", progress=False)
    assert again.batches == 0

    # New file: a re-sent e1 (duplicate across batches), a new e3 and a late, out-of-order e4.
    land(lake, "us", "events-0002.jsonl", [event("e1"), event("e3"), event("e4", occurred_at="2026-10-01T08:00:00-04:00")])
    run_ingest(spark, lake, "us", progress=False)

    tables = IngestTables.for_region(lake, "us")
    assertDataFrameEqual(
        tables.silver.read(spark).select("event_id", "occurred_at"),
        [Row(event_id="e1", occurred_at=datetime(2026, 11, 1, 10)),
         Row(event_id="e2", occurred_at=datetime(2026, 11, 1, 10)),
         Row(event_id="e3", occurred_at=datetime(2026, 11, 1, 10)),
         Row(event_id="e4", occurred_at=datetime(2026, 10, 1, 12))],
    )
    dup_files = tables.quarantine.read(spark).select("event_id", "reason", F.substring_index("source_file", "/", -1).alias("file"))
    assertDataFrameEqual(
        dup_files,
        [Row(event_id="e2", reason=R.DUPLICATE_EVENT_ID, file="events-0001.jsonl"),
         Row(event_id="e1", reason=R.DUPLICATE_EVENT_ID, file="events-0002.jsonl")],
    )


@pytest.mark.parametrize(
    ("lookback", "silver_ids", "duplicates"),
    [
        (None, ["aged", "recent", "new"], ["aged", "recent"]),
        ("30d", ["aged", "recent", "new", "aged"], ["recent"]),  # the aged original is outside the window
    ],
    ids=["whole-table", "30d-window"],
)
def test_dedup_lookback_bounds_the_silver_rows_a_copy_is_checked_against(
    spark: SparkSession, cfg: NurtureConfig, lookback: str | None, silver_ids: list[str], duplicates: list[str]
) -> None:
    """By default a copy of any earlier event is a duplicate; with a window, only of one ingested within it."""
    cfg = cfg.model_copy(update={"ingest": cfg.ingest.model_copy(update={"dedup_lookback": lookback})})
    lake = Lake(cfg)
    tables = IngestTables.for_region(lake, "us")
    land(lake, "us", "events-0001.jsonl", [event("aged"), event("recent")])
    run_ingest(spark, lake, "us", progress=False)
    # Age one original by 45 days (a real Delta UPDATE of its ingestion time): outside a 30-day window.
    tables.silver.delta(spark).update(
        F.col("event_id") == "aged", {"ingested_at": F.col("ingested_at") - F.expr("INTERVAL 45 DAYS")}
    )

    land(lake, "us", "events-0002.jsonl", [event("aged"), event("recent"), event("new")])
    second = run_ingest(spark, lake, "us", progress=False)

    assert second.silver == len(silver_ids) - 2 and second.quarantine == {R.DUPLICATE_EVENT_ID: len(duplicates)}
    assertDataFrameEqual(tables.silver.read(spark).select("event_id"), [Row(event_id=e) for e in silver_ids])
    assertDataFrameEqual(
        tables.quarantine.read(spark).select("event_id", "reason", F.substring_index("source_file", "/", -1).alias("file")),
        [Row(event_id=e, reason=R.DUPLICATE_EVENT_ID, file="events-0002.jsonl") for e in duplicates],
    )


def _files_scanned(df: DataFrame) -> int:
    """Files the Delta scan of ``df`` read after data skipping (its scan node's ``numFiles`` metric).

    The metric is set once, when a physical plan first lists its files, and reset by every later action on
    that plan; so it is read from a new plan of the same query, run once.
    """
    fresh = df.select("*")
    fresh.collect()
    leaves = fresh._jdf.queryExecution().executedPlan().collectLeaves()
    return sum(int(leaves.apply(i).metrics().apply("numFiles").value()) for i in range(leaves.size()))


def test_dedup_lookback_reads_only_the_files_ingested_within_the_window(spark: SparkSession, cfg: NurtureConfig) -> None:
    """The window is a predicate Delta skips files with, so its cost follows the window, not the table."""
    silver = IngestTables.for_region(Lake(cfg), "us").silver
    silver.ensure(spark, SILVER_EVENTS)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    for batch_id, days_ago in enumerate((40, 20, 1)):  # three micro-batches' appends, one file each
        ingested = now - timedelta(days=days_ago)
        silver.append(spark.createDataFrame(
            [(f"b{batch_id}", "web_visit", ingested, "us", {"cookie_id": "cookie_id:x"}, "web", None, {}, "1",
              f"f{batch_id}.jsonl", ingested, batch_id)],
            SILVER_EVENTS,
        ).coalesce(1))

    whole = _silver_history(spark, silver, since=None).select("event_id")
    window = _silver_history(spark, silver, since=now - timedelta(days=30)).select("event_id")

    assertDataFrameEqual(whole, [Row(event_id="b0"), Row(event_id="b1"), Row(event_id="b2")])
    assertDataFrameEqual(window, [Row(event_id="b1"), Row(event_id="b2")])
    assert (_files_scanned(whole), _files_scanned(window)) == (3, 2)


def test_counts_add_batches_and_merge_runs() -> None:
    us = IngestCounts()
    us.add(raw=3, silver=2, quarantine={R.DUPLICATE_EVENT_ID: 1}, step_seconds={"silver": 0.5})
    us.add(raw=2, silver=1, quarantine={R.DUPLICATE_EVENT_ID: 1, R.MALFORMED_JSON: 0}, step_seconds={"silver": 0.25})
    eu = IngestCounts()
    eu.add(raw=4, silver=3, quarantine={R.MALFORMED_JSON: 1}, step_seconds={"silver": 1.0, "vault": 2.0})

    total = IngestCounts()
    for run in (us, eu):
        total.merge(run)
    assert total == IngestCounts(
        batches=3, raw=9, silver=6, quarantine={R.DUPLICATE_EVENT_ID: 2, R.MALFORMED_JSON: 1},
        step_seconds={"silver": 1.75, "vault": 2.0},
    )
    assert us == IngestCounts(2, 5, 3, {R.DUPLICATE_EVENT_ID: 2, R.MALFORMED_JSON: 0}, {"silver": 0.75})


def test_vault_appends_new_keys_and_moves_first_sighting_earlier(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    ids = {"phone": "(415) 555-0132", "cookie_id": "c-1"}
    land(lake, "us", "events-0001.jsonl", [event("v1", identifiers=ids), event("v2", identifiers=ids,
                                                                             occurred_at="2026-11-02T10:00:00Z")])
    run_ingest(spark, lake, "us", progress=False)
    # A late event: the phone was seen a day earlier than recorded; the e-mail is new.
    land(lake, "us", "events-0002.jsonl", [
        event("v3", identifiers={"phone": "+1 415 555 0132", "email": "Late@Example.com"}, occurred_at="2026-10-31T10:00:00Z"),
    ])
    run_ingest(spark, lake, "us", progress=False)

    key = cfg.hmac_key()
    vault = IngestTables.for_region(lake, "us").identifiers.read(spark)
    assertDataFrameEqual(
        vault.select("id_key", "id_type", "value", "first_seen_at"),
        [
            Row(id_key=pseudonym(key, "phone", "+14155550132"), id_type="phone", value="+14155550132",
                first_seen_at=datetime(2026, 10, 31, 10)),
            Row(id_key=pseudonym(key, "cookie_id", "c-1"), id_type="cookie_id", value="c-1",
                first_seen_at=datetime(2026, 11, 1, 10)),
            Row(id_key=pseudonym(key, "email", "late@example.com"), id_type="email", value="late@example.com",
                first_seen_at=datetime(2026, 10, 31, 10)),
        ],
    )


def test_replayed_batch_is_idempotent(spark: SparkSession, cfg: NurtureConfig) -> None:
    """The same micro-batch written twice (a replay after a crash) leaves every table as after once."""
    from nurture_lake.ingest import process_batch

    lake = Lake(cfg)
    tables = IngestTables.for_region(lake, "us")
    tables.ensure_all(spark)
    raw = raw_batch(spark, [event("x1"), event("x2", event_type="consent_granted", channel="email"), "{oops"])
    first = process_batch(spark, cfg, tables, raw, 7, region="us", app_id="t")
    snapshot = {name: getattr(tables, name).read(spark).drop("ingested_at") for name in
                ("bronze", "silver", "quarantine", "identifiers", "consent_ledger", "consent_current")}
    frozen = {name: df.collect() for name, df in snapshot.items()}
    process_batch(spark, cfg, tables, raw, 7, region="us", app_id="t")
    for name, rows in frozen.items():
        assertDataFrameEqual(getattr(tables, name).read(spark).drop("ingested_at"), rows)
    assert first[1] == 2


def test_each_step_of_a_batch_labels_its_spark_jobs(spark: SparkSession, cfg: NurtureConfig) -> None:
    """The Spark UI (and status API) shows which ingest step ran each job; the labels do not leak."""
    from nurture_lake.ingest import process_batch

    tables = IngestTables.for_region(Lake(cfg), "us")
    tables.ensure_all(spark)
    raw = raw_batch(spark, [event("l1"), event("l2", event_type="consent_granted", channel="email"), "{oops"])
    tracker = spark.sparkContext.statusTracker()
    assert all(not tracker.getJobIdsForGroup(f"label.3.{s}") for s in BATCH_STEPS)
    seconds: dict[str, float] = {}
    process_batch(spark, cfg, tables, raw, 3, region="us", app_id="label", step_seconds=seconds)
    assert {s: bool(tracker.getJobIdsForGroup(f"label.3.{s}")) for s in BATCH_STEPS} == dict.fromkeys(BATCH_STEPS, True)
    assert list(seconds) == list(BATCH_STEPS) and all(v > 0 for v in seconds.values())
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None
    assert spark.sparkContext.getLocalProperty("spark.job.description") is None


def test_no_raw_identifier_crosses_region_roots(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    land(lake, "us", "events-0001.jsonl", [event("u1", identifiers={"email": "only-us@example.com"})])
    land(lake, "eu", "events-0001.jsonl", [event("x1", region="eu", identifiers={"email": "only-eu@example.de"})])
    for region in ("us", "eu"):
        run_ingest(spark, lake, region, progress=False)
    for region, foreign in (("us", b"only-eu@example.de"), ("eu", b"only-us@example.com")):
        files = [p for p in lake.region_root(region).rglob("*") if p.is_file()]
        assert files, f"no files under {region}"
        assert not any(foreign in p.read_bytes() for p in files), f"raw identifier leaked into {region}"
    # Silver holds pseudonyms only: the raw e-mail is in bronze and the vault, not in silver files.
    silver_files = [p for p in (lake.region_root("us") / "silver" / "events").rglob("*.parquet")]
    assert silver_files and not any(b"only-us@example.com" in p.read_bytes() for p in silver_files)


@pytest.mark.parametrize("region_cfg", ["eu"])
def test_landing_folder_per_region(cfg: NurtureConfig, region_cfg: str) -> None:
    lake = Lake(cfg)
    assert lake.landing(region_cfg).parts[-2:] == (region_cfg, "events")
    with pytest.raises(ValueError, match="unknown region"):
        lake.landing("mars")


def test_job_ingests_regions_side_by_side_and_audits_a_failed_region(
    spark: SparkSession, cfg: NurtureConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """One region failing (its bronze path is a file) fails the job, but the other region's data and audit row land."""
    from nurture_lake.audit import audit_table
    from nurture_lake.jobs.ingest import main

    lake = Lake(cfg)
    land(lake, "us", "a.jsonl", [event("us-1"), event("us-2", event_type="email_open", channel="email")])
    land(lake, "eu", "a.jsonl", [event("eu-1", region="eu")])
    blocked = Path(lake.table("eu", "bronze", "events_raw").path or "")
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("not a Delta table")

    with pytest.raises(SystemExit, match="ingest failed for region\\(s\\): eu"):
        main([
            "--set", f"storage.lake_root={cfg.storage.lake_root}",
            "--set", f"storage.checkpoint_root={cfg.storage.checkpoint_root}",
            "--set", f"storage.landing_root={cfg.storage.landing_root}",
        ])

    assert "ingest eu: FAILED" in capsys.readouterr().err
    silver = IngestTables.for_region(lake, "us").silver.read(spark).select("event_id")
    assertDataFrameEqual(silver, spark.createDataFrame([("us-1",), ("us-2",)], "event_id string"))
    audit = audit_table(lake).read(spark).where("job = 'ingest'")
    assertDataFrameEqual(
        audit.select("region", "status", F.col("row_counts")["us.silver.events"].alias("silver_rows")),
        spark.createDataFrame([("us", "succeeded", 2), ("eu", "failed", None)],
                              "region string, status string, silver_rows bigint"),
    )
    assert audit.where("region = 'eu'").first()["error"]
