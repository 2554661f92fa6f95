"""Reading and writing the identity tables: one incremental run per region, then the global view.

``run_region`` reads only the ``silver.events`` rows ingested after the region's high-water mark
(kept in ``silver.identity_state``), MERGEs their edges into ``silver.identity_edges``, folds them
into ``silver.identity_graph`` and records bridged leads in ``silver.lead_merges``. Writes are
ordered merges → graph → state and each is idempotent, so a run that dies half-way is repaired by
the next one (it re-reads the same events).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.audit import AuditRun
from nurture_lake.identity._frames import checkpoint_fresh
from nurture_lake.identity.config import IdentityConfig, identity_config
from nurture_lake.identity.edges import event_edges, events_after
from nurture_lake.identity.global_view import build_global_leads
from nurture_lake.identity.graph import update_graph
from nurture_lake.identity.schemas import (
    GLOBAL_LEADS,
    IDENTITY_EDGES,
    IDENTITY_GRAPH,
    IDENTITY_STATE,
    LEAD_MERGES,
)
from nurture_lake.tables import GLOBAL_REGION, Lake, TableRef


@dataclass(frozen=True)
class IdentityTables:
    """The identity tables of one region."""

    events: TableRef
    edges: TableRef
    graph: TableRef
    merges: TableRef
    state: TableRef


def identity_tables(lake: Lake, region: str) -> IdentityTables:
    """Where ``region``'s identity tables live (all under the region's own root)."""
    return IdentityTables(
        events=lake.table(region, "silver", "events"),
        edges=lake.table(region, "silver", "identity_edges"),
        graph=lake.table(region, "silver", "identity_graph"),
        merges=lake.table(region, "silver", "lead_merges"),
        state=lake.table(region, "silver", "identity_state"),
    )


def global_leads_table(lake: Lake) -> TableRef:
    """``global.silver.global_leads``."""
    return lake.table(GLOBAL_REGION, "silver", "global_leads")


@dataclass(frozen=True)
class RegionSummary:
    """What one regional run did."""

    region: str
    events_read: int
    new_edges: int
    edges: int
    id_keys: int
    leads: int
    merges: int
    changed_id_keys: int
    cc_iterations: int


@dataclass(frozen=True)
class GlobalSummary:
    """What the global view run did."""

    regional_leads: int
    global_leads: int
    cross_region_leads: int
    cc_iterations: int


def _ensure(spark: SparkSession, tables: IdentityTables) -> None:
    tables.edges.ensure(spark, IDENTITY_EDGES)
    tables.graph.ensure(spark, IDENTITY_GRAPH)
    tables.merges.ensure(spark, LEAD_MERGES)
    tables.state.ensure(spark, IDENTITY_STATE)


def read_high_water(spark: SparkSession, state: TableRef) -> tuple[datetime | None, int | None]:
    """The ``(ingested_at, batch_id)`` high-water mark of the last run, ``(None, None)`` before the first."""
    if not state.exists(spark):
        return None, None
    row = state.read(spark).agg(F.max(F.struct("hwm_ingested_at", "hwm_batch_id")).alias("m")).first()
    if row is None or row["m"] is None or row["m"]["hwm_ingested_at"] is None:
        return None, None
    return row["m"]["hwm_ingested_at"], row["m"]["hwm_batch_id"]


def _merge_edges(spark: SparkSession, table: TableRef, edges: DataFrame) -> None:
    target = table.delta(spark).alias("t")
    (
        target.merge(edges.alias("s"), "t.src = s.src AND t.dst = s.dst")
        .whenMatchedUpdate(
            condition="s.first_seen_at < t.first_seen_at",
            set={"first_seen_at": "s.first_seen_at", "event_id": "s.event_id", "run_id": "s.run_id"},
        )
        .whenNotMatchedInsertAll()
        .execute()
    )


def _merge_graph(spark: SparkSession, table: TableRef, changes: DataFrame) -> None:
    (
        table.delta(spark).alias("t")
        .merge(changes.alias("s"), "t.id_key = s.id_key")
        .whenMatchedUpdate(set={
            "lead_id": "s.lead_id", "first_seen_at": "s.first_seen_at",
            "updated_at": "s.updated_at", "run_id": "s.run_id",
        })
        .whenNotMatchedInsertAll()
        .execute()
    )


def _record_merges(spark: SparkSession, table: TableRef, merges: DataFrame) -> None:
    # A merged lead id never comes back, so (region, merged_lead_id) is a key: replays insert nothing.
    (
        table.delta(spark).alias("t")
        .merge(merges.alias("s"), "t.region = s.region AND t.merged_lead_id = s.merged_lead_id")
        .whenNotMatchedInsertAll()
        .execute()
    )


def _graph_size(graph: DataFrame) -> tuple[int, int]:
    """(id_keys, leads) of an identity graph, in one pass."""
    row = graph.agg(F.count(F.lit(1)).alias("id_keys"), F.countDistinct("lead_id").alias("leads")).first()
    return (int(row["id_keys"]), int(row["leads"])) if row is not None else (0, 0)


def run_region(
    spark: SparkSession,
    lake: Lake,
    region: str,
    *,
    run: AuditRun | None = None,
    run_id: str | None = None,
    settings: IdentityConfig | None = None,
    now: datetime | None = None,
) -> RegionSummary:
    """Process ``region``'s newly ingested events into its identity tables (incremental, idempotent)."""
    settings = settings or identity_config(lake.cfg)
    run_id = run_id or (run.run_id if run is not None else datetime.now(UTC).strftime("identity-%Y%m%dT%H%M%S%f"))
    now = now or datetime.now(UTC)
    tables = identity_tables(lake, region)
    _ensure(spark, tables)

    events_version = run.read(spark, tables.events) if run is not None else tables.events.version(spark)
    hwm_at, hwm_batch = read_high_water(spark, tables.state)
    if run is not None:
        run.read(spark, tables.state)
        run.read(spark, tables.graph)

    events_read = new_edge_count = changed = merge_count = iterations = 0
    if events_version is not None:
        events = tables.events.read(spark, version=events_version).where(F.col("region") == region)
        fresh_events = events_after(events, ingested_at=hwm_at, batch_id=hwm_batch).localCheckpoint(eager=True)
        stats = fresh_events.agg(
            F.count(F.lit(1)).alias("n"),
            F.max(F.struct("ingested_at", "batch_id")).alias("hwm"),
            F.max("batch_id").alias("max_batch"),
        ).first()
        events_read = int(stats["n"]) if stats is not None else 0
        if events_read:
            new_edges = event_edges(fresh_events).localCheckpoint(eager=True)
            new_edge_count = new_edges.count()
            _merge_edges(spark, tables.edges, new_edges.select(
                "src", "dst", F.lit(region).alias("region"), "first_seen_at", "event_id", "ingested_at",
                F.lit(run_id).alias("run_id"),
            ))
            update = update_graph(
                tables.graph.read(spark),
                new_edges,
                lead_prefix=settings.lead_id_prefix,
                hex_chars=settings.id_hex_chars,
                max_iterations=settings.max_iterations,
                local_max_edges=settings.local_components_max_edges,
            )
            iterations = update.iterations
            merge_count = update.merges.count()
            if merge_count:
                _record_merges(spark, tables.merges, update.merges.select(
                    "merged_lead_id", "surviving_lead_id", F.lit(region).alias("region"),
                    F.lit(now).alias("merged_at"), F.lit(run_id).alias("run_id"),
                    F.lit(stats["max_batch"]).cast("long").alias("batch_id"),
                ))
            changed = update.changes.count()
            _merge_graph(spark, tables.graph, update.changes.select(
                "id_key", F.substring_index("id_key", ":", 1).alias("id_type"), "lead_id",
                F.lit(region).alias("region"), "first_seen_at", F.lit(now).alias("updated_at"),
                F.lit(run_id).alias("run_id"),
            ))
            state_row = (
                region, run_id, now, events_version, stats["hwm"]["ingested_at"], stats["hwm"]["batch_id"],
                events_read, iterations,
            )
            tables.state.append(spark.createDataFrame([state_row], IDENTITY_STATE))

    edges_total = tables.edges.read(spark).count()
    id_keys, leads = _graph_size(tables.graph.read(spark))
    if run is not None:
        run.wrote(spark, tables.edges, rows=new_edge_count)
        run.wrote(spark, tables.graph, rows=changed)
        run.wrote(spark, tables.merges, rows=merge_count)
        run.wrote(spark, tables.state, rows=1 if events_read else 0)
        run.count(f"{region}.identity.events_read", events_read)
        run.count(f"{region}.identity.cc_iterations", iterations)
    return RegionSummary(
        region=region, events_read=events_read, new_edges=new_edge_count, edges=edges_total,
        id_keys=id_keys, leads=leads, merges=merge_count, changed_id_keys=changed, cc_iterations=iterations,
    )


def run_global(
    spark: SparkSession,
    lake: Lake,
    *,
    regions: list[str] | None = None,
    run: AuditRun | None = None,
    settings: IdentityConfig | None = None,
) -> GlobalSummary:
    """Rebuild ``global.silver.global_leads`` from the regions' identity graphs (pseudonyms only)."""
    settings = settings or identity_config(lake.cfg)
    graphs: dict[str, DataFrame] = {}
    for region in regions or lake.regions:
        graph = identity_tables(lake, region).graph
        if graph.exists(spark):
            if run is not None:
                run.read(spark, graph)
            graphs[region] = graph.read(spark)
    target = global_leads_table(lake)
    if not graphs:
        target.ensure(spark, GLOBAL_LEADS)
        return GlobalSummary(regional_leads=0, global_leads=0, cross_region_leads=0, cc_iterations=0)
    result, iterations = build_global_leads(
        graphs, global_prefix=settings.global_id_prefix, hex_chars=settings.id_hex_chars,
        max_iterations=settings.max_iterations,
    )
    result = checkpoint_fresh(result, schema=GLOBAL_LEADS)
    target.overwrite(result)
    written = target.read(spark)
    stats = written.agg(
        F.count(F.lit(1)).alias("regional"), F.countDistinct("global_lead_id").alias("global"),
    ).first()
    cross = written.groupBy("global_lead_id").agg(F.countDistinct("region").alias("n")).where("n > 1").count()
    regional = int(stats["regional"]) if stats is not None else 0
    if run is not None:
        run.wrote(spark, target, rows=regional)
    return GlobalSummary(
        regional_leads=regional,
        global_leads=int(stats["global"]) if stats is not None else 0,
        cross_region_leads=cross,
        cc_iterations=iterations,
    )


__all__ = [
    "GlobalSummary", "IdentityTables", "RegionSummary", "global_leads_table", "identity_tables",
    "read_high_water", "run_global", "run_region",
]
