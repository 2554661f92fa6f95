"""Benchmark: policy quality on the simulator after a 60-day simulated run (issue #4).

Question: how close does the learned cadence policy get to the simulator's oracle? Every policy is
scored on the **same lead-days** by the simulator's **exact** expected rewards (computed from the hidden
truths, no sampling noise), and the report gives value per 1,000 lead-days for

* ``random`` — uniform over the actions the guardrails allowed (the mean of their values),
* every fixed cadence (always action ``a`` when allowed, else hold) and the best of them by value,
* ``learned`` — the bandit after the run, by its serving probabilities (exploration included) and greedy,
* ``oracle`` — the allowed action with the highest exact expected reward (hidden truths),

their unsubscribe rates, and the normalised score ``(learned − random) / (oracle − random)``.

Protocol (one seed for the world, the policies' draws and the evaluation):

1. **Learning phase**, ``days`` daily ticks at 00:00 UTC as in the closed-loop demo. Each tick: the leads
   due by the product's rule (a trigger event in the last day, or a review ``review_after`` after their
   last decision; none with a touch still pending) get point-in-time features from the product's
   ``compute_features`` + ``context_vector`` (Spark, over the events known then), the guardrails of the
   product's Python twin ``evaluate_lead`` (consent, suppression, fatigue, caps, gaps, quiet hours — it is
   tested equal to the Spark engine), and an action drawn by ``nurture_lake.policy.scoring.decide`` (the
   function the scoring UDF runs) from the serving policy: the configured logging policy until a learned
   policy is promoted, the baseline cadence for the salted holdout leads. The world answers every touch
   from its hidden truths (``World.respond``).
2. **Learning**, every ``train_every`` days and once more at the end: the product's ``attribute`` closes
   the reward windows (explicit and last-touch attribution, as in ``gold.decision_outcomes``),
   ``build_training_set`` builds the training set, ``train_policy`` fits the bandit with Spark exactly as
   ``nurture-lake train --phase fit`` does, and the promotion gate ``evaluate_gate`` decides whether it
   serves next.
3. **Evaluation**, ``eval_days`` more ticks served by the policy fitted at the end: for every due lead-day
   the exact expected reward (and unsubscribe / complaint probability) of every allowed action at its
   guardrail send time, from the world state at decision time. The policies above are scored on these
   numbers; the oracle is myopic (one decision), like every policy scored here. Also reported: 95%
   intervals resampling leads (the evaluation set is finite), the weekly value of what was served during
   the learning phase, and ``linear_ceiling`` — a policy linear in the same context fitted on the
   *exact* values of every learning-phase lead-day and action (no noise, no missing actions): what any
   learner linear in this context could reach, which separates estimation error from missing information.

The learner runs with the configured ``learning`` settings (``conf/local.yaml`` plus the defaults of
``LearningSettings``, e.g. ``reward_source`` and ``ridge_auto``). 2,000 leads (the demo's population) keep a
60-day run near 8–13 minutes on this 2-core machine: one Spark feature computation per simulated day
(~4–6 s) and nine train + gate rounds (~15–40 s each) dominate; the rest is numpy.

Faithful equivalents used for speed (the Delta closed loop takes ~75 s per simulated day):

* events are handed to the feature code as an in-memory Spark frame instead of ``silver.events``:
  identity is taken as resolved (``lead_id`` = the world's lead; the simulator's anonymous web
  clusters, which the lake cannot link, are dropped), bad records are not generated (ingest
  quarantines them), organic files are "ingested" at the end of their day as the demo lands them;
* consent and suppression flags are computed in Python with the rules of ``consent_and_suppression``;
* the training set reuses each decision's context computed at decision time (``compute_features``
  is point-in-time, so recomputing it at training time gives the same vector);
* no MLflow: policies are kept in memory (the gate gets them as ``LoadedPolicy`` objects); daily
  channel budgets are not gated (they do not bind at this scale).

With ``--phase all`` every training runs hyperopt first (as ``nurture-lake train`` does by default), and the
report adds a ``tuning_study``: every trial of the final training, refitted on its decisions with the
trial's parameters and served on the evaluation lead-days like the learned policy, next to the trial's
objective, with their rank correlation: whether the search's objective picks what serves best.
``--set KEY=VALUE`` overrides one configuration value (e.g. ``--set learning.tuning_folds=1``).

Run: ``python -m bench.bench_policy_quality --leads 2000 --days 60 --seed 7``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)
from scipy.stats import spearmanr

from nurture_lake.actions import HOLD, ActionSpace, RewardSpec, parse_duration
from nurture_lake.config import PROJECT_ROOT, NurtureConfig, load_config, parse_override
from nurture_lake.features import FeatureSettings, compute_features, context_vector
from nurture_lake.guardrails import GuardrailConfig, LeadContext, Touch, evaluate_lead
from nurture_lake.outcomes import attribute
from nurture_lake.policy import (
    LearningSettings,
    LoggingPolicy,
    NotEnoughData,
    evaluate_gate,
    fit_linear_bandit,
    statistics_from_arrays,
    train_policy,
)
from nurture_lake.policy.exploration import greedy_indices
from nurture_lake.policy.registry import LoadedPolicy
from nurture_lake.policy.scoring import Policy, allowed_mask
from nurture_lake.policy.scoring import decide as policy_decide
from nurture_lake.policy.trainer import TrainResult, exploration_cap, split_training_set
from nurture_lake.policy.training_set import build_training_set
from nurture_lake.policy.tuning import best_trial, fit_with_params, trial_params
from nurture_lake.scoring import ScoringSettings, holdout_col
from nurture_lake.scoring.decide import decision_id
from nurture_lake.simulator import SimulatorConfig, World
from nurture_lake.simulator.organic import generate_region
from nurture_lake.simulator.population import RegionPopulation, horizon
from nurture_lake.simulator.response_model import attributed_probs, expected_value
from nurture_lake.simulator.timefmt import OffsetTable
from nurture_lake.spark import get_spark

DEFAULT_LEADS = 2000
"""Leads at scale 1: what a 60-day run can afford in ~15 minutes on 2 cores (see ``main``'s help)."""
DEFAULT_DAYS = 60
DEFAULT_EVAL_DAYS = 7
DEFAULT_SEED = 7
TARGET_SCORE = 0.8
_DAY = 86_400
_UNSUBSCRIBE = ("email_unsubscribe", "sms_unsubscribe")
_SUPPRESSION = {"email_unsubscribe": ("email",), "sms_unsubscribe": ("sms",), "email_bounce": ("email",)}
_CONSENT_CHANNELS = ("email", "push", "chat", "sms")

EVENT_SCHEMA = StructType([
    StructField("event_id", StringType(), False),
    StructField("lead_id", StringType(), False),
    StructField("region", StringType(), False),
    StructField("event_type", StringType(), False),
    StructField("channel", StringType(), True),
    StructField("occurred_at", TimestampType(), False),
    StructField("ingested_at", TimestampType(), False),
    StructField("decision_id", StringType(), True),
    StructField("tz_prop", StringType(), True),
    StructField("stage_prop", StringType(), True),
])
"""The slice of ``silver.events`` (+ ``lead_id``) that features and attribution read; ``tz_prop`` and
``stage_prop`` become ``properties.timezone`` and ``properties.lifecycle_stage`` of ``lead_created`` events."""

DECISION_SCHEMA = StructType([
    StructField("decision_id", StringType(), False),
    StructField("lead_id", StringType(), False),
    StructField("region", StringType(), False),
    StructField("decided_at", TimestampType(), False),
    StructField("action_id", StringType(), False),
    StructField("channel", StringType(), True),
    StructField("send_at", TimestampType(), True),
    StructField("propensity", DoubleType(), False),
    StructField("action_probs", MapType(StringType(), DoubleType()), False),
    StructField("holdout", BooleanType(), False),
    StructField("model_version", StringType(), False),
    StructField("feature_as_of", TimestampType(), False),
])
"""The ``gold.cadence_decisions`` columns attribution and the training set read."""


# ---------------------------------------------------------------------------------------------- the world


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _identifier_index(pop: RegionPopulation) -> dict[tuple[str, str], int]:
    """(identifier type, lower-cased raw value) → lead index, for the identifiers organic events carry."""
    index: dict[tuple[str, str], int] = {}
    for i in range(pop.size):
        index[("crm_id", pop.crm_id[i].lower())] = i
        index[("email", pop.email[i].lower())] = i
        index[("device_id", pop.device_id[i].lower())] = i
        for cookie in pop.cookies[i]:
            index[("cookie_id", cookie.lower())] = i
    return index


def organic_events(cfg: NurtureConfig, world: World) -> pd.DataFrame:
    """The world's organic events as lead events (see the module docstring for what is simplified).

    Columns: ``event_id, lead_id, region, event_type, channel, occurred, ingested`` (epoch seconds),
    ``decision_id`` (None), ``tz_prop`` and ``stage_prop`` (the ``timezone`` and ``lifecycle_stage``
    properties of ``lead_created``, as the CRM sends them).
    """
    sim = world.sim
    start, end = horizon(sim)
    rows: list[tuple[Any, ...]] = []
    for region, pop in world.populations.items():
        index = _identifier_index(pop)
        batch = generate_region(cfg, sim, pop, table=OffsetTable(pop.zones, start - 7 * _DAY, end))
        for name, lines in batch.files.items():
            day = datetime.strptime(name.split("-")[1], "%Y%m%d").replace(tzinfo=UTC)
            ingested = int((day + timedelta(days=1)).timestamp())  # the demo lands a day's files at its end
            for line in lines:
                event = json.loads(line)
                ids = event["identifiers"]
                found = None
                for kind in ("crm_id", "email", "device_id", "cookie_id"):
                    value = ids.get(kind)
                    if value is not None and (kind, value.lower()) in index:
                        found = index[(kind, value.lower())]
                        break
                if found is None:
                    continue
                web_only = "email" not in ids and "crm_id" not in ids
                if web_only and bool(pop.anonymous[found]):
                    continue  # the lake never links an anonymous lead's web identifiers to its e-mail
                occurred = datetime.fromisoformat(event["occurred_at"]).timestamp()
                created = event["event_type"] == "lead_created"
                props = event.get("properties") or {}
                rows.append((
                    event["event_id"], pop.sim_lead_id(found), region, event["event_type"], event["channel"],
                    int(occurred), max(ingested, int(occurred)), None,
                    props.get("timezone") if created else None, props.get("lifecycle_stage") if created else None,
                ))
    return pd.DataFrame(rows, columns=["event_id", "lead_id", "region", "event_type", "channel", "occurred",
                                       "ingested", "decision_id", "tz_prop", "stage_prop"])


def response_rows(events: Sequence[Mapping[str, Any]], lead_of: Mapping[str, str]) -> list[tuple[Any, ...]]:
    """World response events as rows of :func:`organic_events`' columns (known as soon as they occur)."""
    out = []
    for event in events:
        occurred = int(datetime.fromisoformat(str(event["occurred_at"])).timestamp())
        decision = str(event["decision_id"])
        out.append((event["event_id"], lead_of[decision], event["region"], event["event_type"], event["channel"],
                    occurred, occurred, decision, None, None))
    return out


def events_frame(spark: SparkSession, events: pd.DataFrame) -> DataFrame:
    """Lead events as the Spark frame the feature and attribution code read (``properties`` map included)."""
    pdf = pd.DataFrame({
        "event_id": events["event_id"], "lead_id": events["lead_id"], "region": events["region"],
        "event_type": events["event_type"], "channel": events["channel"],
        "occurred_at": pd.to_datetime(events["occurred"], unit="s", utc=True),
        "ingested_at": pd.to_datetime(events["ingested"], unit="s", utc=True),
        "decision_id": events["decision_id"], "tz_prop": events["tz_prop"], "stage_prop": events["stage_prop"],
    })
    df = spark.createDataFrame(pdf, EVENT_SCHEMA)
    props = F.when(F.col("tz_prop").isNotNull(), F.map_filter(
        F.create_map(F.lit("timezone"), F.col("tz_prop"), F.lit("lifecycle_stage"), F.col("stage_prop")),
        lambda _k, v: v.isNotNull(),
    ))
    return df.withColumn("properties", props).drop("tz_prop", "stage_prop")


# ---------------------------------------------------------------------------------------------- values


@dataclass
class ActionOutcomes:
    """Exact expectations of every action for a batch of lead-days (``nan`` where an action is blocked)."""

    value: np.ndarray        # (n, k) expected reward
    unsubscribe: np.ndarray  # (n, k) P(an unsubscribe event within the reward window)
    complaint: np.ndarray    # (n, k) P(a complaint within the reward window)


def exact_outcomes(
    world: World,
    leads: Sequence[str],
    send_at: Sequence[Mapping[str, datetime]],
    allowed: np.ndarray,
    *,
    space: ActionSpace,
    spec: RewardSpec,
) -> ActionOutcomes:
    """Exact expected reward and harm probabilities of each allowed action at its guardrail send time.

    The same numbers as ``World.expected_reward(..., send_at=...)`` (reward semantics of outcome
    attribution: Σ weights of the decision's events inside the window, minus the channel cost), and
    ``World.response_probabilities`` for the harm events, from the world's state now.
    """
    n, k = allowed.shape
    value = np.full((n, k), np.nan)
    unsub = np.full((n, k), np.nan)
    complaint = np.full((n, k), np.nan)
    window = spec.window_delta.total_seconds()
    actions = space.actions
    for i, lead in enumerate(leads):
        region, index = world.find_lead(lead) or (None, -1)
        if region is None:
            raise KeyError(lead)
        for j, action in enumerate(actions):
            if not allowed[i, j]:
                continue
            if action.channel is None:
                value[i, j], unsub[i, j], complaint[i, j] = spec.default, 0.0, 0.0
                continue
            stages = world.touch_stages(region, index, action.channel, send_at[i][action.action_id].timestamp())
            probs = attributed_probs(stages, window)
            value[i, j] = expected_value(stages, weights=spec.weights, default=spec.default,
                                         cost=spec.channel_cost.get(action.channel, 0.0), window=window)
            unsub[i, j] = sum(probs.get(t, 0.0) for t in _UNSUBSCRIBE)
            complaint[i, j] = probs.get("email_complaint", 0.0)
    return ActionOutcomes(value, unsub, complaint)


def policy_rows(
    outcomes: ActionOutcomes, *, action_ids: Sequence[str], learned_probs: np.ndarray | None = None,
    learned_greedy: np.ndarray | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per policy and lead-day: exact expected value, unsubscribe and complaint probability.

    ``random`` averages the allowed actions; ``fixed:<a>`` takes ``a`` when allowed, else hold;
    ``oracle`` the allowed action of highest value; ``learned`` the serving probabilities,
    ``learned_greedy`` the chosen indices.
    """
    v, u, c = outcomes.value, outcomes.unsubscribe, outcomes.complaint
    allowed = ~np.isnan(v)
    rows = np.arange(v.shape[0])
    hold = list(action_ids).index(HOLD)

    def by_probs(p: np.ndarray) -> dict[str, np.ndarray]:
        return {"value": np.nansum(p * v, axis=1), "unsubscribe": np.nansum(p * u, axis=1),
                "complaint": np.nansum(p * c, axis=1)}

    def by_index(idx: np.ndarray) -> dict[str, np.ndarray]:
        return {"value": v[rows, idx], "unsubscribe": u[rows, idx], "complaint": c[rows, idx]}

    uniform = allowed / allowed.sum(axis=1, keepdims=True)
    out = {"random": by_probs(uniform), "oracle": by_index(np.argmax(np.where(allowed, v, -np.inf), axis=1))}
    for j, action in enumerate(action_ids):
        out[f"fixed:{action}"] = by_index(np.where(allowed[:, j], j, hold))
    if learned_probs is not None:
        out["learned"] = by_probs(np.where(allowed, learned_probs, 0.0))
    if learned_greedy is not None:
        out["learned_greedy"] = by_index(learned_greedy)
    return out


def policy_values(
    outcomes: ActionOutcomes, *, action_ids: Sequence[str], learned_probs: np.ndarray | None = None,
    learned_greedy: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Per policy: mean exact value, unsubscribe and complaint rate per lead-day (all on the same rows)."""
    rows = policy_rows(outcomes, action_ids=action_ids, learned_probs=learned_probs, learned_greedy=learned_greedy)
    return {name: {k: float(a.mean()) for k, a in per.items()} for name, per in rows.items()}


def bootstrap_intervals(
    values: Mapping[str, np.ndarray],
    leads: Sequence[str],
    *,
    best_fixed: str,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile intervals, resampling **leads** (a lead's lead-days together), of the learned policies'
    normalised scores and of their value minus the best fixed cadence's (per 1,000 lead-days).

    ``values``: policy → per-lead-day exact values (``random``, ``oracle``, ``best_fixed`` and the
    learned ones). The best fixed cadence is the one picked on the full sample.
    """
    _, group = np.unique(np.asarray(leads), return_inverse=True)
    n_groups = int(group.max()) + 1
    counts = np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    weights = counts[:, group].astype(np.float64)
    means = {name: (weights @ v) / weights.sum(axis=1) for name, v in values.items()}
    gap = means["oracle"] - means["random"]
    out: dict[str, list[float]] = {}
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    for name in ("learned", "learned_greedy"):
        if name not in means:
            continue
        score = np.divide(means[name] - means["random"], gap, out=np.full_like(gap, np.nan), where=gap > 1e-12)
        out[f"normalised_score_{name}"] = [float(x) for x in np.nanpercentile(score, q)]
        diff = 1000 * (means[name] - means[best_fixed])
        out[f"{name}_minus_best_fixed_per_1000"] = [float(x) for x in np.percentile(diff, q)]
    return out


def linear_ceiling(learning: Sequence[TickRecord], contexts: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Greedy choices of a diagnostic policy linear in the same context, fitted on **exact** values.

    Per action, a ridge regression of the exact expected reward on the context over every learning-phase
    lead-day where the action was allowed (noise-free and with every action's value, which no logged
    data gives). What it reaches on the evaluation lead-days bounds what a learner linear in this
    context can reach: the gap to it is estimation, the gap above it is missing information or form.
    """
    x = np.concatenate([t.contexts for t in learning])
    v = np.concatenate([t.outcomes.value for t in learning])
    return greedy_indices(ridge_on_values(x, v, contexts), allowed)


def ridge_on_values(x: np.ndarray, values: np.ndarray, x_eval: np.ndarray) -> np.ndarray:
    """Per action (column of ``values``), the product's ridge fit (λ = 1) on the rows where that action has a
    value (not NaN); returns every action's prediction for ``x_eval``, shape ``(len(x_eval), columns)``."""
    action_ids = [str(j) for j in range(values.shape[1])]
    rows, cols = np.nonzero(~np.isnan(values))
    stats = statistics_from_arrays(x[rows], [action_ids[c] for c in cols], values[rows, cols], action_ids=action_ids)
    return fit_linear_bandit(stats, ridge_lambda=1.0).expected_rewards(x_eval)


def normalised(value: float, random: float, oracle: float) -> float:
    """``(value − random) / (oracle − random)``: 0 for random, 1 for the oracle (nan without a gap)."""
    gap = oracle - random
    return (value - random) / gap if gap > 1e-12 else float("nan")


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class Serving:
    """The policy that decides for non-holdout leads, with the lineage the decision rows carry."""

    policy: Policy
    version: str
    seed: int


@dataclass
class TickRecord:
    """One tick's due lead-days: what was decided and every allowed action's exact outcome."""

    day: int
    leads: list[str]
    holdout: np.ndarray
    allowed: np.ndarray
    probs: np.ndarray
    chosen: np.ndarray
    contexts: np.ndarray
    outcomes: ActionOutcomes


@dataclass
class TrainingRecord:
    day: int
    n_train: int
    n_validation: int
    seconds: float
    promoted: bool | None = None
    reason: str = ""
    dr: dict[str, float] = field(default_factory=dict)


def world_config(cfg: NurtureConfig, *, leads: int, days: int, eval_days: int, seed: int) -> SimulatorConfig:
    """The simulated world of a run: learning and evaluation days plus one, no bad records."""
    return SimulatorConfig.from_config(cfg, overrides={
        "seed": seed, "leads": leads, "days": days + eval_days + 1, "bad_record_rate": 0.0,
    })


class PolicyQualityRun:
    """The learning phase and the evaluation rounds on one simulated world (see the module docstring)."""

    def __init__(
        self,
        spark: SparkSession,
        cfg: NurtureConfig,
        *,
        leads: int,
        days: int,
        eval_days: int,
        seed: int,
        train_every: int = 7,
        log: Callable[[str], None] = print,
        dump: Path | None = None,
        phase: str = "fit",
    ) -> None:
        self.spark, self.cfg, self.log, self.dump = spark, cfg, log, dump
        self.phase = phase  # train_policy's phase: "fit" (configured hyper-parameters) or "all" (hyperopt first)
        self.final_training: pd.DataFrame | None = None  # the last fit's training set, kept for ``dump``
        self.final_tuned: TrainResult | None = None  # the last training, when hyperopt ran (``tuning_study``)
        self.days, self.eval_days, self.train_every = days, eval_days, train_every
        self.sim = world_config(cfg, leads=leads, days=days, eval_days=eval_days, seed=seed)
        self.world = World(cfg, self.sim)
        self.space = ActionSpace.from_config(cfg)
        self.action_ids = self.space.action_ids
        self.spec = RewardSpec.from_config(cfg)
        self.learning = LearningSettings.from_config(cfg)
        self.scoring = ScoringSettings.from_config(cfg)
        self.guardrails = GuardrailConfig.from_config(cfg)
        self.features = FeatureSettings.from_config(cfg)
        self.regions = list(cfg.regions)
        self.start = datetime.combine(self.sim.start, datetime.min.time(), tzinfo=UTC)
        self.review_s = int(parse_duration(self.scoring.review_after).total_seconds())

        self.events = organic_events(cfg, self.world)
        self.organic_sdf = events_frame(spark, self.events).cache()
        self.organic_sdf.count()
        self.responses: list[tuple[Any, ...]] = []
        self.responses_pdf = self.events.iloc[0:0]
        self.region_of = dict(zip(self.events["lead_id"], self.events["region"], strict=False))
        self.holdout = self._holdout(sorted(self.region_of))
        self.consent = self._consent_records()
        self.baseline = LoggingPolicy(self.action_ids, kind="baseline", baseline_action=self.learning.baseline_action,
                                      floor=self.scoring.baseline_floor, seed=self.learning.seed)
        self.serving = Serving(LoggingPolicy.from_settings(self.action_ids, self.learning), "logging", self.learning.seed)
        self.champion: LoadedPolicy | None = None

        # decision log (columns of DECISION_SCHEMA) and per-lead state the scorer derives from it
        self.decisions: list[tuple[Any, ...]] = []
        self.contexts: dict[str, list[float]] = {}
        self.exact_of: dict[str, float] = {}  # decision id → exact expected reward of its logged action
        self.lead_of: dict[str, str] = {}
        self.touches: dict[str, list[Touch]] = {}
        self.last_decided: dict[str, int] = {}
        self.pending_until: dict[str, int] = {}
        self.suppression: dict[str, list[tuple[int, str]]] = {}
        self.ticks: list[TickRecord] = []
        self.trainings: list[TrainingRecord] = []
        self.seconds: dict[str, float] = {}

    # ------------------------------------------------------------------ helpers
    def _timed(self, step: str, started: float) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - started

    def _holdout(self, leads: list[str]) -> set[str]:
        """The scorer's stable salted holdout (its own Spark expression)."""
        df = self.spark.createDataFrame(pd.DataFrame({"lead_id": leads}))
        return {r["lead_id"] for r in df.where(holdout_col(self.scoring)).collect()}

    def _consent_records(self) -> dict[str, dict[str, list[tuple[int, int, bool, str]]]]:
        """Per lead and channel: consent records (occurred, ingested, granted, event_id), oldest first."""
        ev = self.events[self.events["event_type"].isin(["consent_granted", "consent_revoked"])]
        out: dict[str, dict[str, list[tuple[int, int, bool, str]]]] = {}
        for row in ev.sort_values(["occurred", "event_id"]).itertuples(index=False):
            out.setdefault(row.lead_id, {}).setdefault(row.channel, []).append(
                (int(row.occurred), int(row.ingested), row.event_type == "consent_granted", row.event_id))
        return out

    def _consent(self, lead: str, now: int) -> dict[str, bool]:
        """``consent_<c> and not suppressed_<c>`` per channel, as ``guardrail_candidates`` builds the map."""
        opt_in = self.cfg.regions[self.region_of[lead]].consent_mode == "opt_in"
        records = self.consent.get(lead, {})
        suppressed = {reason for at, reason in self.suppression.get(lead, []) if at <= now}
        out = {}
        for channel in _CONSENT_CHANNELS:
            known = [r for r in records.get(channel, []) if r[0] <= now and r[1] <= now]
            # latest first; at the same instant the revoke wins
            latest = max(known, key=lambda r: (r[0], not r[2], r[3])) if known else None
            consent = latest[2] if latest is not None else not opt_in
            blocked = "complaint" in suppressed or any(
                channel in _SUPPRESSION.get(reason, ()) for reason in suppressed)
            out[channel] = consent and not blocked
        return out

    def _due(self, now: int) -> dict[str, tuple[str, str]]:
        """Lead → (trigger, trigger type) of the leads due at ``now`` (``scoring.due_leads``'s rule)."""
        frames = [self.events, self.responses_pdf]
        triggers = self.scoring.trigger_event_types
        due: dict[str, str] = {}
        for ev in frames:
            fresh = ev[(ev["occurred"] > now - _DAY) & (ev["occurred"] <= now) & (ev["ingested"] <= now)
                       & ev["event_type"].isin(triggers)]
            for row in fresh.itertuples(index=False):
                key = (row.occurred, row.event_id)
                best = due.get(row.lead_id)
                if best is None or key > best:
                    due[row.lead_id] = key  # type: ignore[assignment]
        out = {lead: (str(key[1]), "event") for lead, key in due.items()}  # type: ignore[index]
        review = (f"review:{_utc(now).isoformat()}", "review")
        for lead, last in self.last_decided.items():
            if lead not in out and last <= now - self.review_s:
                out[lead] = review
        return {lead: t for lead, t in sorted(out.items()) if self.pending_until.get(lead, -1) <= now}

    def _all_events(self) -> DataFrame:
        if not len(self.responses_pdf):
            return self.organic_sdf
        return self.organic_sdf.unionByName(events_frame(self.spark, self.responses_pdf))

    # ------------------------------------------------------------------ one tick
    def tick(self, day: int) -> TickRecord | None:
        now_dt = self.start + timedelta(days=day)
        now = int(now_dt.timestamp())
        t0 = time.perf_counter()
        due = self._due(now)
        self._timed("due", t0)
        if not due:
            return None
        leads = list(due)
        t0 = time.perf_counter()
        requests = self.spark.createDataFrame(pd.DataFrame({
            "lead_id": leads, "region": [self.region_of[lead] for lead in leads],
        })).select("lead_id", "region", F.lit(now_dt).cast("timestamp").alias("as_of"),
                   F.lit(now_dt).cast("timestamp").alias("known_at"))
        feats = context_vector(
            compute_features(self._all_events(), requests, regions=self.cfg.regions, settings=self.features),
            settings=self.features, regions=self.regions, output_col=self.learning.context_col,
        ).select("lead_id", self.learning.context_col, "fatigue", "timezone").toPandas().set_index("lead_id")
        self._timed("features", t0)

        t0 = time.perf_counter()
        n, k = len(leads), len(self.action_ids)
        contexts = np.stack([np.asarray(feats.at[lead, self.learning.context_col], dtype=np.float64) for lead in leads])
        allowed_lists: list[tuple[str, ...]] = []
        send_at: list[dict[str, datetime]] = []
        recent = np.zeros(n)
        for i, lead in enumerate(leads):
            touches = self.touches.get(lead, [])
            consent = self._consent(lead, now)
            sup = sorted({r for at, r in self.suppression.get(lead, []) if at <= now})
            evaluation = evaluate_lead(LeadContext(
                lead_id=lead, region=self.region_of[lead], decided_at=now_dt, timezone=str(feats.at[lead, "timezone"]),
                consent=consent, suppressed="complaint" in sup, suppression_reason=",".join(sup) or None,
                fatigue_score=float(feats.at[lead, "fatigue"]), touch_times=touches, budget_spent={},
            ), config=self.guardrails, action_space=self.space)
            allowed_lists.append(evaluation.allowed_actions)
            send_at.append(evaluation.send_at)
            recent[i] = float(any(t.at >= now_dt - timedelta(seconds=self.review_s) for t in touches))
        mask = allowed_mask(self.action_ids, allowed_lists)
        self._timed("guardrails", t0)

        t0 = time.perf_counter()
        ids = [decision_id(lead, self.region_of[lead], *due[lead]) for lead in leads]
        held = np.array([lead in self.holdout for lead in leads])
        probs = np.zeros((n, k))
        chosen = np.zeros(n, dtype=np.int64)
        for group, policy, seed in ((~held, self.serving.policy, self.serving.seed), (held, self.baseline, self.learning.seed)):
            rows = np.nonzero(group)[0]
            if rows.size == 0:
                continue
            made = policy_decide(policy, contexts[rows], mask[rows], [ids[r] for r in rows], seed=seed,
                                 recent_touch=recent[rows])
            probs[rows], chosen[rows] = made.probs, made.chosen
        self._timed("policy", t0)

        t0 = time.perf_counter()
        outcomes = exact_outcomes(self.world, leads, send_at, mask, space=self.space, spec=self.spec)
        self._timed("exact_values", t0)

        t0 = time.perf_counter()
        requests_out = []
        for i, lead in enumerate(leads):
            action = self.space.actions[int(chosen[i])]
            when = send_at[i].get(action.action_id) if action.channel is not None else None
            version = "baseline" if held[i] else self.serving.version
            self.decisions.append((
                ids[i], lead, self.region_of[lead], now_dt, action.action_id, action.channel, when,
                float(probs[i, chosen[i]]), {self.action_ids[j]: float(probs[i, j]) for j in np.nonzero(mask[i])[0]},
                bool(held[i]), version, now_dt,
            ))
            self.contexts[ids[i]] = contexts[i].tolist()
            self.exact_of[ids[i]] = float(outcomes.value[i, chosen[i]])
            self.lead_of[ids[i]] = lead
            self.last_decided[lead] = now
            if when is not None:
                self.touches.setdefault(lead, []).append(Touch(action.channel, when))
                self.pending_until[lead] = max(self.pending_until.get(lead, -1), int(when.timestamp()))
                requests_out.append({"decision_id": ids[i], "region": self.region_of[lead], "id_keys": lead,
                                     "action_id": action.action_id, "channel": action.channel, "send_at": when})
        answered = response_rows(self.world.respond(requests_out), self.lead_of)
        for row in answered:
            if row[3] in _SUPPRESSION or row[3] == "email_complaint":
                self.suppression.setdefault(row[1], []).append((row[5], "complaint" if row[3] == "email_complaint" else row[3]))
        self.responses.extend(answered)
        self.responses_pdf = pd.DataFrame(self.responses, columns=self.events.columns)
        self._timed("respond", t0)
        record = TickRecord(day, leads, held, mask, probs, chosen, contexts, outcomes)
        self.ticks.append(record)
        return record

    # ------------------------------------------------------------------ learning
    def _training_set(self, now_dt: datetime) -> DataFrame:
        decisions = self.spark.createDataFrame(self.decisions, DECISION_SCHEMA)
        events = self._all_events()
        outcomes = attribute(decisions, events, reward=self.spec, now=now_dt)
        ctx = self.learning.context_col
        contexts = self.spark.createDataFrame(
            [(d, c) for d, c in self.contexts.items()],
            StructType([StructField("decision_id", StringType()), StructField(ctx, ArrayType(DoubleType()))]),
        )
        return build_training_set(
            decisions, outcomes, lead_events=events, context_fn=lambda _events, _requests: contexts,
            context_col=ctx, as_of=now_dt, reward_source=self.learning.reward_source, reward=self.spec,
        ).localCheckpoint()

    def learn(self, day: int) -> TrainingRecord | None:
        """Train on the closed windows, gate the challenger against the champion; returns what happened."""
        now_dt = self.start + timedelta(days=day)
        t0 = time.perf_counter()
        training = self._training_set(now_dt)
        try:
            result = train_policy(self.spark, self.cfg, training, phase=self.phase, register=False,
                                  settings=self.learning)
        except NotEnoughData as exc:
            self.log(f"  day {day}: learning skipped ({exc})")
            return None
        assert result.policy is not None
        if self.dump is not None and day == self.days:  # the final fit's training set, for offline study
            ctx = self.learning.context_col
            self.final_training = training.select("decision_id", "lead_id", "decided_at", ctx, "action", "propensity",
                                                  "reward", "harm", "complete").toPandas()
        if day == self.days and result.tuning is not None:
            self.final_tuned = result
        version = f"d{day}"
        challenger = LoadedPolicy(result.policy, version, version, self.learning.seed, self.learning.context_col)
        _, valid, _ = split_training_set(training, self.learning)
        gate = evaluate_gate(valid, challenger=challenger, champion=self.champion, settings=self.learning,
                             model_name="bench")
        record = TrainingRecord(day, result.n_train, result.n_validation, 0.0, gate.promoted, gate.reason,
                                {"estimate": gate.challenger_dr.estimate, "lower": gate.challenger_dr.lower,
                                 "baseline": gate.baseline_value})
        self.last_fit = challenger
        if gate.promoted:
            self.champion = challenger
            self.serving = Serving(result.policy, version, self.learning.seed)
        record.seconds = time.perf_counter() - t0
        self._timed("learn", t0)
        self.trainings.append(record)
        if result.tuning is not None or result.tuning_skipped:
            self.log(f"  day {day}: {result.tuning_skipped or result.tuning.describe()}")
        self.log(f"  day {day}: fitted on {result.n_train:,} decisions ({result.n_validation:,} validate), "
                 f"{'promoted' if gate.promoted else 'refused'} in {record.seconds:.0f} s — {gate.reason}")
        return record

    # ------------------------------------------------------------------ the whole run
    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.last_fit: LoadedPolicy | None = None
        for day in range(1, self.days):
            if day % self.train_every == 0:
                self.learn(day)
            record = self.tick(day)
            if record is not None and day % 7 == 0:
                self.log(f"day {day}/{self.days}: {len(record.leads):,} decisions, serving {self.serving.version}, "
                         f"{time.perf_counter() - started:.0f} s")
        self.learn(self.days)
        final = self.last_fit
        if final is not None:  # the evaluation rounds are served by the final fit, promoted or not
            self.serving = Serving(final.policy, final.version, final.seed)
        learning_ticks = list(self.ticks)
        evaluation: list[TickRecord] = []
        for day in range(self.days, self.days + self.eval_days):
            record = self.tick(day)
            if record is not None:
                evaluation.append(record)
        self.seconds["total"] = time.perf_counter() - started
        return self.report(learning_ticks, evaluation)

    # ------------------------------------------------------------------ the report
    def report(self, learning: list[TickRecord], evaluation: list[TickRecord]) -> dict[str, Any]:
        """Score every policy on the evaluation lead-days (holdout leads included: the learned policy's
        probabilities are recomputed from the stored contexts for every row)."""
        outcomes = ActionOutcomes(*(np.concatenate([getattr(t.outcomes, f) for t in evaluation])
                                    for f in ("value", "unsubscribe", "complaint")))
        contexts = np.concatenate([t.contexts for t in evaluation])
        mask = np.concatenate([t.allowed for t in evaluation])
        policy = self.serving.policy
        learned_probs = policy.probabilities(contexts, mask)
        means = policy.expected_rewards(contexts)
        greedy = greedy_indices(means if means is not None else learned_probs, mask)
        rows = policy_rows(outcomes, action_ids=self.action_ids, learned_probs=learned_probs, learned_greedy=greedy)
        ceiling = linear_ceiling(learning, contexts, mask)
        rows["linear_ceiling"] = policy_rows(outcomes, action_ids=self.action_ids, learned_greedy=ceiling)["learned_greedy"]
        values = {name: {k: float(a.mean()) for k, a in per.items()} for name, per in rows.items()}
        fixed = [name for name in values if name.startswith("fixed:")]
        best_fixed = max(fixed, key=lambda name: values[name]["value"])
        intervals = bootstrap_intervals(
            {name: rows[name]["value"] for name in ("random", "oracle", best_fixed, "learned", "learned_greedy")},
            [lead for t in evaluation for lead in t.leads], best_fixed=best_fixed, seed=self.sim.seed,
        )
        summary = self._summary(values, outcomes, learning)
        summary["intervals_95"] = intervals
        if self.final_tuned is not None:
            summary["tuning_study"] = self._tuning_study(self.final_tuned, outcomes, contexts, mask,
                                                         values["random"]["value"], values["oracle"]["value"])
        if self.dump is not None:  # the diagnostic arrays (contexts, exact values, masks) for offline study
            np.savez_compressed(
                self.dump, action_ids=np.array(self.action_ids),
                learn_contexts=np.concatenate([t.contexts for t in learning]),
                learn_values=np.concatenate([t.outcomes.value for t in learning]),
                eval_contexts=contexts, eval_values=outcomes.value, eval_unsubscribe=outcomes.unsubscribe,
                eval_allowed=mask, eval_leads=np.array([lead for t in evaluation for lead in t.leads]),
                **self._training_arrays(),
                # The world's parameters, so an offline study can rebuild the population's hidden truths.
                seed=self.sim.seed, leads=self.sim.leads, days=self.days, eval_days=self.eval_days,
            )
        return summary

    def _tuning_study(self, result: TrainResult, outcomes: ActionOutcomes, contexts: np.ndarray, mask: np.ndarray,
                      random_value: float, oracle_value: float) -> dict[str, Any]:
        """Does hyperopt's objective pick the trial that serves best? Every trial of the final training,
        refitted on that training's decisions with the trial's parameters (as the chosen one was) and scored
        on the evaluation lead-days like the learned policy, next to its objective."""
        assert result.tuning is not None and result.stats is not None
        cap = exploration_cap(self.cfg)
        trials = []
        for trial in result.tuning.trials:
            params = trial_params(trial)
            policy = fit_with_params(result.stats, params, settings=self.learning, prior_mean=result.prior_mean,
                                     max_exploration_rate=cap)
            rows = policy_rows(outcomes, action_ids=self.action_ids, learned_probs=policy.probabilities(contexts, mask),
                               learned_greedy=greedy_indices(policy.expected_rewards(contexts), mask))
            trials.append({**params, "objective": trial["objective"], "dr_estimate": trial["dr_estimate"],
                           "served_score": normalised(float(rows["learned"]["value"].mean()), random_value, oracle_value),
                           "greedy_score": normalised(float(rows["learned_greedy"]["value"].mean()),
                                                      random_value, oracle_value)})
        scored = [t for t in trials if t["objective"] == t["objective"]]  # NaN objectives are never chosen
        rho = (spearmanr([t["objective"] for t in scored], [t["served_score"] for t in scored]).statistic
               if len(scored) >= 2 else float("nan"))
        chosen = best_trial(trials)
        return {"trials": trials, "spearman_objective_vs_served": float(rho),
                "chosen_served_score": chosen["served_score"],
                "best_served_score": max(t["served_score"] for t in trials),
                "median_served_score": float(np.median([t["served_score"] for t in trials]))}

    def _training_arrays(self) -> dict[str, np.ndarray]:
        """The final fit's training set (context, logged action, propensity, reward, harm) as arrays, with
        ``train_exact``: the simulator's exact expected reward of each row's logged action (what its observed
        reward estimates, without the outcome's noise)."""
        pdf = self.final_training
        if pdf is None:
            return {}
        return {
            "train_contexts": np.stack([np.asarray(c, dtype=np.float64) for c in pdf[self.learning.context_col]]),
            "train_actions": np.array([self.action_ids.index(a) for a in pdf["action"]]),
            "train_propensity": pdf["propensity"].to_numpy(dtype=np.float64),
            "train_reward": pdf["reward"].to_numpy(dtype=np.float64),
            "train_harm": pdf["harm"].to_numpy(dtype=bool),
            "train_decided_at": pdf["decided_at"].astype("int64").to_numpy(),
            "train_leads": pdf["lead_id"].to_numpy(dtype=str),
            "train_complete": pdf["complete"].to_numpy(dtype=bool),
            "train_exact": np.array([self.exact_of[d] for d in pdf["decision_id"]], dtype=np.float64),
        }

    def _summary(self, values: dict[str, dict[str, float]], outcomes: ActionOutcomes,
                 learning: list[TickRecord]) -> dict[str, Any]:
        rnd, orc = values["random"]["value"], values["oracle"]["value"]
        fixed = {a: v for a, v in values.items() if a.startswith("fixed:")}
        best_fixed = max(fixed, key=lambda a: fixed[a]["value"])
        per_k = {name: {"value_per_1000": 1000 * v["value"], "unsubscribes_per_1000": 1000 * v["unsubscribe"],
                        "complaints_per_1000": 1000 * v["complaint"], "normalised_score": normalised(v["value"], rnd, orc)}
                 for name, v in values.items()}
        learned = values["learned"]
        score = normalised(learned["value"], rnd, orc)
        greedy_score = normalised(values["learned_greedy"]["value"], rnd, orc)
        curve = []
        for week_start in range(1, self.days, 7):
            ticks = [t for t in learning if week_start <= t.day < week_start + 7]
            if not ticks:
                continue
            v = np.concatenate([t.outcomes.value for t in ticks])
            p = np.concatenate([t.probs for t in ticks])
            served = ActionOutcomes(v, v, v)
            r = policy_values(served, action_ids=self.action_ids, learned_probs=p)
            curve.append({"days": f"{week_start}-{min(week_start + 6, self.days - 1)}", "lead_days": int(v.shape[0]),
                          "served_value_per_1000": 1000 * r["learned"]["value"],
                          "served_normalised": normalised(r["learned"]["value"], r["random"]["value"], r["oracle"]["value"])})
        return {
            "leads": self.sim.leads, "days": self.days, "eval_days": self.eval_days, "seed": self.sim.seed,
            "phase": self.phase,
            "evaluation_lead_days": int(outcomes.value.shape[0]),
            "policies": per_k,
            "best_fixed_cadence": best_fixed.removeprefix("fixed:"),
            "normalised_score": score,
            "normalised_score_greedy": greedy_score,
            "normalised_score_linear_ceiling": normalised(values["linear_ceiling"]["value"], rnd, orc),
            "learning_settings": {k: getattr(self.learning, k) for k in (
                "strategy", "ridge_lambda", "ridge_auto", "reward_source", "exploration_floor", "max_exploration",
                "exploration_scale", "logging_policy")},
            "targets": {
                "score_at_least_0.8": bool(score >= TARGET_SCORE),
                "beats_best_fixed": bool(learned["value"] > values[best_fixed]["value"]),
                "unsubscribe_not_higher_than_best_fixed": bool(learned["unsubscribe"] <= values[best_fixed]["unsubscribe"]),
            },
            "trainings": [vars(t) for t in self.trainings],
            "learning_curve": curve,
            "decisions_logged": len(self.decisions),
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
        }






def bench_config(root: Path, overrides: Mapping[str, Any] | None = None) -> NurtureConfig:
    """The local configuration with every store under ``root`` (nothing of the project's lake is touched)
    and ``overrides`` (dotted keys, as ``--set``) applied; the stores stay under ``root`` whatever they say."""
    return load_config("local", overrides={
        **(overrides or {}),
        "storage.lake_root": str(root / "lake"), "storage.checkpoint_root": str(root / "checkpoints"),
        "storage.landing_root": str(root / "landing"), "storage.report_root": str(root / "reports"),
        "mlflow.tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "mlflow.artifact_root": str(root / "mlartifacts"),
    })


def run(
    leads: int = DEFAULT_LEADS,
    days: int = DEFAULT_DAYS,
    *,
    seed: int = DEFAULT_SEED,
    eval_days: int = DEFAULT_EVAL_DAYS,
    train_every: int = 7,
    spark: SparkSession | None = None,
    cfg: NurtureConfig | None = None,
    log: Callable[[str], None] = print,
    dump: Path | None = None,
    phase: str = "fit",
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One learning run and its evaluation (see the module docstring); returns the report dict.

    ``dump``: also write the learning and evaluation arrays (contexts, exact values, masks) there (``.npz``).
    ``overrides``: configuration values replaced in the benchmark's configuration (not with ``cfg``).
    """
    with tempfile.TemporaryDirectory(prefix="nl-policy-bench-") as tmp:
        config = cfg or bench_config(Path(tmp), overrides)
        session = spark or get_spark(config, app_name="nurture_lake.bench_policy_quality")
        result = PolicyQualityRun(session, config, leads=leads, days=days, eval_days=eval_days, seed=seed,
                                  train_every=train_every, log=log, dump=dump, phase=phase).run()
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return result


def format_report(result: dict[str, Any]) -> str:
    """The figures as a small text table (value and harm per 1,000 lead-days)."""
    lines = [f"leads={result['leads']} days={result['days']} seed={result['seed']} "
             f"evaluation lead-days={result['evaluation_lead_days']:,}",
             f"{'policy':<18} {'value/1000':>11} {'unsub/1000':>11} {'complaints/1000':>16} {'normalised':>11}"]
    best = f"fixed:{result['best_fixed_cadence']}"
    for name in ("random", best, "learned", "learned_greedy", "linear_ceiling", "oracle"):
        p = result["policies"][name]
        label = f"best fixed ({result['best_fixed_cadence']})" if name == best else name
        lines.append(f"{label:<18} {p['value_per_1000']:>11.1f} {p['unsubscribes_per_1000']:>11.2f} "
                     f"{p['complaints_per_1000']:>16.2f} {p['normalised_score']:>11.3f}")
    t, ci = result["targets"], result.get("intervals_95", {})

    def interval(key: str, digits: int = 3) -> str:
        lo_hi = ci.get(key)
        return f" [95% CI {lo_hi[0]:.{digits}f}, {lo_hi[1]:.{digits}f}]" if lo_hi else ""

    lines.append(f"normalised score {result['normalised_score']:.3f}{interval('normalised_score_learned')}, "
                 f"greedy {result['normalised_score_greedy']:.3f}{interval('normalised_score_learned_greedy')}, "
                 f"linear ceiling {result['normalised_score_linear_ceiling']:.3f}")
    diff = result["policies"]["learned"]["value_per_1000"] - result["policies"][best]["value_per_1000"]
    lines.append(f"learned - best fixed: {diff:+.1f} per 1,000{interval('learned_minus_best_fixed_per_1000', 1)}")
    lines.append(f"target score >= {TARGET_SCORE}: {'met' if t['score_at_least_0.8'] else 'NOT met'}; "
                 f"beats best fixed: {t['beats_best_fixed']}; unsubscribe rate not higher than best fixed: "
                 f"{t['unsubscribe_not_higher_than_best_fixed']}")
    study = result.get("tuning_study")
    if study:
        lines.append(f"tuning study ({len(study['trials'])} trials of the final training): Spearman(objective, served "
                     f"score) {study['spearman_objective_vs_served']:+.2f}; chosen trial served "
                     f"{study['chosen_served_score']:.3f}, best {study['best_served_score']:.3f}, "
                     f"median {study['median_served_score']:.3f}")
    return "\n".join(lines)


def bench(scale: float = 1.0) -> dict[str, Any]:
    """``make bench`` entry: 2,000 leads × 60 days at scale 1 (leads and days shrink with ``scale`` < 1)."""
    leads = max(100, round(DEFAULT_LEADS * scale))
    days = DEFAULT_DAYS if scale >= 1 else max(14, round(DEFAULT_DAYS * scale))
    result = run(leads, days)
    print(format_report(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_policy_quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=DEFAULT_LEADS,
                        help=f"simulated leads (default {DEFAULT_LEADS:,}: a 60-day run in ~15 min on 2 cores)")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days of the learning phase (default 60)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the world and every draw (default 7)")
    parser.add_argument("--eval-days", type=int, default=DEFAULT_EVAL_DAYS,
                        help="daily evaluation rounds after the learning phase (default 7)")
    parser.add_argument("--train-every", type=int, default=7, help="days between trainings (default 7)")
    parser.add_argument("--dump", type=Path, default=None,
                        help="also save the contexts and exact values of every lead-day here (.npz)")
    parser.add_argument("--phase", choices=("fit", "all"), default="fit",
                        help="train_policy's phase at each training: fit (the configured hyper-parameters, "
                             "default) or all (hyperopt on the training decisions first, as `nurture-lake train`)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one configuration value, e.g. --set learning.tuning_folds=1 (repeatable)")
    args = parser.parse_args(argv)
    overrides = dict(parse_override(text) for text in args.overrides)
    os.environ["TZ"] = "UTC"  # collected timestamps come back naive in the process time zone
    time.tzset()
    result = run(args.leads, args.days, seed=args.seed, eval_days=args.eval_days, train_every=args.train_every,
                 dump=args.dump, phase=args.phase, overrides=overrides)
    out = PROJECT_ROOT / ".bench" / "bench_policy_quality.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    print(format_report(result))


if __name__ == "__main__":
    main()
