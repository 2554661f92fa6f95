"""Consent ledger (append-only) and current consent state per identifier, channel and purpose.

Out-of-order arrival is handled by ordering, not by arrival: for each (id_key, channel, purpose)
the row with the latest ``occurred_at`` wins; at the same instant a revoke beats a grant (the safe
side), then the larger ``event_id``. Because this order is total, applying batches in any order
gives the same current state as a full rebuild from the ledger.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from nurture_lake.schemas import CONSENT_EVENT_TYPES, SILVER_CONSENT_CURRENT
from nurture_lake.tables import TableRef

DEFAULT_PURPOSE = "marketing"
ALL_CHANNELS = "all"
_KEY = ("id_key", "channel", "purpose")


def consent_ledger_rows(events: DataFrame) -> DataFrame:
    """Silver events → ledger rows: one per consent event and identifier pseudonym.

    ``channel`` null means every channel (``"all"``); ``properties.purpose`` defaults to marketing.
    """
    consent = events.where(F.col("event_type").isin(*CONSENT_EVENT_TYPES))
    exploded = consent.select("*", F.explode(F.map_values("identifiers")).alias("id_key"))
    return exploded.select(
        "event_id",
        "id_key",
        F.coalesce(F.col("channel"), F.lit(ALL_CHANNELS)).alias("channel"),
        F.coalesce(F.col("properties").getItem("purpose"), F.lit(DEFAULT_PURPOSE)).alias("purpose"),
        (F.col("event_type") == F.lit("consent_granted")).alias("granted"),
        "occurred_at",
        "region",
        "ingested_at",
    )


def _precedence(prefix: str = "") -> list[Column]:
    """Sort keys, most important first; the greatest tuple wins."""
    return [F.col(f"{prefix}occurred_at"), ~F.col(f"{prefix}granted"), F.col(f"{prefix}event_id")]


def current_consent(ledger: DataFrame) -> DataFrame:
    """The winning ledger row per (id_key, channel, purpose) — the full, order-independent rebuild."""
    order = Window.partitionBy(*_KEY).orderBy(*[c.desc() for c in _precedence()])
    ranked = ledger.withColumn("_rank", F.row_number().over(order)).where(F.col("_rank") == 1)
    return ranked.select(*[f.name for f in SILVER_CONSENT_CURRENT.fields])


def _newer(source: str, target: str) -> Column:
    """SQL condition: the source row takes precedence over the target row."""
    s_key, t_key = _precedence(f"{source}."), _precedence(f"{target}.")
    return F.struct(*s_key) > F.struct(*t_key)


def upsert_consent_current(spark: SparkSession, table: TableRef, ledger_rows: DataFrame) -> None:
    """Merge a batch's ledger rows into the current state; a row replaces the state only if it wins."""
    table.ensure(spark, SILVER_CONSENT_CURRENT)
    winners = current_consent(ledger_rows)
    (
        table.delta(spark).alias("t")
        .merge(winners.alias("s"), " AND ".join(f"t.{k} = s.{k}" for k in _KEY))
        .whenMatchedUpdateAll(condition=_newer("s", "t"))
        .whenNotMatchedInsertAll()
        .execute()
    )
