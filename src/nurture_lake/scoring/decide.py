"""Due leads → decisions: features, consent, guardrails, policy, exact propensity, lineage.

The pure core of ``score``: every input is a DataFrame (or a policy object) and the output has
exactly the columns of ``gold.cadence_decisions``. The streaming job and the demo both call
:func:`decide`; only how they find due leads and what clock they use differ.

Example::

    decisions = decide(due, features=ctx, flags=flags, touches=touches, policy=champion,
                       baseline=baseline, settings=ScoringSettings.from_config(cfg), ...)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType

from nurture_lake.actions import HOLD, ActionSpace, parse_duration
from nurture_lake.config import ConfigError, NurtureConfig
from nurture_lake.guardrails import GuardrailConfig, apply_guardrails, gate_budgets
from nurture_lake.policy import score_decisions
from nurture_lake.policy.scoring import Policy
from nurture_lake.schemas import GOLD_CADENCE_DECISIONS, GUARDRAIL_RESULT

CONSENT_CHANNELS: tuple[str, ...] = ("email", "push", "chat", "sms")


class ScoringSettings(BaseModel):
    """The ``scoring`` section of the configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    holdout_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    """Share of leads kept on the baseline cadence (stable per lead), so lift is measurable."""
    holdout_salt: str = "nurture-holdout-v1"
    """Salt of the holdout hash; change it only to draw a new holdout."""
    trigger_event_types: tuple[str, ...] = (
        "lead_created", "web_visit", "form_submit", "email_open", "email_click", "email_reply",
        "push_open", "chat_reply", "sms_click", "sms_reply", "consent_granted",
    )
    """Events that make a lead due for a decision (touches and their deliveries do not)."""
    review_after: str = "3d"
    """A lead whose last decision is this old (and whose touch, if any, has been sent) is reviewed."""
    catch_up_window: str = "7d"
    """How far back (by ingestion time) the streaming scorer looks for leads never decided — e.g. leads whose
    first events arrived before identity linked them. Bounds each batch's scan; keep it above identity's lag."""
    baseline_floor: float = Field(0.1, ge=0.0, le=1.0)
    """Exploration floor of the holdout's baseline cadence (``learning.baseline_action``), over allowed actions."""

    @classmethod
    def from_config(cls, cfg: NurtureConfig) -> ScoringSettings:
        try:
            return cls(**cfg.section("scoring"))
        except Exception as exc:  # pydantic ValidationError
            raise ConfigError(f"scoring: {exc}") from None


@dataclass(frozen=True)
class Lineage:
    """What produced a batch of decisions; written on every row."""

    model_name: str
    model_version: str
    mlflow_run_id: str
    policy_config_hash: str
    feature_table_version: int
    feature_as_of: datetime
    job_run_id: str
    batch_id: int
    code_version: str


def decision_id_col() -> Column:
    """Deterministic id of a decision, so a replayed batch writes nothing twice (Spark twin of :func:`decision_id`).

    An event-triggered decision is keyed by its region and trigger event alone: the event belongs to
    one lead, and a replay after identity merged that lead into another (a new ``lead_id``) still
    yields the same id. A review is keyed by its lead and review time.
    """
    event_key = F.concat_ws("|", F.lit("event"), F.col("region"), F.col("trigger"))
    review_key = F.concat_ws("|", F.col("lead_id"), F.col("trigger"))
    key = F.when(F.col("trigger_type") == F.lit("event"), event_key).otherwise(review_key)
    return F.substring(F.sha2(key, 256), 1, 32)


def decision_id(lead_id: str, region: str, trigger: str, trigger_type: str) -> str:
    """:func:`decision_id_col` for Python values (simulations that decide without Spark); tests prove they agree."""
    key = f"event|{region}|{trigger}" if trigger_type == "event" else f"{lead_id}|{trigger}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def holdout_col(settings: ScoringSettings) -> Column:
    """Stable salted holdout flag per lead."""
    bucket = F.pmod(F.xxhash64(F.lit(settings.holdout_salt), F.col("lead_id")), F.lit(1_000_000))
    return bucket < F.lit(int(settings.holdout_fraction * 1_000_000))


def guardrail_candidates(
    due: DataFrame, *, features: DataFrame, flags: DataFrame, touches: DataFrame, recent_window_s: int
) -> DataFrame:
    """One row per due lead with every column the guardrail engine reads.

    ``features``: lead_id, timezone, fatigue_score, context (and any other feature columns);
    ``flags``: ``consent_and_suppression`` output; ``touches``: lead_id, touch_times.
    A per-channel unsubscribe or hard bounce removes that channel's consent; a complaint
    suppresses the lead on every channel. ``recent_touch`` (1.0/0.0) says whether a touch was sent
    or is pending within ``recent_window_s`` before the decision (the baseline cadence holds then).
    """
    consent_entries: list[Column] = []
    for c in CONSENT_CHANNELS:
        allowed = F.coalesce(F.col(f"consent_{c}") & ~F.col(f"suppressed_{c}"), F.lit(False))
        consent_entries += [F.lit(c), allowed]
    joined = (
        due.join(features.drop("region", "as_of"), "lead_id", "left")
        .join(flags.drop("region"), "lead_id", "left")
        .join(touches, "lead_id", "left")
    )
    touch_list = F.coalesce(F.col("touch_times"), F.array().cast("array<struct<channel:string,at:timestamp>>"))
    since = F.col("decided_at") - F.make_dt_interval(F.lit(0), F.lit(0), F.lit(0), F.lit(recent_window_s))
    recent = F.exists(touch_list, lambda t: t["at"] >= since).cast("double")
    return joined.select(
        *[F.col(c) for c in due.columns],
        *[F.col(c) for c in features.columns if c not in due.columns and c not in ("region", "as_of")],
        F.create_map(*consent_entries).alias("consent"),
        F.coalesce(F.col("suppressed"), F.lit(False)).alias("suppressed"),
        F.array_join(F.coalesce(F.col("suppression_reasons"), F.array()), ",").alias("suppression_reason"),
        F.coalesce(F.col("fatigue"), F.lit(0.0)).alias("fatigue_score"),
        touch_list.alias("touch_times"),
        recent.alias("recent_touch"),
        F.create_map().cast("map<string,double>").alias("budget_spent"),
    )


def decide(
    due: DataFrame,
    *,
    features: DataFrame,
    flags: DataFrame,
    touches: DataFrame,
    policy: Policy,
    baseline: Policy,
    guardrails: GuardrailConfig | None,
    action_space: ActionSpace,
    settings: ScoringSettings,
    lineage: Lineage,
    seed: int,
    spent_so_far: dict[str, dict[str, float]] | None = None,
) -> DataFrame:
    """Decisions for ``due`` leads (lead_id, region, decided_at, trigger, trigger_type).

    Guardrails remove actions first; the policy's probabilities are renormalised over what is
    left and one action is drawn deterministically from the decision id, so the logged
    ``propensity`` is exactly the probability the chosen action had. Holdout leads are scored by
    ``baseline`` instead of ``policy``; ``seed`` (the serving policy's) seeds every draw. Budgets are gated before sampling (a stable quota of leads
    per channel), which keeps propensities exact.

    ``guardrails=None`` evaluates no rule at all: every action is allowed, a touch is sent after its
    wait, and the ``guardrails`` column is empty. It is the no-guardrails baseline of the scoring
    benchmark, never a way to serve decisions (the ``score`` job always passes the configured rules).
    """
    recent_s = int(parse_duration(settings.review_after).total_seconds())
    candidates = guardrail_candidates(due, features=features, flags=flags, touches=touches, recent_window_s=recent_s)
    if guardrails is None:
        gated = _unguarded(candidates, action_space=action_space)
    else:
        guarded = apply_guardrails(candidates, config=guardrails, action_space=action_space)
        gated = gate_budgets(guarded, config=guardrails, action_space=action_space, spent_so_far=spent_so_far)
    keyed = gated.withColumn("decision_id", decision_id_col()).withColumn("holdout", holdout_col(settings))

    learned = score_decisions(keyed.where(~F.col("holdout")), policy, seed=seed, recent_col="recent_touch")
    held = score_decisions(keyed.where(F.col("holdout")), baseline, seed=seed, recent_col="recent_touch")
    scored = learned.withColumn("policy_kind", F.lit(getattr(policy, "policy_kind", "logging"))).unionByName(
        held.withColumn("policy_kind", F.lit("holdout_baseline"))
    )
    return _decision_rows(scored, action_space=action_space, lineage=lineage, baseline=baseline)


def _unguarded(candidates: DataFrame, *, action_space: ActionSpace) -> DataFrame:
    """The columns :func:`apply_guardrails` adds, with no rule: every action allowed, no deferral."""
    touches = [a for a in action_space.actions if not a.is_hold]
    start = F.unix_micros(F.col("decided_at"))
    waits = {a.action_id: (a.wait or timedelta(0)) // timedelta(microseconds=1) for a in touches}
    send_at = F.create_map(*[
        x for action, wait in waits.items() for x in (F.lit(action), F.timestamp_micros(start + F.lit(wait)))
    ]).cast("map<string,timestamp>")
    return candidates.select(
        *[F.col(c) for c in candidates.columns if c not in ("allowed_actions", "guardrails", "send_at")],
        F.array(F.lit(HOLD), *[F.lit(a.action_id) for a in touches]).alias("allowed_actions"),
        F.array().cast(ArrayType(GUARDRAIL_RESULT)).alias("guardrails"),
        send_at.alias("send_at"),
    )


def _decision_rows(scored: DataFrame, *, action_space: ActionSpace, lineage: Lineage, baseline: Policy) -> DataFrame:
    action = F.coalesce(F.col("action_id"), F.lit(HOLD))
    channel = F.when(action == F.lit(HOLD), F.lit(None).cast("string")).otherwise(F.split(action, "@").getItem(0))
    delay = F.when(action == F.lit(HOLD), F.lit(None).cast("string")).otherwise(F.split(action, "@").getItem(1))
    send_at = F.when(action == F.lit(HOLD), F.lit(None).cast("timestamp")).otherwise(F.col("send_at")[action])
    is_holdout = F.col("policy_kind") == F.lit("holdout_baseline")
    baseline_kind = getattr(baseline, "policy_kind", "logging")
    row: dict[str, Any] = {
        "decision_id": F.col("decision_id"),
        "lead_id": F.col("lead_id"),
        "region": F.col("region"),
        "decided_at": F.col("decided_at"),
        "trigger": F.col("trigger"),
        "trigger_type": F.col("trigger_type"),
        "action_id": action,
        "channel": channel,
        "delay": delay,
        "send_at": send_at,
        "propensity": F.coalesce(F.col("propensity"), F.lit(1.0)),
        "action_probs": F.coalesce(F.col("action_probs"), F.create_map(F.lit(HOLD), F.lit(1.0))),
        "expected_rewards": F.col("expected_rewards"),
        "explored": F.coalesce(F.col("explored"), F.lit(False)),
        "holdout": F.col("holdout"),
        "guardrails": F.col("guardrails"),
        "policy_kind": F.col("policy_kind"),
        "model_name": F.when(is_holdout, F.lit(f"baseline:{baseline_kind}")).otherwise(F.lit(lineage.model_name)),
        "model_version": F.when(is_holdout, F.lit("baseline")).otherwise(F.lit(lineage.model_version)),
        "mlflow_run_id": F.when(is_holdout, F.lit("none")).otherwise(F.lit(lineage.mlflow_run_id)),
        "policy_config_hash": F.lit(lineage.policy_config_hash),
        "feature_table_version": F.lit(lineage.feature_table_version).cast("bigint"),
        "feature_as_of": F.lit(lineage.feature_as_of).cast("timestamp"),
        "job_run_id": F.lit(lineage.job_run_id),
        "batch_id": F.lit(lineage.batch_id).cast("bigint"),
        "code_version": F.lit(lineage.code_version),
    }
    return scored.select(*[row[f.name].cast(f.dataType).alias(f.name) for f in GOLD_CADENCE_DECISIONS.fields])
