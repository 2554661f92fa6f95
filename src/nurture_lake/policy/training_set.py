"""The training set: closed-window decisions, their outcomes, and the context as of ``decided_at``.

``decisions ⋈ outcomes`` gives each closed decision its action, exact propensity and reward; the
context comes from a caller-supplied function (the feature module's ``compute_features`` followed
by ``context_vector``), evaluated point-in-time for every decision's ``decided_at`` so training
sees only what the scorer knew.

The reward learned from is the outcome's reward (``reward_source="attributed"``), or only what the
decision's **own** responses earned (``"explicit"``, :func:`explicit_rewards`): events that name the
decision (``decision_id``), not organic activity that last-touch attribution credits to whichever
touch's window it fell into; ``"engagement"`` (the default of ``LearningSettings.reward_source``) also
replaces the positive part by its channel's mean per engaged decision, a far less noisy target. Last-touch
credit is fine for reporting but biases learning: organic e-mail clicks would happen anyway, and a
model trained on them learns that any touch (even a worthless one) beats holding.

A decision's window closes ``wait + reward window`` after it is made, so near the end of the data only
the short-wait actions' decisions are closed: *which* recent decisions are in the set depends on the
action taken. Off-policy estimates need a sample whose actions the logged propensities describe, so every
row carries ``complete``: true when every decision made before it, whatever its action, has closed. Only
complete rows train and validate (:func:`nurture_lake.policy.trainer.split_training_set`).

Example::

    def contexts(events, requests):
        return context_vector(compute_features(events, requests))

    train = build_training_set(decisions, outcomes, lead_events=events, context_fn=contexts)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from typing import Literal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.actions import RewardSpec
from nurture_lake.config import NurtureConfig
from nurture_lake.tables import Lake

RewardSource = Literal["attributed", "explicit", "engagement"]
"""Which reward the training set carries: the outcome's (every attributed event), the decision's own
responses, or its own responses with the positive part replaced by its channel's mean per engagement."""

ContextFn = Callable[[DataFrame, DataFrame], DataFrame]
"""``(lead_events, requests) → DataFrame`` with the context column and ``decision_id``
(or ``lead_id`` + ``as_of``) to join back. ``requests`` has ``decision_id, lead_id, region, as_of``."""

TRAINING_COLUMNS: tuple[str, ...] = (
    "decision_id", "lead_id", "region", "decided_at", "context", "action", "propensity", "reward",
    "harm", "allowed_actions", "logged_probs", "holdout", "logged_model_version",
)
"""Columns of the training set (``context`` is renamed to the configured context column)."""


def decision_requests(decisions: DataFrame) -> DataFrame:
    """The point-in-time feature requests of decisions: ``decision_id, lead_id, region, as_of, known_at``.

    ``as_of`` is the decision time (event time); ``known_at`` is the ingestion horizon the scorer
    used (``feature_as_of``), so training sees exactly the events the decision could have seen.
    """
    known = F.col("feature_as_of") if "feature_as_of" in decisions.columns else F.col("decided_at")
    return decisions.select("decision_id", "lead_id", "region", F.col("decided_at").alias("as_of"), known.alias("known_at"))


def explicit_rewards(
    outcomes: DataFrame, lead_events: DataFrame, *, reward: RewardSpec, engagement_means: bool = False,
) -> DataFrame:
    """``outcomes`` with ``reward`` and ``harm`` recomputed from the events that name their decision.

    Of each outcome's ``attributed_event_ids`` only events whose ``decision_id`` is the outcome's own
    count: reward = Σ weights of those (``reward.default`` when there is none) − the channel cost, harm =
    one of them is a harm event. Outcomes need ``decision_id, channel, attributed_event_ids``; events
    ``event_id, event_type, decision_id``. Pure transform.

    ``engagement_means`` Rao–Blackwellises the positive part: a decision whose own responses earned a
    positive weight gets the mean positive reward of the engaged decisions *of its channel* instead of
    its own (an open that led to a reply and one that did not count the same), negative terms (harm)
    stay as observed. Most of a touch's reward variance sits after the first engagement (a reply is
    worth 5 opens, a meeting 10 clicks); the model then learns *who engages when*, the part the context
    can predict, from a far less noisy target. Unbiased when what follows an engagement does not depend
    on the context; the per-channel means are aggregated over ``outcomes``.
    """
    weights = F.create_map(*[x for k, v in reward.weights.items() for x in (F.lit(k), F.lit(float(v)))])
    costs = F.create_map(*[x for k, v in reward.channel_cost.items() for x in (F.lit(k), F.lit(float(v)))])
    harm_types = F.array(*[F.lit(h) for h in reward.harm_events])
    weight = F.coalesce(weights[F.col("event_type")], F.lit(0.0))
    named = (
        outcomes.select("decision_id", F.explode("attributed_event_ids").alias("event_id"))
        .join(lead_events.select("event_id", "event_type", F.col("decision_id").alias("_named")), "event_id")
        .where(F.col("_named") == F.col("decision_id"))
        .groupBy("decision_id")
        .agg(F.sum(F.greatest(weight, F.lit(0.0))).alias("_pos"),
             F.sum(F.least(weight, F.lit(0.0))).alias("_neg"),
             F.max(F.array_contains(harm_types, F.col("event_type"))).alias("_own_harm"),
             F.max(F.col("event_type").isin(*reward.weights)).alias("_weighted"))
    )
    cost = F.when(F.col("channel").isNull(), F.lit(0.0)).otherwise(F.coalesce(costs[F.col("channel")], F.lit(0.0)))
    out = outcomes.join(named, "decision_id", "left")
    positive = F.col("_pos")
    if engagement_means:
        engaged = F.col("_pos") > 0
        means = out.where(engaged).groupBy("channel").agg(F.avg("_pos").alias("_pos_mean"))
        out = out.join(F.broadcast(means), "channel", "left")
        positive = F.when(engaged, F.col("_pos_mean")).otherwise(F.lit(0.0))
    earned = F.when(F.coalesce(F.col("_weighted"), F.lit(False)), positive + F.col("_neg")).otherwise(
        F.lit(float(reward.default)))
    return (
        out.withColumn("reward", earned - cost)
        .withColumn("harm", F.coalesce(F.col("_own_harm"), F.lit(False)))
        .drop("_pos", "_neg", "_own_harm", "_weighted", "_pos_mean")
    )


def build_training_set(
    decisions: DataFrame,
    outcomes: DataFrame,
    *,
    lead_events: DataFrame,
    context_fn: ContextFn,
    context_col: str = "context",
    as_of: datetime | None = None,
    reward_source: RewardSource = "attributed",
    reward: RewardSpec | None = None,
) -> DataFrame:
    """Closed-window decisions with reward, exact propensity, allowed actions and point-in-time context.

    Only decisions with an outcome row (its reward window closed) are used; with ``as_of`` also only
    windows that ended by then. ``complete`` marks the rows made before the earliest decision still
    without a closed outcome (all rows when there is none): their presence does not depend on their
    action. ``allowed_actions`` are the keys of the logged ``action_probs`` (the actions the guardrails
    left), sorted. ``reward_source="explicit"`` replaces the outcome's reward and
    harm by :func:`explicit_rewards` (needs ``reward``, the configured :class:`RewardSpec`);
    ``"engagement"`` also Rao–Blackwellises its positive part (per-channel means over the closed windows).
    """
    if as_of is not None:
        outcomes = outcomes.where(F.col("window_end") <= F.lit(as_of))
    if reward_source in ("explicit", "engagement"):
        if reward is None:
            raise ValueError(f"reward_source={reward_source!r} needs the reward spec")
        outcomes = explicit_rewards(outcomes, lead_events, reward=reward, engagement_means=reward_source == "engagement")
    elif reward_source != "attributed":
        raise ValueError(f"reward_source must be 'attributed', 'explicit' or 'engagement', got {reward_source!r}")
    closed = outcomes.select("decision_id", "reward", "harm", "window_end")
    open_since = (
        decisions.join(closed.select("decision_id"), "decision_id", "left_anti")
        .agg(F.min("decided_at").alias("__open_since"))
    )
    logged = (
        decisions.select(
            "decision_id", "lead_id", "region", "decided_at",
            F.col("action_id").alias("action"), "propensity",
            F.col("action_probs").alias("logged_probs"),
            F.array_sort(F.map_keys("action_probs")).alias("allowed_actions"),
            "holdout", F.col("model_version").alias("logged_model_version"),
        )
        .dropDuplicates(["decision_id"])
        .join(closed.dropDuplicates(["decision_id"]), "decision_id", "inner")
    )
    contexts = context_fn(lead_events, decision_requests(logged))
    if "decision_id" in contexts.columns:
        keyed = contexts.select("decision_id", F.col(context_col).alias("__ctx"))
        joined = logged.join(keyed, "decision_id", "inner")
    else:
        # Renamed keys: the contexts derive from ``logged``, so ``keyed.lead_id`` would be the very same
        # column as ``logged.lead_id`` (Spark warns of a trivially true predicate and has to guess the sides).
        keyed = contexts.select(
            F.col("lead_id").alias("__lead_id"), F.col("as_of").alias("__as_of"), F.col(context_col).alias("__ctx")
        ).dropDuplicates(["__lead_id", "__as_of"])
        on = (F.col("lead_id") == F.col("__lead_id")) & (F.col("decided_at") == F.col("__as_of"))
        joined = logged.join(keyed, on, "inner").drop("__lead_id", "__as_of")
    complete = F.col("__open_since").isNull() | (F.col("decided_at") < F.col("__open_since"))
    return joined.crossJoin(F.broadcast(open_since)).select(
        "decision_id", "lead_id", "region", "decided_at",
        F.col("__ctx").cast("array<double>").alias(context_col),
        "action", F.col("propensity").cast("double").alias("propensity"),
        F.col("reward").cast("double").alias("reward"), F.col("harm").cast("boolean").alias("harm"),
        "allowed_actions", "logged_probs", "holdout", "logged_model_version", complete.alias("complete"),
    )


def time_cutoffs(df: DataFrame, *, fractions: list[float], time_col: str = "decided_at") -> list[datetime] | None:
    """The times before which each of ``fractions`` of the rows fall (exact percentiles, one Spark job);
    ``None`` when there are no rows."""
    row = df.select(
        F.percentile(F.unix_micros(F.col(time_col)).cast("double"), [float(f) for f in fractions]).alias("q"),
    ).first()
    if row is None or row["q"] is None:
        return None
    # Naive UTC datetimes: the session time zone is UTC, so Spark reads them back unchanged.
    return [datetime(1970, 1, 1) + timedelta(microseconds=int(q)) for q in row["q"]]


@dataclass(frozen=True)
class TrainingInputs:
    """The tables a training run reads, union over regions, with the Delta version of each."""

    decisions: DataFrame
    outcomes: DataFrame
    versions: dict[str, int]


def _pinned_pairs(
    spark: SparkSession, lake: Lake, regions: list[str] | None, first: str, second: str
) -> tuple[list[tuple[DataFrame, DataFrame]], dict[str, int]]:
    """``(first, second)`` for every region that has both tables (``"layer.name"``), each read at the
    version it has now, and those versions keyed by ``region.layer.name``."""
    pairs: list[tuple[DataFrame, DataFrame]] = []
    versions: dict[str, int] = {}
    for region in regions or lake.regions:
        refs = [lake.table(region, *name.split(".")) for name in (first, second)]
        pinned = [ref.version(spark) for ref in refs]
        if None in pinned:
            continue
        versions.update({ref.label: v for ref, v in zip(refs, pinned, strict=True)})
        a, b = (ref.read(spark, version=v) for ref, v in zip(refs, pinned, strict=True))
        pairs.append((a, b))
    return pairs, versions


def read_training_inputs(spark: SparkSession, lake: Lake, *, regions: list[str] | None = None) -> TrainingInputs | None:
    """``gold.cadence_decisions`` and ``gold.decision_outcomes`` of every region that has both.

    Returns ``None`` when no region has any. Versions are keyed by ``region.layer.name``.
    """
    pairs, versions = _pinned_pairs(spark, lake, regions, "gold.cadence_decisions", "gold.decision_outcomes")
    if not pairs:
        return None
    decisions, outcomes = (reduce(DataFrame.unionByName, frames) for frames in zip(*pairs))
    return TrainingInputs(decisions, outcomes, versions)


def feature_context_fn(cfg: NurtureConfig, *, context_col: str = "context") -> ContextFn:
    """The production context function: ``compute_features`` then ``context_vector`` (feature module)."""
    from nurture_lake.features import FeatureSettings, compute_features, context_vector

    settings = FeatureSettings.from_config(cfg)

    def _contexts(lead_events: DataFrame, requests: DataFrame) -> DataFrame:
        feats = compute_features(lead_events, requests, regions=cfg.regions, settings=settings)
        return context_vector(feats, settings=settings, regions=list(cfg.regions), output_col=context_col)

    return _contexts


def read_lead_events(spark: SparkSession, lake: Lake, *, regions: list[str] | None = None) -> tuple[DataFrame | None, dict[str, int]]:
    """``silver.events`` with ``lead_id`` (identity graph) for every region that has both, and their versions."""
    from nurture_lake.identity import attach_lead_id

    pairs, versions = _pinned_pairs(spark, lake, regions, "silver.events", "silver.identity_graph")
    parts = [attach_lead_id(events, graph) for events, graph in pairs]
    out = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts) if parts else None
    return out, versions


def load_training_set(
    spark: SparkSession,
    cfg: NurtureConfig,
    *,
    regions: list[str] | None = None,
    as_of: datetime | None = None,
) -> tuple[DataFrame, dict[str, int]] | None:
    """The training set over ``regions`` and the Delta version of every input it read.

    ``None`` when there are no decisions with outcomes, or no lead events, yet. The ``train`` and
    ``promote`` jobs and the closed loop all build their training set here.
    """
    from nurture_lake.policy.settings import LearningSettings

    lake = Lake(cfg)
    settings = LearningSettings.from_config(cfg)
    inputs = read_training_inputs(spark, lake, regions=regions)
    if inputs is None:
        return None
    events, event_versions = read_lead_events(spark, lake, regions=regions)
    if events is None:
        return None
    training = build_training_set(
        inputs.decisions, inputs.outcomes, lead_events=events,
        context_fn=feature_context_fn(cfg, context_col=settings.context_col),
        context_col=settings.context_col, as_of=as_of,
        reward_source=settings.reward_source, reward=RewardSpec.from_config(cfg),
    )
    return training, {**inputs.versions, **event_versions}
