"""Policy health per day, region and policy version → ``global.gold.policy_health``.

From ``gold.cadence_decisions`` (+ ``gold.decision_outcomes`` for closed windows and
``silver.events`` for the trigger time) of every region:

- action mix (share per ``action_id``), exploration rate (share ``explored``), propensity
  min / median / max;
- effective sample size ``ESS = (Σw)² / Σw²`` of the importance weights — ``target_prob /
  propensity`` when a target policy's probabilities are given, else ``1 / propensity`` — and
  ``ess_fraction = ESS / n``;
- guardrail block rate per rule (share of decisions where the rule removed at least one action;
  every rule evaluated appears, 0.0 when it never blocked);
- decision freshness: minutes from the trigger event's ``occurred_at`` to ``decided_at``
  (event-triggered decisions only), p50 and p95;
- engagement and harm KPIs over closed outcomes (mean reward, harm rate, conversions: an outcome
  whose ``reward_components`` hold ``meeting_booked`` / ``opportunity_created`` / ``deal_won``),
  next to the same KPIs of the day's holdout decisions in the region and the reward lift.

Example::

    decisions, outcomes, events = read_policy_inputs(spark, lake)
    write_policy_health(spark, lake, policy_health(decisions, outcomes, events))
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DoubleType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from nurture_lake.tables import GLOBAL_REGION, Lake, TableRef

__all__ = [
    "CONVERSION_EVENTS",
    "HEALTH_KEYS",
    "POLICY_HEALTH",
    "policy_health",
    "policy_health_table",
    "read_policy_inputs",
    "write_policy_health",
]

CONVERSION_EVENTS: tuple[str, ...] = ("meeting_booked", "opportunity_created", "deal_won")
"""``reward_components`` keys that count an outcome as a conversion."""

HEALTH_KEYS: tuple[str, ...] = ("day", "region", "model_version")
"""Grain and MERGE key of ``global.gold.policy_health``."""

_RATES = MapType(StringType(), DoubleType())

POLICY_HEALTH = StructType([
    StructField("day", DateType(), False),                       # UTC day of decided_at
    StructField("region", StringType(), False),
    StructField("model_version", StringType(), False),           # "baseline" for holdout decisions
    StructField("decisions", LongType(), False),
    StructField("holdout_share", DoubleType(), True),            # share of these decisions flagged holdout
    StructField("action_mix", _RATES, False),                    # action_id -> share of decisions
    StructField("exploration_rate", DoubleType(), True),         # share explored
    StructField("propensity_min", DoubleType(), True),
    StructField("propensity_median", DoubleType(), True),
    StructField("propensity_max", DoubleType(), True),
    StructField("weight_source", StringType(), False),           # "target" | "inverse_propensity"
    StructField("ess", DoubleType(), True),                      # (Σw)² / Σw²
    StructField("ess_fraction", DoubleType(), True),             # ess / weighted rows
    StructField("guardrail_block_rates", _RATES, False),         # rule -> share of decisions it blocked in
    StructField("event_triggered", LongType(), False),           # decisions with a known trigger event time
    StructField("freshness_p50_minutes", DoubleType(), True),
    StructField("freshness_p95_minutes", DoubleType(), True),
    StructField("outcomes", LongType(), False),                  # decisions with a closed reward window
    StructField("reward_mean", DoubleType(), True),
    StructField("harm_rate", DoubleType(), True),
    StructField("conversions", LongType(), False),
    StructField("conversion_rate", DoubleType(), True),
    StructField("holdout_outcomes", LongType(), False),          # same day and region, holdout decisions
    StructField("holdout_reward_mean", DoubleType(), True),
    StructField("holdout_harm_rate", DoubleType(), True),
    StructField("holdout_conversion_rate", DoubleType(), True),
    StructField("reward_lift", DoubleType(), True),              # reward_mean − holdout_reward_mean
    StructField("computed_at", TimestampType(), False),
])
"""``global.gold.policy_health``: one row per (day, region, model_version)."""


def policy_health_table(lake: Lake) -> TableRef:
    """``global.gold.policy_health``."""
    return lake.table(GLOBAL_REGION, "gold", "policy_health")


def _conversion_flag() -> Column:
    keys = F.map_keys(F.col("reward_components"))
    return F.exists(keys, lambda k: k.isin(*CONVERSION_EVENTS))


def _facts(decisions: DataFrame, outcomes: DataFrame, events: DataFrame, target: DataFrame | None) -> DataFrame:
    """One row per decision with its day, trigger lag, outcome KPIs and importance weight."""
    base = decisions.select(
        "decision_id", "region", "model_version", "decided_at", "trigger", "trigger_type", "action_id",
        "propensity", "explored", "holdout", "guardrails", F.to_date("decided_at").alias("day"),
    )
    triggers = events.select(
        "region", F.col("event_id").alias("trigger"), F.col("occurred_at").alias("_trigger_at")
    ).dropDuplicates(["region", "trigger"])
    closed = outcomes.select(
        "decision_id", F.lit(True).alias("_closed"), F.col("reward").alias("_reward"),
        F.col("harm").cast("double").alias("_harm"), _conversion_flag().cast("double").alias("_conv"),
    ).dropDuplicates(["decision_id"])
    facts = base.join(triggers, ["region", "trigger"], "left").join(closed, "decision_id", "left")
    lag_us = F.unix_micros("decided_at") - F.unix_micros("_trigger_at")
    facts = facts.withColumn(
        "_lag_min", F.when(F.col("trigger_type") == "event", lag_us / F.lit(60_000_000.0))
    )
    if target is not None:
        facts = facts.join(target.select("decision_id", "target_prob"), "decision_id", "left")
        return facts.withColumn("_w", F.col("target_prob") / F.col("propensity"))
    return facts.withColumn("_w", F.lit(1.0) / F.col("propensity"))


def _share_map(facts: DataFrame, key: Column, flag: Column, name: str) -> DataFrame:
    """Per health key: ``{key: share of the group's decisions where flag}`` (keys seen, share may be 0)."""
    totals = facts.groupBy(*HEALTH_KEYS).agg(F.countDistinct("decision_id").alias("_n"))
    return (
        facts.groupBy(*HEALTH_KEYS, key.alias("_k"))
        .agg(F.countDistinct(F.when(flag, F.col("decision_id"))).alias("_hits"))
        .join(totals, list(HEALTH_KEYS))
        .groupBy(*HEALTH_KEYS)
        .agg(F.map_from_entries(F.array_sort(F.collect_list(
            F.struct(F.col("_k"), (F.col("_hits") / F.col("_n")).alias("_share"))
        ))).alias(name))
    )


def _kpis(prefix: str) -> list[Column]:
    return [
        F.count("_closed").alias(f"{prefix}outcomes"),
        F.avg("_reward").alias(f"{prefix}reward_mean"),
        F.avg("_harm").alias(f"{prefix}harm_rate"),
        F.avg("_conv").alias(f"{prefix}conversion_rate"),
    ]


def policy_health(
    decisions: DataFrame,
    outcomes: DataFrame,
    events: DataFrame,
    *,
    target: DataFrame | None = None,
    computed_at: datetime | None = None,
) -> DataFrame:
    """Policy health rows (schema :data:`POLICY_HEALTH`) from decisions of any number of regions.

    ``outcomes`` and ``events`` may be empty frames of their schemas; ``target`` optionally holds
    ``(decision_id, target_prob)`` of a policy under evaluation for the ESS.
    """
    facts = _facts(decisions, outcomes, events, target)
    main = facts.groupBy(*HEALTH_KEYS).agg(
        F.count("*").alias("decisions"),
        F.avg(F.col("holdout").cast("double")).alias("holdout_share"),
        F.avg(F.col("explored").cast("double")).alias("exploration_rate"),
        F.min("propensity").alias("propensity_min"),
        F.median("propensity").alias("propensity_median"),
        F.max("propensity").alias("propensity_max"),
        (F.sum("_w") * F.sum("_w") / F.sum(F.col("_w") * F.col("_w"))).alias("ess"),
        F.count("_w").alias("_weighted"),
        F.count("_lag_min").alias("event_triggered"),
        F.percentile("_lag_min", F.lit(0.5)).alias("freshness_p50_minutes"),
        F.percentile("_lag_min", F.lit(0.95)).alias("freshness_p95_minutes"),
        *_kpis(""),
        F.coalesce(F.sum("_conv"), F.lit(0.0)).cast("long").alias("conversions"),
    )
    mix = _share_map(facts, F.col("action_id"), F.lit(True), "action_mix")
    rules = facts.select(*HEALTH_KEYS, "decision_id", F.explode("guardrails").alias("_g"))
    blocks = _share_map(rules, F.col("_g.rule"), ~F.col("_g.passed"), "guardrail_block_rates")
    holdout = facts.where(F.col("holdout")).groupBy("day", "region").agg(*_kpis("holdout_"))
    empty_rates = F.create_map().cast(_RATES)
    at = F.lit(computed_at) if computed_at is not None else F.current_timestamp()
    out = (
        main.join(mix, list(HEALTH_KEYS), "left")
        .join(blocks, list(HEALTH_KEYS), "left")
        .join(holdout, ["day", "region"], "left")
        .withColumn("weight_source", F.lit("target" if target is not None else "inverse_propensity"))
        .withColumn("ess_fraction", F.col("ess") / F.col("_weighted"))
        .withColumn("action_mix", F.coalesce("action_mix", empty_rates))
        .withColumn("guardrail_block_rates", F.coalesce("guardrail_block_rates", empty_rates))
        .withColumn("holdout_outcomes", F.coalesce("holdout_outcomes", F.lit(0)).cast("long"))
        .withColumn("reward_lift", F.col("reward_mean") - F.col("holdout_reward_mean"))
        .withColumn("computed_at", at.cast("timestamp"))
    )
    return out.select(*(F.col(f.name).cast(f.dataType).alias(f.name) for f in POLICY_HEALTH.fields))


def _union(frames: list[DataFrame]) -> DataFrame | None:
    if not frames:
        return None
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame, allowMissingColumns=True)
    return out


def read_policy_inputs(spark: SparkSession, lake: Lake) -> tuple[DataFrame, DataFrame, DataFrame] | None:
    """Decisions, outcomes and (event_id, occurred_at, region) events of every region; ``None`` without decisions."""
    from nurture_lake.schemas import GOLD_DECISION_OUTCOMES, SILVER_EVENTS

    def frames(layer: str, name: str) -> list[DataFrame]:
        refs = [lake.table(r, layer, name) for r in lake.regions]
        return [ref.read(spark) for ref in refs if ref.exists(spark)]

    decisions = _union(frames("gold", "cadence_decisions"))
    if decisions is None:
        return None
    outcomes = _union(frames("gold", "decision_outcomes")) or spark.createDataFrame([], GOLD_DECISION_OUTCOMES)
    events = _union([f.select("event_id", "occurred_at", "region") for f in frames("silver", "events")])
    if events is None:
        events = spark.createDataFrame([], SILVER_EVENTS).select("event_id", "occurred_at", "region")
    return decisions, outcomes, events


def write_policy_health(spark: SparkSession, lake: Lake, health: DataFrame) -> TableRef:
    """MERGE ``health`` into ``global.gold.policy_health`` by (day, region, model_version)."""
    table = policy_health_table(lake)
    table.ensure(spark, POLICY_HEALTH)
    cond = " AND ".join(f"t.{k} = s.{k}" for k in HEALTH_KEYS)
    (
        table.delta(spark).alias("t").merge(health.alias("s"), cond)
        .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
    )
    return table
