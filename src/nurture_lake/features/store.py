"""``gold.lead_features`` per region: the latest features per lead, maintained incrementally.

A run reads lead events, takes the high-water mark ``events_hwm = max(ingested_at)``, and
recomputes only the leads with an event ingested after the previous run's mark; their rows are
MERGEd by ``lead_id``. Each row holds the features as of its ``as_of`` (by default the run's
mark), the ``feature_version`` of their definition, and ``history`` — the compact events from
which :func:`~nurture_lake.features.compute.features_from_table` recomputes the same features
as of any later time (recency, fatigue and local hour do not go stale: scoring refreshes them
with the training code). The Delta version after the write is what a decision records as
``feature_table_version`` (:func:`latest_features_version`).

A changed ``feature_version`` (new settings or logic) or ``full=True`` rewrites the whole table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StringType, StructField, StructType, TimestampType

from nurture_lake.config import RegionConfig
from nurture_lake.features.columns import feature_columns
from nurture_lake.features.compute import _HISTORY_FIELDS, features_from_table, lead_history
from nurture_lake.features.settings import FeatureSettings
from nurture_lake.tables import Lake, TableRef

TABLE_NAME = "lead_features"

HISTORY_EVENT = StructType([
    StructField("occurred_at", TimestampType(), True),
    StructField("ingested_at", TimestampType(), True),
    StructField("event_type", StringType(), True),
    StructField("tz_prop", StringType(), True),           # lead_created 'timezone' property, else null
    StructField("stage_prop", StringType(), True),        # lead_created 'lifecycle_stage' property (CRM), else null
])
assert tuple(HISTORY_EVENT.fieldNames()) == _HISTORY_FIELDS


def lead_features_schema(settings: FeatureSettings | None = None) -> StructType:
    """Schema of ``gold.lead_features`` for ``settings`` (the feature columns depend on them)."""
    return StructType([
        StructField("lead_id", StringType(), False),
        StructField("region", StringType(), True),
        StructField("as_of", TimestampType(), True),          # features below are as of this instant
        StructField("events_hwm", TimestampType(), True),     # max ingested_at the run had read
        StructField("feature_version", StringType(), True),   # definition id: logic version + settings hash
        StructField("timezone", StringType(), True),
        StructField("local_hour", IntegerType(), True),
        StructField("lifecycle_stage", StringType(), True),
        StructField("last_touch_at", TimestampType(), True),
        StructField("last_engagement_at", TimestampType(), True),
        *(StructField(c, DoubleType(), True) for c in feature_columns(settings)),
        StructField("history", ArrayType(HISTORY_EVENT), True),
    ])


def lead_features_table(lake: Lake, region: str) -> TableRef:
    """``<region>.gold.lead_features``."""
    return lake.table(region, "gold", TABLE_NAME)


def build_feature_rows(
    lead_events: DataFrame,
    *,
    region: str,
    as_of: datetime,
    events_hwm: datetime,
    regions: Mapping[str, RegionConfig],
    settings: FeatureSettings | None = None,
) -> DataFrame:
    """``gold.lead_features`` rows for every lead in ``lead_events``, as of ``as_of`` (pure transform)."""
    s = settings or FeatureSettings()
    history = lead_history(lead_events, as_of=as_of, settings=s)
    return rows_from_history(history, region=region, as_of=as_of, events_hwm=events_hwm, regions=regions, settings=s)


def rows_from_history(
    history: DataFrame,
    *,
    region: str,
    as_of: datetime,
    events_hwm: datetime,
    regions: Mapping[str, RegionConfig],
    settings: FeatureSettings | None = None,
) -> DataFrame:
    """``gold.lead_features`` rows from :func:`lead_history` output (pure transform)."""
    s = settings or FeatureSettings()
    history = history.withColumn("region", F.coalesce(F.col("region"), F.lit(region)))
    requests = history.select("lead_id", F.lit(as_of).cast("timestamp").alias("as_of"), "region")
    feats = features_from_table(history, requests, regions=regions, settings=s)
    schema = lead_features_schema(s)
    rows = feats.join(history.select("lead_id", "history"), "lead_id").withColumn(
        "events_hwm", F.lit(events_hwm).cast("timestamp"),
    )
    return rows.select(*(F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields))


@dataclass(frozen=True)
class FeatureUpdate:
    """What one :func:`update_lead_features` call did."""

    region: str
    mode: str                      # "incremental" | "full" | "noop"
    previous_hwm: datetime | None
    events_hwm: datetime | None
    as_of: datetime | None
    leads_updated: int
    table_version: int | None
    feature_version: str


def _table_state(spark: SparkSession, table: TableRef) -> tuple[datetime | None, set[str]]:
    if not table.exists(spark):
        return None, set()
    row = table.read(spark).agg(
        F.max("events_hwm").alias("hwm"), F.collect_set("feature_version").alias("versions"),
    ).first()
    return (row["hwm"], set(row["versions"] or ())) if row is not None else (None, set())


def update_lead_features(
    spark: SparkSession,
    lake: Lake,
    region: str,
    lead_events: DataFrame,
    *,
    settings: FeatureSettings | None = None,
    as_of: datetime | None = None,
    full: bool = False,
) -> FeatureUpdate:
    """Refresh ``<region>.gold.lead_features`` from ``lead_events`` (silver events + ``lead_id``).

    Only leads with an event ingested after the table's previous ``events_hwm`` are recomputed and
    MERGEd (``full`` or a new ``feature_version`` rewrites everything). ``as_of`` defaults to the new
    high-water mark; events ingested after an explicit ``as_of`` wait for a later run.
    """
    s = settings or FeatureSettings()
    table = lead_features_table(lake, region)
    events = lead_events.where(F.col("region") == region)
    if as_of is not None:
        events = events.where(F.col("ingested_at") <= F.lit(as_of))
    hwm_row = events.agg(F.max("ingested_at").alias("hwm")).first()
    hwm: datetime | None = hwm_row["hwm"] if hwm_row is not None else None
    previous_hwm, versions = _table_state(spark, table)
    full = full or previous_hwm is None or versions != {s.feature_version}
    if hwm is None or (not full and previous_hwm is not None and hwm <= previous_hwm):
        return FeatureUpdate(region, "noop", previous_hwm, previous_hwm, None, 0, table.version(spark), s.feature_version)
    point = as_of or hwm

    if full:
        subset = events
    else:
        changed = events.where(F.col("ingested_at") > F.lit(previous_hwm)).select("lead_id").distinct()
        subset = events.join(changed, "lead_id", "left_semi")
    # Materialise once: the features and the stored history both read it.
    history = lead_history(subset, as_of=point, settings=s).localCheckpoint()
    rows = rows_from_history(
        history, region=region, as_of=point, events_hwm=hwm, regions=lake.cfg.regions, settings=s,
    ).localCheckpoint()
    updated = rows.count()
    if full:
        table.overwrite(rows)
    else:
        (
            table.delta(spark).alias("t")
            .merge(rows.alias("s"), "t.lead_id = s.lead_id")
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )
    return FeatureUpdate(
        region, "full" if full else "incremental", previous_hwm, hwm, point, updated,
        table.version(spark), s.feature_version,
    )


def read_lead_features(spark: SparkSession, lake: Lake, region: str, *, version: int | None = None) -> DataFrame:
    """``<region>.gold.lead_features``, optionally as of a Delta version (what a decision recorded)."""
    return lead_features_table(lake, region).read(spark, version=version)


def latest_features_version(spark: SparkSession, lake: Lake, region: str) -> int | None:
    """The current Delta version of ``<region>.gold.lead_features`` (``None`` before the first run)."""
    return lead_features_table(lake, region).version(spark)
