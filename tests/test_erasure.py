"""Right to erasure on a real lake: ingest → identity → features, plus decisions; then erase one person."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from nurture_lake.config import NurtureConfig
from nurture_lake.features.store import update_lead_features
from nurture_lake.governance import erasure_requests_table, process_pending, submit_request, subject_token
from nurture_lake.governance.pool import results, side_by_side
from nurture_lake.identity import attach_lead_id, run_global, run_region
from nurture_lake.ingest import run_ingest_regions
from nurture_lake.jobs.erase import main as erase_main
from nurture_lake.privacy import pseudonym
from nurture_lake.schemas import BRONZE_EVENTS_RAW, GOLD_CADENCE_DECISIONS, GOLD_DECISION_OUTCOMES
from nurture_lake.tables import GLOBAL_REGION, Lake

ADA_EMAIL_RAW, ADA_PHONE_RAW, ADA_COOKIE, ADA_DEVICE = " Ada@Example.COM ", "(415) 555-0132", "ck-ada-7f3", "dv-ada-eu9"


def ev(event_id: str, region: str, identifiers: dict[str, str], *, event_type: str = "web_visit",
       at: str = "2026-11-01T10:00:00Z", channel: str | None = "web", **props: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "event_id": event_id, "event_type": event_type, "occurred_at": at, "region": region,
        "identifiers": identifiers, "properties": dict(props), "schema_version": "1",
    }
    if channel is not None:
        out["channel"] = channel
    return out


def land(lake: Lake, region: str, name: str, lines: list[Any]) -> None:
    folder = lake.landing(region)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines))


def _decision(decision_id: str, lead_id: str, region: str) -> tuple[Any, ...]:
    at = datetime(2026, 11, 2, 9, 0)
    return (
        decision_id, lead_id, region, at, "e-trigger", "event", "email@1d", "email", "1d", at, 0.5,
        {"email@1d": 0.5, "hold": 0.5}, {"email@1d": 0.2, "hold": 0.0}, False, False,
        [("consent", True, [], None)], "logging", "logging", "0", "none", "cfg", 1, at, "job", 0, "test",
    )


def _outcome(decision_id: str, lead_id: str, region: str) -> tuple[Any, ...]:
    at = datetime(2026, 11, 2, 9, 0)
    return (decision_id, lead_id, region, "email@1d", "email", 0.5, False, "0", at, at, datetime(2026, 11, 9),
            1.0, {"click": 1.0}, ["e-x"], False, at)


def build_lake(spark: SparkSession, cfg: NurtureConfig) -> Lake:
    """us: Ada (email+cookie, cookie+phone, a malformed line, a duplicate) and Bob; eu: Ada (email+device,
    consent) and Cleo. Then ingest, identity, global view, features and hand-made decisions/outcomes."""
    lake = Lake(cfg)
    ada_us = [
        ev("us-a1", "us", {"email": ADA_EMAIL_RAW, "cookie_id": ADA_COOKIE}),
        ev("us-a2", "us", {"cookie_id": ADA_COOKIE, "phone": ADA_PHONE_RAW}, at="2026-11-01T11:00:00Z"),
    ]
    land(lake, "us", "a.jsonl", [
        *ada_us,
        ev("us-b1", "us", {"email": "bob@example.org", "cookie_id": "ck-bob-1"}),
        ev("us-b2", "us", {"cookie_id": "ck-bob-1"}, event_type="email_open", channel="email"),
        '{"event_id": "us-bad", "identifiers": {"email": "' + ADA_EMAIL_RAW + '"', # malformed JSON
    ])
    land(lake, "us", "b.jsonl", [ada_us[0]])  # a duplicate of Ada's event → quarantine
    land(lake, "eu", "a.jsonl", [
        ev("eu-a1", "eu", {"email": "ada@example.com", "device_id": ADA_DEVICE}),
        ev("eu-a2", "eu", {"device_id": ADA_DEVICE}, event_type="consent_granted", channel="email", purpose="marketing"),
        ev("eu-c1", "eu", {"email": "cleo@example.net", "crm_id": "crm-cleo-1"}),
        ev("eu-c2", "eu", {"crm_id": "crm-cleo-1"}, event_type="consent_granted", channel="email"),
    ])
    ingested = run_ingest_regions(spark, lake, lake.regions, progress=False)  # side by side, as the job runs them
    assert not [r for r in ingested.values() if isinstance(r, BaseException)], ingested
    for region in lake.regions:
        run_region(spark, lake, region, run_id=f"r-{region}")
        graph = lake.table(region, "silver", "identity_graph").read(spark)
        events = attach_lead_id(lake.table(region, "silver", "events").read(spark), graph)
        update_lead_features(spark, lake, region, events.where(F.col("lead_id").isNotNull()))
    run_global(spark, lake)
    for region in lake.regions:
        leads = sorted(r["lead_id"] for r in lake.table(region, "silver", "identity_graph").read(spark)
                       .select("lead_id").distinct().collect())
        decisions = [_decision(f"d-{region}-{i}", lead, region) for i, lead in enumerate(leads)]
        outcomes = [_outcome(f"d-{region}-{i}", lead, region) for i, lead in enumerate(leads)]
        lake.table(region, "gold", "cadence_decisions").append(spark.createDataFrame(decisions, GOLD_CADENCE_DECISIONS))
        lake.table(region, "gold", "decision_outcomes").append(spark.createDataFrame(outcomes, GOLD_DECISION_OUTCOMES))
    return lake


def _parquet_text(path: Path) -> str:
    try:
        return json.dumps(pq.read_table(io.BytesIO(path.read_bytes())).to_pylist(), default=str)
    except (OSError, pa.ArrowInvalid):  # not decodable: scanned as bytes only
        return ""


def lake_hits(root: Path, needles: list[str]) -> dict[str, list[str]]:
    """Which needles (case-insensitive) occur in which file under ``root`` — raw bytes and decoded Parquet."""
    hits: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("latin-1").lower()
        if path.suffix == ".parquet":
            text += _parquet_text(path).lower()
        found = [n for n in needles if n.lower() in text]
        if found:
            hits[str(path.relative_to(root))] = found
    return hits


def _snapshot(spark: SparkSession, lake: Lake) -> dict[str, list[Row]]:
    """Every table's rows by label (read four tables at a time: each read is mostly driver latency)."""
    tables = [
        lake.table(region, layer_dir.parent.name, layer_dir.name)
        for region in [*lake.regions, GLOBAL_REGION]
        for layer_dir in sorted(p for p in lake.region_root(region).glob("*/*") if (p / "_delta_log").is_dir())
    ]
    rows = results(side_by_side(lambda table: table.read(spark).collect(), tables, workers=4, name="snapshot"))
    return {table.label: table_rows for table, table_rows in zip(tables, rows, strict=True)}


@pytest.mark.slow
def test_erase_one_person_everywhere_and_nothing_else(spark: SparkSession, cfg: NurtureConfig, capsys) -> None:
    lake = build_lake(spark, cfg)
    key = cfg.hmac_key()
    ada_keys = [
        pseudonym(key, "email", "ada@example.com"), pseudonym(key, "cookie_id", ADA_COOKIE),
        pseudonym(key, "phone", "+14155550132"), pseudonym(key, "device_id", ADA_DEVICE),
    ]
    ada_leads = [
        r["lead_id"] for region in lake.regions
        for r in lake.table(region, "silver", "identity_graph").read(spark).where(F.col("id_key").isin(ada_keys))
        .select("lead_id").distinct().collect()
    ]
    assert len(ada_leads) == 2  # one lead in us, one in eu
    needles = [
        "ada@example.com", ADA_PHONE_RAW, "+14155550132", ADA_COOKIE, ADA_DEVICE,
        *ada_keys, *(k.split(":")[1] for k in ada_keys), *ada_leads,
    ]
    root = cfg.resolve(cfg.storage.lake_root)
    before_hits = lake_hits(root, needles)
    # The scan is able to see the person before erasure: in bronze, silver, gold, graph and global tables.
    assert {h.split("/")[0] for h in before_hits} == {"us", "eu", "global"}
    assert all(any(n.lower() in hs for hs in map(str.lower, sum(before_hits.values(), []))) for n in needles)
    before = _snapshot(spark, lake)

    def about_ada(row: Row) -> bool:
        text = json.dumps(row.asDict(recursive=True), default=str).lower()
        return any(n.lower() in text for n in needles)

    args = ["--set", f"storage.lake_root={root}", "--set", f"storage.landing_root={cfg.storage.landing_root}",
            "--set", f"storage.checkpoint_root={cfg.storage.checkpoint_root}"]
    erase_main(["--subject", "ADA@example.com", "--type", "email", "--reason", "GDPR art. 17 ticket 9", *args])
    out = capsys.readouterr().out
    assert "row(s) deleted" in out

    assert lake_hits(root, needles) == {}
    after = _snapshot(spark, lake)
    for label, rows in before.items():
        if label in {"global.ops.audit_runs", "global.ops.access_log", "global.ops.erasure_requests"}:
            continue
        expected = [r for r in rows if not about_ada(r)]
        schema = lake.table(*label.split(".")).read(spark).schema
        assertDataFrameEqual(spark.createDataFrame(after[label], schema), spark.createDataFrame(expected, schema))
    # Hand-counted survivors: Bob's 2 events in us, Cleo's 2 in eu; one lead per region left.
    assert len(after["us.silver.events"]) == 2 and len(after["eu.silver.events"]) == 2
    assert {r["lead_id"] for r in after["us.gold.cadence_decisions"]} | {
        r["lead_id"] for r in after["eu.gold.cadence_decisions"]} == {
        r["lead_id"] for region in ("us", "eu") for r in after[f"{region}.silver.identity_graph"]}
    assert len(after["global.silver.global_leads"]) == 2

    requests = erasure_requests_table(lake).read(spark).collect()
    assert [(r["status"], r["subject_pseudonyms"], r["subject_token"], r["reason"]) for r in requests] == [
        ("done", None, subject_token(ada_keys[0]), "GDPR art. 17 ticket 9")
    ]
    assert requests[0]["rows_deleted"]["us.bronze.events_raw"] == 4  # 2 events, the malformed line, the duplicate
    access = lake.table(GLOBAL_REGION, "ops", "access_log").read(spark).collect()
    assert [(r["tool"], r["reason"], r["subject_token"]) for r in access] == [
        ("erase", "GDPR art. 17 ticket 9", subject_token(ada_keys[0]))
    ]

    # Idempotent: a second run finds nothing and changes no table.
    erase_main(["--subject", " ada@EXAMPLE.com", "--type", "email", "--reason", "re-check", *args])
    assert "0 lead(s), 1 id_key(s), 0 row(s) deleted {}" in capsys.readouterr().out
    again = _snapshot(spark, lake)
    for label in after:
        if not label.startswith("global.ops"):
            assert again[label] == after[label], label


def test_missing_reason_is_a_usage_error(cfg: NurtureConfig, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        erase_main(["--subject", "ada@example.com", "--type", "email"])
    assert exit_info.value.code == 2
    assert "--reason is required" in capsys.readouterr().err


def test_a_failed_erasure_stays_pending_and_its_retry_purges_what_the_first_attempt_deleted(
    spark: SparkSession, cfg: NurtureConfig, tmp_path: Path
) -> None:
    lake = Lake(cfg)
    bronze = {region: lake.table(region, "bronze", "events_raw") for region in lake.regions}
    for region, table in bronze.items():
        people = {"ada": "ada@example.com", "bob": "bob@example.org"} if region == "us" else {"ada": "ada@example.com"}
        rows = [(json.dumps(ev(f"{region}-{who}", region, {"email": email})), "f", None, None, None, None, region,
                 datetime(2026, 11, 1), 0) for who, email in people.items()]
        table.ensure(spark, BRONZE_EVENTS_RAW)
        table.append(spark.createDataFrame(rows, BRONZE_EVENTS_RAW))
    root = cfg.resolve(cfg.storage.lake_root)
    assert {path.split("/")[0] for path in lake_hits(root, ["ada@example.com"])} == {"us", "eu"}

    # The eu table loses its data file: searching it fails, after the us table's DELETE committed.
    eu_files = sorted((root / "eu" / "bronze" / "events_raw").glob("*.parquet"))
    aside = tmp_path / "aside"
    aside.mkdir()
    for path in eu_files:
        path.rename(aside / path.name)
    key = cfg.hmac_key()
    rid = submit_request(spark, lake, subject_type="email", pseudonyms=[pseudonym(key, "email", "ada@example.com")],
                         reason="ticket 12")
    with pytest.raises(Exception, match=r"\.parquet"):
        process_pending(spark, lake)
    request = erasure_requests_table(lake).read(spark).where(F.col("request_id") == rid).first()
    assert request is not None
    assert (request["status"], request["attempts"]) == ("pending", 1)
    assert ".parquet" in request["error"]
    assertDataFrameEqual(bronze["us"].read(spark).select("value"),
                         spark.createDataFrame([(json.dumps(ev("us-bob", "us", {"email": "bob@example.org"})),)],
                                               "value string"))
    # Deleted from the current version but not vacuumed: the old file still holds the address.
    assert "us" in {path.split("/")[0] for path in lake_hits(root, ["ada@example.com"])}

    for path in eu_files:
        (aside / path.name).rename(path)
    [report] = process_pending(spark, lake)
    # The retry finds nothing left in us, yet purges it with every other table: no file holds her any more.
    assert report.rows_deleted == {"eu.bronze.events_raw": 1}
    assert lake_hits(root, ["ada@example.com"]) == {}
    request = erasure_requests_table(lake).read(spark).where(F.col("request_id") == rid).first()
    assert request is not None
    assert (request["status"], request["attempts"], request["error"]) == ("done", 2, None)
