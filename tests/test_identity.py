"""Identity graph: edges, connected components, stable lead ids, merges, regions (real Spark + Delta)."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from nurture_lake.config import NurtureConfig, parse_config
from nurture_lake.identity import (
    attach_lead_id,
    connected_components,
    identity_tables,
    resolve_merges,
    run_region,
)
from nurture_lake.privacy import pseudonym
from nurture_lake.schemas import SILVER_EVENTS
from nurture_lake.tables import Lake

KEY = b"test-identity-key"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def pk(id_type: str, value: str) -> str:
    """The pseudonym ingest would have stored for a raw identifier."""
    return pseudonym(KEY, id_type, value)


def expected_lead(id_key: str) -> str:
    """Hand-written twin of the documented lead id rule: "L" + sha256(anchor id_key)[:20]."""
    return "L" + hashlib.sha256(id_key.encode()).hexdigest()[:20]


def ev(
    event_id: str,
    ids: dict[str, str],
    *,
    at: int = 0,
    ingested: int = 0,
    batch: int = 0,
    region: str = "us",
) -> tuple:
    """A silver.events row: ``ids`` are raw identifiers (type → value), stored as pseudonyms."""
    return (
        event_id, "web_visit", T0 + timedelta(hours=at), region,
        {t: pk(t, v) for t, v in ids.items()}, "web", None, {}, "1", None,
        T0 + timedelta(days=30, minutes=ingested), batch,
    )


def write_events(spark: SparkSession, lake: Lake, region: str, rows: Iterable[tuple]) -> None:
    table = lake.table(region, "silver", "events")
    table.ensure(spark, SILVER_EVENTS)
    table.append(spark.createDataFrame(list(rows), SILVER_EVENTS))


def graph_of(spark: SparkSession, lake: Lake, region: str = "us") -> DataFrame:
    return identity_tables(lake, region).graph.read(spark).select("id_key", "lead_id")


def rows_df(spark: SparkSession, rows: list[tuple], schema: str) -> DataFrame:
    return spark.createDataFrame(rows, schema)


class _UnionFind:
    """Independent reference: textbook union-find with path halving."""

    def __init__(self) -> None:
        self.parent: dict[object, object] = {}

    def find(self, x: object) -> object:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: object, b: object) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb

    def groups(self) -> dict[object, set[object]]:
        out: dict[object, set[object]] = {}
        for x in list(self.parent):
            out.setdefault(self.find(x), set()).add(x)
        return out


# --------------------------------------------------------------------------- connected components


def test_chain_of_1000_links_converges_to_one_component(spark: SparkSession) -> None:
    labels = list(range(1000))
    random.Random(7).shuffle(labels)  # a chain whose ids are not in order along the path
    edges = spark.createDataFrame([(labels[i], labels[i + 1]) for i in range(999)], "src long, dst long")

    result = connected_components(edges, max_iterations=40)

    print(f"chain of 1000 links: {result.iterations} CC iterations")
    assert result.iterations <= 20  # O(log n), not the 1000 of plain label propagation
    expected = spark.createDataFrame([(v, 0) for v in range(1000)], "vertex long, component long")
    assertDataFrameEqual(result.components, expected)


@pytest.mark.parametrize(("seed", "local_max_edges"), [(1, 0), (2, 0), (1, 10_000), (2, 10_000), (1, 100)])
def test_components_equal_union_find_on_random_graphs(spark: SparkSession, seed: int, local_max_edges: int) -> None:
    """Spark's hook-and-jump, the driver's union-find (small graphs) and the fallback (100 < 340 edges) agree."""
    rng = random.Random(seed)
    n = 400
    edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(300)]
    edges += [(v, v) for v in rng.sample(range(n), 40)]  # isolated vertices declared by self-loops
    uf = _UnionFind()
    for a, b in edges:
        uf.union(a, b)
    expected_rows = [(v, min(group)) for group in uf.groups().values() for v in group]
    as_text = seed == 2  # string vertex ids order lexicographically; the reference uses the same order
    if as_text:
        edges = [(f"v{a:04d}", f"v{b:04d}") for a, b in edges]
        expected_rows = [(f"v{v:04d}", f"v{c:04d}") for v, c in expected_rows]
    kind = "string" if as_text else "long"

    result = connected_components(spark.createDataFrame(edges, f"src {kind}, dst {kind}"),
                                  local_max_edges=local_max_edges)
    assert (result.iterations == 0) == (0 < len(edges) <= local_max_edges)  # which path ran

    assertDataFrameEqual(result.components, spark.createDataFrame(expected_rows, f"vertex {kind}, component {kind}"))


# --------------------------------------------------------------------------- regional graph


def test_transitive_links_make_one_lead_and_star_edges(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    a, b, c, d = pk("email", "ada@example.com"), pk("phone", "+14155550100"), pk("crm_id", "C-1"), pk(
        "email", "bob@example.com"
    )
    write_events(spark, lake, "us", [
        ev("e1", {"email": "ada@example.com", "phone": "+14155550100"}, at=1),
        ev("e2", {"phone": "+14155550100", "crm_id": "C-1"}, at=2),
        ev("e3", {"email": "bob@example.com"}, at=3),
    ])

    summary = run_region(spark, lake, "us", run_id="r1")

    lead_abc = expected_lead(min(a, b, c))
    assertDataFrameEqual(
        graph_of(spark, lake),
        rows_df(spark, [(a, lead_abc), (b, lead_abc), (c, lead_abc), (d, expected_lead(d))], "id_key string, lead_id string"),
    )
    t = lambda h: T0 + timedelta(hours=h)  # noqa: E731
    star = lambda e, keys, h: [(min(keys), k, t(h), e) for k in keys]  # noqa: E731
    assertDataFrameEqual(
        identity_tables(lake, "us").edges.read(spark).select("src", "dst", "first_seen_at", "event_id"),
        rows_df(
            spark,
            star("e1", [a, b], 1) + star("e2", [b, c], 2) + star("e3", [d], 3),
            "src string, dst string, first_seen_at timestamp, event_id string",
        ),
    )
    assert (summary.leads, summary.id_keys, summary.merges, summary.events_read) == (2, 4, 0, 3)


def test_lead_ids_stable_across_runs_and_unrelated_events(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    write_events(spark, lake, "us", [
        ev("e1", {"email": "ada@example.com", "cookie_id": "ck-1"}, at=1, ingested=1, batch=1),
        ev("e2", {"device_id": "dev-9"}, at=2, ingested=1, batch=1),
    ])
    run_region(spark, lake, "us", run_id="r1")
    a, k, dv = pk("email", "ada@example.com"), pk("cookie_id", "ck-1"), pk("device_id", "dev-9")
    first = [(a, expected_lead(min(a, k))), (k, expected_lead(min(a, k))), (dv, expected_lead(dv))]

    again = run_region(spark, lake, "us", run_id="r2")  # nothing new
    write_events(spark, lake, "us", [
        ev("e3", {"email": "zed@example.com", "phone": "+14155550199"}, at=3, ingested=2, batch=2),
        ev("e4", {"cookie_id": "ck-1"}, at=4, ingested=2, batch=2),  # known key, no new link
    ])
    third = run_region(spark, lake, "us", run_id="r3")

    z, ph = pk("email", "zed@example.com"), pk("phone", "+14155550199")
    lead_z = expected_lead(min(z, ph))
    assertDataFrameEqual(
        graph_of(spark, lake),
        rows_df(spark, [*first, (z, lead_z), (ph, lead_z)], "id_key string, lead_id string"),
    )
    assert (again.events_read, again.changed_id_keys) == (0, 0)
    assert (third.events_read, third.changed_id_keys, third.merges) == (2, 2, 0)  # only the new rows changed
    untouched = identity_tables(lake, "us").graph.read(spark).where(F.col("id_key").isin(a, k, dv))
    assert {r["run_id"] for r in untouched.collect()} == {"r1"}


def _keys_where_first_lead_is_smaller(prefix: str) -> tuple[str, str]:
    """Two raw e-mails whose new-lead ids order as (smaller, larger)."""
    for i in range(100):
        x, y = f"{prefix}{i}a@example.com", f"{prefix}{i}b@example.com"
        if expected_lead(pk("email", x)) < expected_lead(pk("email", y)):
            return x, y
    raise AssertionError("unreachable")


def test_bridging_two_leads_keeps_oldest_and_records_merge(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    young_raw, old_raw = _keys_where_first_lead_is_smaller("m")  # the younger lead has the smaller id
    young, old = pk("email", young_raw), pk("email", old_raw)
    extra = pk("device_id", "d-77")
    write_events(spark, lake, "us", [
        ev("e1", {"email": old_raw}, at=1, ingested=1, batch=1),
        ev("e2", {"email": young_raw, "device_id": "d-77"}, at=5, ingested=1, batch=1),
    ])
    run_region(spark, lake, "us", run_id="r1")
    old_lead, young_lead = expected_lead(old), expected_lead(min(young, extra))

    write_events(spark, lake, "us", [
        ev("e3", {"email": young_raw, "crm_id": "X-1"}, at=6, ingested=2, batch=2),
        ev("e4", {"crm_id": "X-1", "cookie_id": "ck-5"}, at=7, ingested=2, batch=2),
        ev("e5", {"cookie_id": "ck-5", "email": old_raw}, at=8, ingested=2, batch=2),
    ])
    summary = run_region(spark, lake, "us", run_id="r2")

    bridged = [young, old, extra, pk("crm_id", "X-1"), pk("cookie_id", "ck-5")]
    assertDataFrameEqual(
        graph_of(spark, lake),
        rows_df(spark, [(k, old_lead) for k in bridged], "id_key string, lead_id string"),
    )
    assertDataFrameEqual(
        identity_tables(lake, "us").merges.read(spark).select("merged_lead_id", "surviving_lead_id", "region", "run_id", "batch_id"),
        rows_df(spark, [(young_lead, old_lead, "us", "r2", 2)], "merged_lead_id string, surviving_lead_id string, region string, run_id string, batch_id long"),
    )
    assert summary.merges == 1

    # A replayed run (same events re-read after a crash before the state write) records nothing twice.
    identity_tables(lake, "us").state.delta(spark).delete("run_id = 'r2'")
    replay = run_region(spark, lake, "us", run_id="r2-replay")
    assert (replay.events_read, replay.merges, replay.changed_id_keys) == (3, 0, 0)
    assert identity_tables(lake, "us").merges.read(spark).count() == 1


def test_tie_on_first_seen_keeps_smallest_lead_id(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    small_raw, large_raw = _keys_where_first_lead_is_smaller("t")
    write_events(spark, lake, "us", [
        ev("e1", {"email": large_raw}, at=1, ingested=1, batch=1),
        ev("e2", {"email": small_raw}, at=1, ingested=1, batch=1),
    ])
    run_region(spark, lake, "us", run_id="r1")
    write_events(spark, lake, "us", [ev("e3", {"email": large_raw, "phone": "+14155550123"}, at=2, ingested=2, batch=2)])
    run_region(spark, lake, "us", run_id="r2")  # grows one lead, merges nothing
    write_events(spark, lake, "us", [ev("e4", {"phone": "+14155550123", "email": small_raw}, at=3, ingested=3, batch=3)])
    run_region(spark, lake, "us", run_id="r3")

    small, large = expected_lead(pk("email", small_raw)), expected_lead(pk("email", large_raw))
    assertDataFrameEqual(
        identity_tables(lake, "us").merges.read(spark).select("merged_lead_id", "surviving_lead_id", "run_id"),
        rows_df(spark, [(large, small, "r3")], "merged_lead_id string, surviving_lead_id string, run_id string"),
    )
    assert {r["lead_id"] for r in graph_of(spark, lake).collect()} == {small}


def test_late_event_still_links_and_moves_first_seen(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    write_events(spark, lake, "us", [
        ev("e1", {"email": "late1@example.com", "cookie_id": "c-1"}, at=10, ingested=1, batch=1),
        ev("e2", {"email": "late2@example.com"}, at=11, ingested=1, batch=1),
    ])
    run_region(spark, lake, "us", run_id="r1")
    # Occurred long before the first run's events, ingested after it.
    write_events(spark, lake, "us", [
        ev("old", {"cookie_id": "c-1", "email": "late2@example.com"}, at=-100, ingested=2, batch=2),
        ev("old2", {"email": "late1@example.com", "cookie_id": "c-1"}, at=-50, ingested=2, batch=2),
    ])
    run_region(spark, lake, "us", run_id="r2")

    e1, c1, e2 = pk("email", "late1@example.com"), pk("cookie_id", "c-1"), pk("email", "late2@example.com")
    survivor = expected_lead(min(e1, c1))  # first seen at hour 10, before the other lead's hour 11
    t = lambda h: T0 + timedelta(hours=h)  # noqa: E731
    assertDataFrameEqual(
        identity_tables(lake, "us").graph.read(spark).select("id_key", "lead_id", "first_seen_at"),
        rows_df(spark, [(e1, survivor, t(-50)), (c1, survivor, t(-100)), (e2, survivor, t(-100))],
                "id_key string, lead_id string, first_seen_at timestamp"),
    )
    edge = identity_tables(lake, "us").edges.read(spark).where(
        (F.col("src") == min(e1, c1)) & (F.col("dst") == max(e1, c1))
    ).select("first_seen_at", "event_id")
    assertDataFrameEqual(edge, rows_df(spark, [(t(-50), "old2")], "first_seen_at timestamp, event_id string"))


@pytest.mark.parametrize("local_max_edges", [0, 50_000])
def test_incremental_runs_match_union_find_partition(
    spark: SparkSession, cfg: NurtureConfig, local_max_edges: int
) -> None:
    """Three incremental runs give union-find's partition, with components solved by Spark or on the driver."""
    raw = cfg.model_dump(mode="json")
    extra = raw.pop("extra")
    extra["identity"] = {**extra.get("identity", {}), "local_components_max_edges": local_max_edges}
    lake = Lake(parse_config({**raw, **extra}))
    rng = random.Random(11)
    types = ["email", "phone", "crm_id", "device_id", "cookie_id"]
    uf = _UnionFind()
    for batch in (1, 2, 3):
        rows = []
        for i in range(60):
            ids = {t: f"{t}-{rng.randrange(90)}" for t in rng.sample(types, rng.randint(1, 3))}
            keys = [pk(t, v) for t, v in ids.items()]
            for k in keys:
                uf.union(keys[0], k)
            rows.append(ev(f"b{batch}-{i}", ids, at=rng.randrange(500), ingested=batch, batch=batch))
        write_events(spark, lake, "us", rows)
        run_region(spark, lake, "us", run_id=f"r{batch}")

    actual: dict[str, set[str]] = {}
    for row in graph_of(spark, lake).collect():
        actual.setdefault(row["lead_id"], set()).add(row["id_key"])
    expected = {frozenset(g) for g in uf.groups().values()}
    assert {frozenset(g) for g in actual.values()} == expected
    # Every lead id is derived from a pseudonym of its own component.
    for lead, members in actual.items():
        assert any(expected_lead(k) == lead for k in members)


def test_attach_lead_id_maps_every_event(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    rows = [
        ev("e1", {"email": "ada@example.com", "phone": "+14155550100"}, at=1),
        ev("e2", {"phone": "+14155550100"}, at=2),
        ev("e3", {"crm_id": "C-9"}, at=3),
    ]
    write_events(spark, lake, "us", rows)
    run_region(spark, lake, "us", run_id="r1")
    unseen = ev("e4", {"email": "new@example.com"}, at=4)
    events = spark.createDataFrame([*rows, unseen], SILVER_EVENTS)

    out = attach_lead_id(events, identity_tables(lake, "us").graph.read(spark))

    ada = expected_lead(min(pk("email", "ada@example.com"), pk("phone", "+14155550100")))
    assert out.columns == [*SILVER_EVENTS.fieldNames(), "lead_id"]
    assertDataFrameEqual(
        out.select("event_id", "lead_id"),
        rows_df(spark, [("e1", ada), ("e2", ada), ("e3", expected_lead(pk("crm_id", "C-9"))), ("e4", None)],
                "event_id string, lead_id string"),
    )


def test_resolve_merges_follows_chains_per_region(spark: SparkSession) -> None:
    merges = rows_df(
        spark,
        [("A", "B", "us"), ("B", "C", "us"), ("C", "D", "us"), ("X", "Y", "eu")],
        "merged_lead_id string, surviving_lead_id string, region string",
    )
    df = rows_df(
        spark,
        [(1, "us", "A"), (2, "us", "B"), (3, "us", "D"), (4, "us", "Z"), (5, "eu", "X"), (6, "us", "X")],
        "n int, region string, lead_id string",
    )

    out = resolve_merges(df, merges)

    assert out.columns == df.columns
    assertDataFrameEqual(
        out,
        rows_df(spark, [(1, "us", "D"), (2, "us", "D"), (3, "us", "D"), (4, "us", "Z"), (5, "eu", "Y"), (6, "us", "X")],
                "n int, region string, lead_id string"),
    )


# --------------------------------------------------------------------------- regions and the job


def _delta_tables(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("_delta_log"))


def _table_text(spark: SparkSession, path: Path) -> str:
    rows = spark.read.format("delta").load(str(path)).select(F.to_json(F.struct("*")).alias("j")).collect()
    return "\n".join(row.j for row in rows)


def _file_bytes(root: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_job_links_regions_by_pseudonym_only_and_keeps_residency(
    spark: SparkSession, cfg: NurtureConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    from nurture_lake.identity import global_leads_table
    from nurture_lake.jobs.identity import main

    lake = Lake(cfg)
    raw_us = {"shared@example.com", "+14155550100", "usonly@example.com"}
    raw_eu = {"shared@example.com", "+4915112345678", "euonly@example.com"}
    write_events(spark, lake, "us", [
        ev("u1", {"email": "shared@example.com", "phone": "+14155550100"}, at=1),
        ev("u2", {"email": "usonly@example.com"}, at=2),
    ])
    write_events(spark, lake, "eu", [
        ev("x1", {"email": "shared@example.com", "phone": "+4915112345678"}, at=1, region="eu"),
        ev("x2", {"email": "euonly@example.com"}, at=2, region="eu"),
    ])

    main([
        "--set", f"storage.lake_root={cfg.storage.lake_root}",
        "--set", f"storage.checkpoint_root={cfg.storage.checkpoint_root}",
        "--set", f"storage.report_root={cfg.storage.report_root}",
    ])

    printed = capsys.readouterr().out
    assert "identity us:" in printed and "identity eu:" in printed and "cross-region leads 1" in printed
    shared = pk("email", "shared@example.com")
    us_lead = expected_lead(min(shared, pk("phone", "+14155550100")))
    eu_lead = expected_lead(min(shared, pk("phone", "+4915112345678")))
    us_only, eu_only = expected_lead(pk("email", "usonly@example.com")), expected_lead(pk("email", "euonly@example.com"))
    g = lambda region, lead: "G" + hashlib.sha256(f"{region}|{lead}".encode()).hexdigest()[:20]  # noqa: E731
    linked = g("eu", eu_lead) if f"eu|{eu_lead}" < f"us|{us_lead}" else g("us", us_lead)
    assertDataFrameEqual(
        global_leads_table(lake).read(spark),
        rows_df(
            spark,
            [("us", us_lead, linked), ("eu", eu_lead, linked), ("us", us_only, g("us", us_only)),
             ("eu", eu_only, g("eu", eu_only))],
            "region string, lead_id string, global_lead_id string",
        ),
    )

    # Residency: nothing under a region's root names an id_key seen only in the other region.
    us_keys_only = {pk("email", "usonly@example.com"), pk("phone", "+14155550100")}
    eu_keys_only = {pk("email", "euonly@example.com"), pk("phone", "+4915112345678")}
    for region, foreign, own in (("us", eu_keys_only, us_keys_only), ("eu", us_keys_only, eu_keys_only)):
        root = lake.region_root(region)
        text = "\n".join(_table_text(spark, p) for p in _delta_tables(root))
        assert all(k in text for k in own)  # the check can see keys that are there
        assert not any(k in text for k in foreign)
        raw_bytes = _file_bytes(root)
        assert not any(k.encode() in raw_bytes for k in foreign)
    global_text = "\n".join(_table_text(spark, p) for p in _delta_tables(lake.region_root("global")))
    assert "email:" not in global_text and "phone:" not in global_text  # lead ids only
    # No raw identifier anywhere in the lake (tables and files).
    everything = "\n".join(_table_text(spark, p) for p in _delta_tables(Path(cfg.storage.lake_root)))
    all_bytes = _file_bytes(Path(cfg.storage.lake_root))
    for raw in raw_us | raw_eu:
        assert raw not in everything and raw.encode() not in all_bytes

    audit = spark.read.format("delta").load(str(lake.region_root("global") / "ops" / "audit_runs"))
    assertDataFrameEqual(
        audit.select("job", "region", "status", F.col("inputs")["us.silver.events"].alias("us_events_version")),
        rows_df(
            spark,
            [("identity", "us", "succeeded", 1), ("identity", "eu", "succeeded", None),
             ("identity_global", "global", "succeeded", None)],
            "job string, region string, status string, us_events_version long",
        ),
    )
    us_row = audit.where("region = 'us'").first()
    assert us_row["row_counts"]["us.identity.events_read"] == 2
    assert set(us_row["outputs"]) == {
        "us.silver.identity_edges", "us.silver.identity_graph", "us.silver.lead_merges", "us.silver.identity_state",
    }
    json.dumps(us_row.asDict(), default=str)  # audit row is plain data
