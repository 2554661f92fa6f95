"""Scoring throughput with the full guardrail set versus none, and event-to-decision latency.

``python -m bench.bench_scoring`` (1,000,000 due leads; ``--scale 0.05`` for a quick pass).

**Throughput.** ``N`` due leads with synthetic inputs are generated with Spark and written to Delta
once: features (every numeric ``gold.lead_features`` column, the context vector built by the
library's ``context_vector``, time zones of both regions, fatigue scores), consent and suppression
flags (``consent_and_suppression``'s columns) and touch histories (0–5 touches in the last 30 days).
Then the function the ``score`` job runs for each micro-batch — ``decide`` followed by
``upsert_decisions`` (MERGE into ``gold.cadence_decisions``) — scores all of them twice in the same
session, each into its own new Delta table:

- ``full``: the configured guardrail set (consent, suppression, three global caps, an email cap, a
  12 h gap, quiet hours with deferral, fatigue, the chat budget, the ``eu`` override);
- ``none``: ``decide(guardrails=None)`` — no rule evaluated — fed no guardrail inputs (empty consent
  flags and touch histories), i.e. what scoring costs without guardrails.

Both use the serving policy of a fresh lake (the logging policy, until a champion is promoted), so
the ratio ``full / none`` of decisions per second isolates what the guardrails cost. A small warm-up
of both variants runs first (JIT, Python workers), untimed.

**Latency.** A small lake (simulated leads plus leads known from a CRM import, with no trigger yet)
is built with the library; ``nurture-lake ingest --continuous`` and ``nurture-lake score
--continuous`` then run as separate processes with the configured ``processingTime`` trigger
(``ingest.processing_time``), and files of trigger events for fresh leads are dropped into the
landing folder at a steady interval. Per lead:

- *landed* = wall clock right after the file was atomically renamed into ``landing/<region>/events``;
- *decided* = commit timestamp of the ``gold.cadence_decisions`` Delta version whose MERGE inserted
  the lead's decision (the moment a reader can see it);
- latency = decided − landed; median and p95 over leads (and landed → ``silver.events`` commit, the
  ingest share, the same way).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.actions import ActionSpace
from nurture_lake.audit import code_version
from nurture_lake.config import PROJECT_ROOT, NurtureConfig, load_config
from nurture_lake.features import FeatureSettings, context_vector, update_lead_features
from nurture_lake.features.columns import feature_columns
from nurture_lake.guardrails import GuardrailConfig
from nurture_lake.identity import attach_lead_id, identity_tables, run_region
from nurture_lake.ingest import run_ingest
from nurture_lake.policy.registry import serving_policy
from nurture_lake.scoring import Lineage, ScoringSettings, decide
from nurture_lake.scoring.due import TOUCH_STRUCT
from nurture_lake.scoring.run import baseline_policy, decisions_table, policy_config_hash, upsert_decisions
from nurture_lake.simulator import SimulatorConfig, World
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake, TableRef

BENCH_ROOT = PROJECT_ROOT / ".bench" / "scoring"
DECIDED_AT = datetime(2026, 11, 10, 15, tzinfo=UTC)  # 10:00 New York, 16:00 Berlin: some sends deferred, most not
ZONES = {"us": ("America/New_York", "America/Chicago", "America/Los_Angeles"),
         "eu": ("Europe/Berlin", "Europe/London", "Europe/Paris")}
CHANNELS = ("email", "push", "chat", "sms")
LATENCY_REGION = "us"
_RUNNING: list[subprocess.Popen[bytes]] = []  # the latency run's jobs (a job that ends early fails the wait)


def bench_config(root: Path) -> NurtureConfig:
    """The local configuration with every root (and the MLflow store) under ``root``."""
    return load_config("local", overrides={
        "storage.lake_root": str(root / "lake"), "storage.checkpoint_root": str(root / "checkpoints"),
        "storage.landing_root": str(root / "landing"), "storage.report_root": str(root / "reports"),
        "mlflow.tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "mlflow.artifact_root": str(root / "mlartifacts"),
    })


# ------------------------------------------------------------------------------ synthetic inputs


def _u(salt: str) -> Column:
    """A uniform [0, 1) value per lead, stable whatever the partitioning."""
    return F.pmod(F.xxhash64(F.lit(salt), F.col("id")), F.lit(1_000_000)) / F.lit(1_000_000.0)


def _pick(values: tuple[str, ...], salt: str) -> Column:
    return F.element_at(F.array(*[F.lit(v) for v in values]), (F.floor(_u(salt) * len(values)) + 1).cast("int"))


def synthetic_inputs(spark: SparkSession, cfg: NurtureConfig, n: int) -> dict[str, DataFrame]:
    """Due leads, features, consent flags and touch histories for ``n`` leads of both regions (lazy)."""
    settings = FeatureSettings.from_config(cfg)
    base = spark.range(n).select(
        "id",
        F.concat(F.lit("L"), F.substring(F.sha2(F.col("id").cast("string"), 256), 1, 20)).alias("lead_id"),
        F.when(F.col("id") % 2 == 0, F.lit("us")).otherwise(F.lit("eu")).alias("region"),
    )
    due = base.select("lead_id", "region", F.lit(DECIDED_AT).cast("timestamp").alias("decided_at"),
                      F.concat(F.lit("bench-ev-"), F.col("id").cast("string")).alias("trigger"),
                      F.lit("event").alias("trigger_type"))
    numeric = []
    for name in feature_columns(settings):
        if name == "fatigue":
            value = _u(name) * 4.0  # threshold 3.0: about a quarter of the leads are fatigued
        elif name.startswith(("n_", "touches_", "engagements_")):
            value = F.floor(_u(name) * 6.0)
        elif name.startswith("hours_since"):
            value = _u(name) * float(settings.recency_cap_hours)
        else:
            value = _u(name)
        numeric.append(value.cast("double").alias(name))
    zone = F.when(F.col("region") == "us", _pick(ZONES["us"], "tz")).otherwise(_pick(ZONES["eu"], "tz"))
    features = context_vector(
        base.select("lead_id", "region", F.lit(DECIDED_AT).cast("timestamp").alias("as_of"), zone.alias("timezone"),
                    F.floor(_u("hour") * 24).cast("int").alias("local_hour"),
                    _pick(("new", "engaged", "meeting", "opportunity"), "stage").alias("lifecycle_stage"), *numeric),
        settings=settings, regions=list(cfg.regions),
    )
    opt_in = F.col("region") == "eu"
    flag_cols: list[Column] = []
    for c in CHANNELS:
        granted = F.when(opt_in, _u(f"grant_{c}") < 0.6).otherwise(_u(f"revoke_{c}") >= 0.05)
        flag_cols += [granted.alias(f"consent_{c}"), (_u(f"unsub_{c}") < 0.03).alias(f"suppressed_{c}")]
    complained = _u("complaint") < 0.01
    flags = base.select(
        "lead_id", "region", *flag_cols, complained.alias("suppressed"),
        F.when(complained, F.array(F.lit("complaint"))).otherwise(F.array().cast("array<string>"))
        .alias("suppression_reasons"),
    )
    k = F.floor(_u("touches") * 6).cast("int")  # 0..5 touches in the last 30 days

    def touch(i: Column) -> Column:
        minutes_ago = F.pmod(F.xxhash64(F.lit("at"), F.col("id"), i), F.lit(30 * 24 * 60))
        at = F.timestamp_micros(F.lit(int(DECIDED_AT.timestamp() * 1_000_000)) - minutes_ago * F.lit(60_000_000))
        channel = F.element_at(F.array(*[F.lit(c) for c in ("email", "push", "chat")]),
                               (F.pmod(F.xxhash64(F.lit("ch"), F.col("id"), i), F.lit(3)) + 1).cast("int"))
        return F.struct(channel.alias("channel"), at.alias("at"))

    touches = base.select(
        "lead_id",
        F.sort_array(F.transform(F.slice(F.sequence(F.lit(1), F.lit(5)), 1, k), touch)).cast(TOUCH_STRUCT)
        .alias("touch_times"),
    )
    return {"due": due, "features": features, "flags": flags, "touches": touches}


def write_inputs(spark: SparkSession, inputs: dict[str, DataFrame], folder: Path) -> dict[str, DataFrame]:
    """Write each input to Delta under ``folder`` and read it back (the timed runs read, not generate)."""
    out = {}
    for name, df in inputs.items():
        path = str(folder / name)
        df.write.format("delta").mode("overwrite").save(path)
        out[name] = spark.read.format("delta").load(path)
    return out


# ------------------------------------------------------------------------------------- throughput


def score_once(
    spark: SparkSession, cfg: NurtureConfig, inputs: dict[str, DataFrame], table: TableRef, *, guarded: bool,
) -> float:
    """``decide`` + ``upsert_decisions`` over every due lead, as ``score_region`` runs them; returns seconds."""
    settings = ScoringSettings.from_config(cfg)
    chosen = serving_policy(cfg)
    flags, touches = inputs["flags"], inputs["touches"]
    if not guarded:  # a scorer without guardrails reads no consent flags or touch history
        flags, touches = flags.limit(0), touches.limit(0)
    lineage = Lineage(
        model_name=chosen.model_name, model_version=str(chosen.model_version),
        mlflow_run_id=chosen.mlflow_run_id or "none",
        policy_config_hash=policy_config_hash(cfg), feature_table_version=0, feature_as_of=DECIDED_AT,
        job_run_id="bench", batch_id=0, code_version=code_version(),
    )
    started = time.perf_counter()
    decisions = decide(
        inputs["due"], features=inputs["features"].drop("as_of"), flags=flags, touches=touches,
        policy=chosen.policy, baseline=baseline_policy(cfg, settings),
        guardrails=GuardrailConfig.from_config(cfg) if guarded else None,
        action_space=ActionSpace.from_config(cfg), settings=settings, lineage=lineage, seed=chosen.seed,
        spent_so_far={},
    ).localCheckpoint()
    upsert_decisions(spark, table, decisions)
    return time.perf_counter() - started


def throughput(spark: SparkSession, cfg: NurtureConfig, n: int, *, repeats: int = 1) -> dict[str, Any]:
    """Decisions per second with the full guardrail set and with none, on the same ``n`` leads."""
    lake = Lake(cfg)
    started = time.perf_counter()
    inputs = write_inputs(spark, synthetic_inputs(spark, cfg, n), BENCH_ROOT / "inputs")
    print(f"generated {n:,} due leads with features, flags and touches in {time.perf_counter() - started:.1f} s",
          flush=True)
    warm = {k: v.limit(min(n, 20_000)) for k, v in inputs.items()}
    for variant in ("full", "none"):  # untimed: JIT, Python workers, Delta table creation paths
        score_once(spark, cfg, warm, lake.table("us", "bench", f"warmup_{variant}"), guarded=variant == "full")

    serving = serving_policy(cfg)
    result: dict[str, Any] = {"due_leads": n, "cores": spark.sparkContext.defaultParallelism,
                              "policy": f"{serving.model_version}:{getattr(serving.policy, 'kind', '')}"}
    for variant in ("none", "full"):
        timings = []
        for r in range(repeats):
            table = lake.table("us", "bench", f"decisions_{variant}_{r}")
            timings.append(score_once(spark, cfg, inputs, table, guarded=variant == "full"))
        written = table.read(spark)
        stats = written.agg(
            F.count("*").alias("rows"), F.countDistinct("decision_id").alias("ids"),
            F.avg((F.col("action_id") == "hold").cast("double")).alias("hold_share"),
            F.avg(F.size(F.filter("guardrails", lambda g: ~g["passed"])).cast("double")).alias("failed_rules"),
        ).first()
        assert stats is not None and stats["rows"] == n and stats["ids"] == n, f"{variant}: {stats}"
        best = min(timings)
        result[variant] = {
            "seconds": [round(t, 2) for t in timings], "decisions_per_s": round(n / best),
            "hold_share": round(stats["hold_share"], 4), "failed_rules_per_decision": round(stats["failed_rules"], 3),
        }
    result["ratio_full_vs_none"] = round(result["full"]["decisions_per_s"] / result["none"]["decisions_per_s"], 3)
    return result


# ---------------------------------------------------------------------------------------- latency


def _line(event_id: str, event_type: str, at: datetime, n: int, channel: str) -> str:
    return json.dumps({
        "event_id": event_id, "event_type": event_type, "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": LATENCY_REGION,
        "identifiers": {"email": f"fresh{n:05d}@import.example.com", "crm_id": f"CRM-F-{n:06d}"},
        "channel": channel, "properties": {}, "schema_version": "1",
    })


def _land(folder: Path, name: str, lines: list[str]) -> float:
    """Write a landing file atomically (hidden temp name, then rename); returns the wall clock after the rename."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp"
    tmp.write_text("".join(line + "\n" for line in lines))
    os.rename(tmp, folder / name)
    return time.time()


def _build_latency_lake(spark: SparkSession, lake: Lake, fresh_leads: int) -> None:
    """Simulated leads plus ``fresh_leads`` known from a CRM import (no trigger yet): ingest, identity, features."""
    World(lake.cfg, SimulatorConfig.from_config(lake.cfg, overrides={
        "leads": 200, "days": 2, "files_per_day": 1, "bad_record_rate": 0.0})).generate_organic()
    imported = datetime(2026, 9, 1, 12, tzinfo=UTC)
    _land(lake.landing(LATENCY_REGION), "crm-import.jsonl",
          [_line(f"import-{n:05d}", "email_delivered", imported, n, "email") for n in range(fresh_leads)])
    run_ingest(spark, lake, LATENCY_REGION, progress=False)
    run_region(spark, lake, LATENCY_REGION, run_id="bench")
    events = attach_lead_id(lake.table(LATENCY_REGION, "silver", "events").read(spark),
                            identity_tables(lake, LATENCY_REGION).graph.read(spark))
    update_lead_features(spark, lake, LATENCY_REGION, events.where(F.col("lead_id").isNotNull()))


def _job(cfg: NurtureConfig, job: str, processing_time: str, log: Path) -> subprocess.Popen[bytes]:
    s, m = cfg.storage, cfg.mlflow
    args = [sys.executable, "-m", "nurture_lake.cli", job, "--region", LATENCY_REGION, "--continuous",
            "--set", f"ingest.processing_time={processing_time}"]
    for key, value in (("storage.lake_root", s.lake_root), ("storage.checkpoint_root", s.checkpoint_root),
                       ("storage.landing_root", s.landing_root), ("storage.report_root", s.report_root),
                       ("mlflow.tracking_uri", m.tracking_uri), ("mlflow.artifact_root", m.artifact_root)):
        args += ["--set", f"{key}={value}"]
    env = {**os.environ, "NURTURE_LAKE_SPARK_LOG_LEVEL": "ERROR"}
    with log.open("w") as out:
        return subprocess.Popen(args, stdout=out, stderr=out, env=env)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _first_commit(path: str, column: str) -> dict[str, float]:
    """Value of ``column`` → commit timestamp (s) of the first Delta version holding it."""
    from deltalake import DeltaTable

    stamps = {h["version"]: h["timestamp"] / 1000.0 for h in DeltaTable(path).history()}
    first: dict[str, float] = {}
    for version in sorted(stamps):
        values = DeltaTable(path, version=version).to_pyarrow_table(columns=[column])[column].to_pylist()
        for value in values:
            first.setdefault(value, stamps[version])
    return first


def _decided(path: str) -> set[str]:
    """Triggers decided so far (the latest snapshot of the decision table)."""
    from deltalake import DeltaTable

    if not Path(path, "_delta_log").exists():
        return set()
    return set(DeltaTable(path).to_pyarrow_table(columns=["trigger"])["trigger"].to_pylist())


def _wait(what: str, condition: Any, timeout_s: float, logs: list[Path]) -> None:
    """Poll ``condition`` every second (the figures come from commit timestamps, not from this loop)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline or any(p.poll() is not None for p in _RUNNING):
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in logs)
            raise RuntimeError(f"timed out waiting for {what} (or a job ended)\n{tails}")
        time.sleep(1.0)


def latency(
    spark: SparkSession, *, files: int, leads_per_file: int = 5, interval_s: float = 15.0,
    processing_time: str | None = None,
) -> dict[str, Any]:
    """Event-to-decision latency through the continuous ingest and score jobs (see the module docstring)."""
    root = BENCH_ROOT / "latency"
    cfg = bench_config(root)
    processing_time = processing_time or cfg.ingest.processing_time
    lake = Lake(cfg)
    fresh = (files + 1) * leads_per_file  # the first file warms both jobs up and is not measured
    started = time.perf_counter()
    _build_latency_lake(spark, lake, fresh)
    print(f"latency lake built in {time.perf_counter() - started:.1f} s; processingTime {processing_time}", flush=True)

    decisions_path = str(decisions_table(lake, LATENCY_REGION).path)
    silver_path = str(lake.table(LATENCY_REGION, "silver", "events").path)
    logs = [root / "ingest.log", root / "score.log"]
    procs = [_job(cfg, "ingest", processing_time, logs[0]), _job(cfg, "score", processing_time, logs[1])]
    _RUNNING[:] = procs
    landed: dict[str, float] = {}  # trigger event id → landed time
    try:
        _wait("the score job's first batch", lambda: "batch 0:" in logs[1].read_text(), 600, logs)
        for f in range(files + 1):
            now = datetime.now(UTC)
            lines, triggers = [], []
            for j in range(leads_per_file):
                n = f * leads_per_file + j
                triggers.append(f"lat-{f:03d}-{n:05d}")
                lines.append(_line(triggers[-1], "web_visit", now, n, "web"))
            at = _land(lake.landing(LATENCY_REGION), f"latency-{f:03d}.jsonl", lines)
            if f == 0:
                _wait("the warm-up file's decisions", lambda: set(triggers) <= _decided(decisions_path), 600, logs)
                print(f"  latency: warm-up file decided; landing {files} files, one every {interval_s:g} s", flush=True)
                continue
            landed.update({t: at for t in triggers})
            if f % 5 == 0 or f == files:
                print(f"  latency: landed file {f}/{files}", flush=True)
            time.sleep(interval_s)
        _wait("every decision", lambda: set(landed) <= _decided(decisions_path), max(600.0, 10 * interval_s), logs)
    finally:
        for proc in procs:
            _stop(proc)
        _RUNNING.clear()

    decided = _first_commit(decisions_path, "trigger")
    in_silver = _first_commit(silver_path, "event_id")
    total = np.array([decided[t] - landed[t] for t in landed])
    ingest_part = np.array([in_silver[t] - landed[t] for t in landed])
    return {
        "processing_time": processing_time, "files": files, "leads": len(landed), "interval_s": interval_s,
        "median_s": round(float(np.median(total)), 2), "p95_s": round(float(np.percentile(total, 95)), 2),
        "max_s": round(float(total.max()), 2),
        "landed_to_silver_median_s": round(float(np.median(ingest_part)), 2),
        "landed_to_silver_p95_s": round(float(np.percentile(ingest_part, 95)), 2),
    }


# ---------------------------------------------------------------------------------------------- run


def run(n: int = 1_000_000, *, repeats: int = 1, latency_files: int = 20, interval_s: float = 15.0,
        processing_time: str | None = None, skip_latency: bool = False) -> dict[str, Any]:
    shutil.rmtree(BENCH_ROOT, ignore_errors=True)
    cfg = bench_config(BENCH_ROOT)
    spark = get_spark(cfg, app_name="bench.scoring")
    result = throughput(spark, cfg, n, repeats=repeats)
    for variant in ("full", "none"):
        r = result[variant]
        print(f"  {variant:<5} guardrails: {r['decisions_per_s']:>9,} decisions/s  (s: {r['seconds']}, "
              f"hold share {r['hold_share']}, failed rules/decision {r['failed_rules_per_decision']})")
    print(f"  ratio full / none: {result['ratio_full_vs_none']}", flush=True)
    if not skip_latency:
        result["latency"] = latency(spark, files=latency_files, interval_s=interval_s, processing_time=processing_time)
        lat = result["latency"]
        print(f"  event → decision latency over {lat['leads']} leads ({lat['files']} files every {interval_s:g} s, "
              f"processingTime {lat['processing_time']}): median {lat['median_s']} s, p95 {lat['p95_s']} s, "
              f"max {lat['max_s']} s; landed → silver median {lat['landed_to_silver_median_s']} s, "
              f"p95 {lat['landed_to_silver_p95_s']} s")
    return result


def bench(scale: float = 1.0) -> dict[str, Any]:
    """``make bench`` entry: 1,000,000 × ``scale`` due leads; 20 × ``scale`` latency files (at least 5)."""
    return run(int(1_000_000 * scale), latency_files=max(5, round(20 * scale)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scoring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the default sizes (default 1.0)")
    parser.add_argument("--leads", type=int, default=None, help="due leads (default 1,000,000 × scale)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per variant, best kept (default 1)")
    parser.add_argument("--latency-files", type=int, default=None, help="measured files (default 20 × scale, ≥ 5)")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between dropped files (default 15)")
    parser.add_argument("--processing-time", default=None,
                        help="trigger of both jobs (default: ingest.processing_time of the config)")
    parser.add_argument("--skip-latency", action="store_true", help="measure throughput only")
    args = parser.parse_args(argv)
    result = run(args.leads or int(1_000_000 * args.scale), repeats=args.repeats,
                 latency_files=args.latency_files or max(5, round(20 * args.scale)), interval_s=args.interval,
                 processing_time=args.processing_time, skip_latency=args.skip_latency)
    out = PROJECT_ROOT / ".bench" / "bench_scoring.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
