"""The closed nurture loop on a simulated clock: perception → deliberation → action → learning.

Each tick (``tick_days`` simulated days):

1. the simulator's organic files for the tick, and the responses that have happened by now, land;
2. ``ingest`` → ``identity`` → ``features`` → ``attribute`` (closes the reward windows that ended by
   now → ``gold.decision_outcomes``);
3. every ``train_every_days``: ``train`` (challenger) → ``promote`` (gate);
4. ``score`` decides for due leads → ``gold.cadence_decisions``; the simulator answers them.

Regions run side by side within each step (one Spark session, one thread per region).
The library functions are the same ones the jobs call; only the clock is simulated.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.actions import RewardSpec
from nurture_lake.audit import audited_run
from nurture_lake.config import NurtureConfig
from nurture_lake.features import FeatureSettings, update_lead_features
from nurture_lake.identity import identity_tables, run_global, run_region
from nurture_lake.ingest import run_ingest_regions
from nurture_lake.outcomes import attribute
from nurture_lake.policy import NotEnoughData, promote_challenger, train_policy
from nurture_lake.policy.training_set import load_training_set
from nurture_lake.schemas import GOLD_DECISION_OUTCOMES
from nurture_lake.scoring import ScoringSettings, due_leads
from nurture_lake.policy.registry import ServingPolicy, serving_policy
from nurture_lake.scoring.run import decisions_table, lead_events, score_region
from nurture_lake.simulator import SimulatorConfig, World, split_due
from nurture_lake.tables import Lake, TableRef

Log = Callable[[str], None]
T = TypeVar("T")


@dataclass
class TickStats:
    """What one tick did (for progress output and the report)."""

    day: int
    now: datetime
    landed: int = 0
    decisions: int = 0
    touches: int = 0
    outcomes: int = 0
    champion: str = "logging"
    gate: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class _StepClock:
    """Wall seconds per named step of a tick."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = round(self.seconds.get(step, 0.0) + time.perf_counter() - started, 1)


@dataclass
class LoopResult:
    """The run's ticks and where everything is."""

    ticks: list[TickStats] = field(default_factory=list)
    gate_decisions: list[dict[str, Any]] = field(default_factory=list)


def outcomes_table(lake: Lake, region: str) -> TableRef:
    """``<region>.gold.decision_outcomes``."""
    return lake.table(region, "gold", "decision_outcomes")


def upsert_outcomes(spark: SparkSession, table: TableRef, outcomes: DataFrame) -> None:
    """Insert outcomes of newly closed windows (insert-only on ``decision_id``)."""
    table.ensure(spark, GOLD_DECISION_OUTCOMES)
    (
        table.delta(spark).alias("t")
        .merge(outcomes.alias("s"), "t.decision_id = s.decision_id")
        .whenNotMatchedInsertAll()
        .execute()
    )


def attribute_region(spark: SparkSession, lake: Lake, region: str, *, events: DataFrame, now: datetime) -> int:
    """Close the reward windows that ended by ``now``; returns the outcome rows written."""
    table = decisions_table(lake, region)
    if not table.exists(spark):
        return 0
    out_table = outcomes_table(lake, region)
    decisions = table.read(spark)
    if out_table.exists(spark):
        decisions = decisions.join(out_table.read(spark).select("decision_id"), "decision_id", "left_anti")
    outcomes = attribute(decisions, events, reward=RewardSpec.from_config(lake.cfg), now=now).localCheckpoint()
    n = outcomes.count()
    if n:
        upsert_outcomes(spark, out_table, outcomes)
    return n


class ClosedLoop:
    """Run the simulated closed loop on the configured (embedded) lake."""

    def __init__(
        self,
        spark: SparkSession,
        cfg: NurtureConfig,
        *,
        train_every_days: int = 7,
        tick_days: int = 1,
        log: Log = print,
    ) -> None:
        self.spark = spark
        self.cfg = cfg
        self.lake = Lake(cfg)
        self.sim = SimulatorConfig.from_config(cfg)
        self.train_every_days = train_every_days
        self.tick = timedelta(days=tick_days)
        self.log = log
        self.staging = cfg.resolve(cfg.storage.landing_root).parent / "staging"
        self.pending: dict[str, list[dict[str, Any]]] = {r: [] for r in self.lake.regions}
        self.world: World | None = None
        self.result = LoopResult()

    # ------------------------------------------------------------------ set-up
    def _prepare_world(self) -> World:
        staged_cfg = self.cfg.model_copy(update={
            "storage": self.cfg.storage.model_copy(update={"landing_root": str(self.staging)})
        })
        shutil.rmtree(self.staging, ignore_errors=True)
        world = World(staged_cfg, self.sim)
        manifest = world.generate_organic()
        self.log(f"simulated {sum(r.good_events for r in manifest.regions.values()):,} organic events "
                 f"for {self.sim.leads:,} leads over {self.sim.days} days (staged)")
        return world

    def _land_organic(self, region: str, now: datetime) -> int:
        """Move staged organic files of days up to ``now`` into the landing folder."""
        source = self.staging / region / "events"
        target = self.lake.landing(region)
        target.mkdir(parents=True, exist_ok=True)
        moved = 0
        for path in sorted(source.glob("events-*.jsonl")):
            day = datetime.strptime(path.name.split("-")[1], "%Y%m%d").replace(tzinfo=UTC)
            if day < now:
                shutil.move(str(path), target / path.name)
                moved += sum(1 for _ in (target / path.name).open())
        return moved

    def _land_responses(self, world: World, region: str, now: datetime, tick: int) -> int:
        due, later = split_due(self.pending[region], now)
        self.pending[region] = later
        if due:
            world.write_events(due, region, f"responses-{now:%Y%m%d}-{tick:04d}")
        return len(due)

    # ------------------------------------------------------------------ one tick
    def _learn(self, now: datetime, stats: TickStats) -> None:
        loaded = load_training_set(self.spark, self.cfg, as_of=now)
        if loaded is None:
            return
        training, versions = loaded
        training = training.localCheckpoint()
        try:
            with audited_run(self.spark, self.lake, job="train", args={"as_of": now}) as run:
                trained = train_policy(self.spark, self.cfg, training, input_versions=versions)
                run.count("training_rows", trained.n_train + trained.n_validation)
            if trained.tuning_skipped:
                self.log(f"  learn: {trained.tuning_skipped}")
            elif trained.tuning is not None:
                self.log(f"  learn: {trained.tuning.describe()}")
            with audited_run(self.spark, self.lake, job="promote", args={"as_of": now}):
                verdict = promote_challenger(self.spark, self.cfg, training, input_versions=versions)
        except NotEnoughData as exc:
            self.log(f"  learn: skipped ({exc})")
            return
        if verdict is not None:
            stats.gate = "promoted" if verdict.promoted else "refused"
            self.result.gate_decisions.append({
                "as_of": f"{now:%Y-%m-%d}", "promoted": verdict.promoted, "reason": verdict.reason,
                "challenger_version": verdict.challenger_version, "dr_lower": verdict.challenger_dr.lower,
                "baseline_value": verdict.baseline_value, "challenger_harm": verdict.challenger_harm.estimate,
                "baseline_harm": verdict.baseline_harm,
            })
            self.log(f"  learn: challenger v{trained.registered.version if trained.registered else '?'} "
                     f"{stats.gate} ({verdict.reason})")

    def _decide(self, region: str, events: DataFrame, now: datetime, tick: int,
                policy: ServingPolicy) -> tuple[int, list[dict[str, Any]]]:
        """Score ``region``'s due leads; returns (decisions, the touch requests for the simulator)."""
        settings = ScoringSettings.from_config(self.cfg)
        table = decisions_table(self.lake, region)
        existing = table.read(self.spark) if table.exists(self.spark) else None
        due = due_leads(
            events, existing, since=now - self.tick, now=now,
            trigger_event_types=settings.trigger_event_types, review_after=settings.review_after,
        ).where(F.col("region") == region).localCheckpoint()
        if due.isEmpty():
            return 0, []
        decisions = score_region(
            self.spark, self.lake, region, due, events=events, known_at=datetime.now(UTC), batch_id=tick,
            job_run_id=f"demo-{tick:04d}", scoring_policy=policy,
        )
        touches = decisions.where(F.col("channel").isNotNull())
        return decisions.count(), self._requests(region, touches)

    def _requests(self, region: str, touches: DataFrame) -> list[dict[str, Any]]:
        graph = identity_tables(self.lake, region).graph.read(self.spark)
        keyed = touches.join(graph.select("lead_id", "id_key"), "lead_id").groupBy(
            "decision_id", "action_id", "channel", "send_at"
        ).agg(F.collect_list("id_key").alias("id_keys"))
        return [
            {"decision_id": r["decision_id"], "region": region, "id_keys": sorted(r["id_keys"]),
             "action_id": r["action_id"], "channel": r["channel"], "send_at": r["send_at"].replace(tzinfo=UTC)}
            for r in keyed.collect()
        ]

    def _perceive(self, region: str, now: datetime) -> tuple[DataFrame, int]:
        """Identity → features → attribute for ``region``; returns its lead events and outcomes written."""
        run_region(self.spark, self.lake, region)
        events = lead_events(self.spark, self.lake, region).localCheckpoint()
        update_lead_features(self.spark, self.lake, region, events,
                             settings=FeatureSettings.from_config(self.cfg), as_of=now)
        return events, attribute_region(self.spark, self.lake, region, events=events, now=now)

    def step(self, world: World, day: int, now: datetime) -> TickStats:
        """One tick: land, ingest, perceive, learn, decide; regions run side by side within each step.

        Regions share nothing but the session, so their Spark jobs interleave (most of a tick is
        small-job latency, not CPU). The simulator answers in region order, so a seeded run is
        reproducible whatever order the threads finish in.
        """
        stats = TickStats(day=day, now=now)
        clock = _StepClock()
        for region in self.lake.regions:
            stats.landed += self._land_organic(region, now) + self._land_responses(world, region, now, day)
        with clock("ingest"):
            for region, outcome in run_ingest_regions(self.spark, self.lake, self.lake.regions, progress=False).items():
                if isinstance(outcome, BaseException):
                    raise RuntimeError(f"ingest {region} failed on day {day}") from outcome
        with clock("identity+features+attribute"):
            perceived = self._each_region(lambda region: self._perceive(region, now))
        stats.outcomes = sum(n for _, n in perceived.values())
        if day > 0 and day % self.train_every_days < self.tick.days:
            with clock("learn"):
                self._learn(now, stats)
        policy = serving_policy(self.cfg)
        stats.champion = str(policy.model_version)
        with clock("score"):
            decided = self._each_region(lambda region: self._decide(region, perceived[region][0], now, day, policy))
        for region in self.lake.regions:  # region order: the world's draws do not depend on thread timing
            made, requests = decided[region]
            self.pending[region].extend(world.respond(requests))
            stats.decisions += made
            stats.touches += len(requests)
        stats.seconds = clock.seconds
        return stats

    def _each_region(self, work: Callable[[str], T]) -> dict[str, T]:
        """``work(region)`` for every region at once; results in region order, the first failure re-raised."""
        regions = self.lake.regions
        with ThreadPoolExecutor(max_workers=len(regions), thread_name_prefix="loop-region") as pool:
            futures = {region: pool.submit(work, region) for region in regions}
            return {region: futures[region].result() for region in regions}

    def notes(self) -> list[str]:
        """Plain-language notes for the report."""
        sim = self.sim
        out = [
            f"Simulated {sim.leads:,} leads in {', '.join(self.lake.regions)} over {sim.days} days (seed {sim.seed}).",
            f"Learning every {self.train_every_days} days: train → off-policy evaluation → promotion gate.",
            "Realised reward credits every event of a lead inside a decision's window to that decision (the "
            "attribution rule), including activity that would have happened anyway; the expected reward below "
            "comes from the simulator's hidden truths and measures what the chosen action itself is worth.",
        ]
        for gate in self.result.gate_decisions:
            out.append(f"Gate at {gate.get('as_of')}: {'promoted' if gate.get('promoted') else 'refused'} — {gate.get('reason')}")
        return out

    def oracle_frame(self, *, sample: int = 4000) -> pd.DataFrame:
        """Per decision day: expected reward (from the hidden truths) of what each group chose vs the oracle.

        The simulator knows every lead's truth, so for a sample of decisions it computes the exact
        expected reward of the chosen action and of the best action the guardrails allowed.
        """
        if self.world is None:
            return pd.DataFrame()
        rows: list[dict[str, Any]] = []
        spec = RewardSpec.from_config(self.cfg)
        for region in self.lake.regions:
            table = decisions_table(self.lake, region)
            if not table.exists(self.spark):
                continue
            graph = identity_tables(self.lake, region).graph.read(self.spark)
            picked = table.read(self.spark).select(
                "lead_id", "decided_at", "action_id", F.map_keys("action_probs").alias("allowed"), "holdout",
                "model_version",
            ).orderBy(F.xxhash64("lead_id", "decided_at")).limit(sample // len(self.lake.regions))
            keyed = picked.join(graph.groupBy("lead_id").agg(F.collect_list("id_key").alias("id_keys")), "lead_id")
            for r in keyed.collect():
                decided = r["decided_at"].replace(tzinfo=UTC)
                values = self.world.expected_rewards(list(r["id_keys"]), decided, spec, allowed=list(r["allowed"]))
                if not values:
                    continue
                group = "holdout" if r["holdout"] else f"policy v{r['model_version']}"
                rows.append({"day": decided.date(), "group": group, "chosen": values.get(r["action_id"], 0.0),
                             "oracle": max(values.values())})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ the run
    def run(self, *, days: int | None = None) -> LoopResult:
        """Run ``days`` ticks (default: the simulator's days) and return what happened."""
        world = self._prepare_world()
        self.world = world
        start = datetime.combine(self.sim.start, datetime.min.time(), tzinfo=UTC)
        total = days or self.sim.days
        for day in range(self.tick.days, total + 1, self.tick.days):
            now = start + timedelta(days=day)
            stats = self.step(world, day, now)
            self.result.ticks.append(stats)
            self.log(f"day {day:>2}/{total} ({now:%Y-%m-%d}): landed {stats.landed:,} events, "
                     f"{stats.decisions:,} decisions ({stats.touches:,} touches), {stats.outcomes:,} outcomes, "
                     f"policy v{stats.champion} | " + " ".join(f"{k} {v:.0f}s" for k, v in stats.seconds.items()))
        run_global(self.spark, self.lake)  # the cross-region view is read by nobody inside the loop
        world.save()
        return self.result


__all__ = ["ClosedLoop", "LoopResult", "TickStats", "attribute_region", "outcomes_table", "upsert_outcomes"]
