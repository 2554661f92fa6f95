"""Monitoring: streaming metrics listener, policy health, PSI drift, SLOs and the report."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from nurture_lake.audit import audited_run
from nurture_lake.config import NurtureConfig
from nurture_lake.jobs.monitor import main as monitor_main
from nurture_lake.monitor import (
    POLICY_HEALTH,
    install_metrics_listener,
    policy_health,
    policy_health_table,
    psi,
    read_policy_inputs,
    report_dir,
    stream_metrics_table,
    write_policy_health,
)
from nurture_lake.schemas import GOLD_CADENCE_DECISIONS, GOLD_DECISION_OUTCOMES, SILVER_EVENTS, SILVER_EVENTS_QUARANTINE
from nurture_lake.tables import Lake

DAY = date(2026, 11, 2)


def _at(hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 11, 2, hh, mm)


# --------------------------------------------------------------------------- streaming metrics

def test_listener_writes_progress_of_a_real_query(spark: SparkSession, cfg: NurtureConfig, tmp_path: Path) -> None:
    lake = Lake(cfg)
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("x\ny\nz\n")
    listener = install_metrics_listener(spark, lake)
    try:
        query = (
            spark.readStream.format("text").load(str(source))
            .writeStream.queryName("monitor_probe").format("memory")
            .option("checkpointLocation", str(tmp_path / "ckpt"))
            .trigger(availableNow=True).start()
        )
        query.awaitTermination()
        qid, run_id = str(query.id), str(query.runId)
    finally:
        listener.remove()
    written = listener.flush()

    table = stream_metrics_table(lake).read(spark).where(F.col("query_id") == qid)
    progress = table.where(F.col("event") == "progress").where(F.col("num_input_rows") > 0)
    assertDataFrameEqual(
        progress.select("query_name", "run_id", "batch_id", "num_input_rows"),
        [Row(query_name="monitor_probe", run_id=run_id, batch_id=0, num_input_rows=3)],
    )
    terminated = table.where(F.col("event") == "terminated").select("query_name", "exception")
    assertDataFrameEqual(terminated, [Row(query_name="monitor_probe", exception=None)])
    assert written == table.count()
    first = progress.first()
    assert first is not None and first["trigger_execution_ms"] is not None
    assert "addBatch" in first["durations_ms"]
    assert listener.pending == 0


# --------------------------------------------------------------------------- PSI

def _numpy_psi(train: list[float], serve: list[float], bins: int, eps: float) -> float:
    edges = np.quantile(np.array(train), [i / bins for i in range(1, bins)])
    t = np.bincount(np.searchsorted(edges, train, side="right"), minlength=bins) / len(train)
    s = np.bincount(np.searchsorted(edges, serve, side="right"), minlength=bins) / len(serve)
    t, s = np.maximum(t, eps), np.maximum(s, eps)
    return float(np.sum((s - t) * np.log(s / t)))


def test_psi_against_numpy_and_a_hand_value(spark: SparkSession) -> None:
    rng = np.random.default_rng(3)
    a_train = [float(x) for x in rng.normal(0, 1, 60).round(3)]
    a_serve = [float(x) for x in rng.normal(0.8, 1.3, 50).round(3)]
    train = spark.createDataFrame(
        [(a, float(i % 7), 1.0 + i % 2) for i, a in enumerate(a_train)], "a double, same double, hand double"
    )
    hand_serve = [3.0, 4.0] * 25
    serve = spark.createDataFrame(
        [(a, float(i % 7), h) for i, (a, h) in enumerate(zip(a_serve, hand_serve, strict=False))],
        "a double, same double, hand double",
    )
    serve_same = spark.createDataFrame([(None, float(i % 7), None) for i in range(60)], "a double, same double, hand double")

    got = {r["feature"]: r for r in psi(train, serve, columns=["a", "hand"], bins=10, epsilon=1e-4).collect()}
    assert got["a"]["psi"] == pytest.approx(_numpy_psi(a_train, a_serve, 10, 1e-4), rel=1e-9)
    assert got["a"]["training_rows"] == 60 and got["a"]["serving_rows"] == 50

    # hand: training {1, 2} half each, bins=2 → edge 1.5; serving {3, 4} all in the upper bin
    two = psi(train, serve, columns=["hand"], bins=2, epsilon=1e-4).first()
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert two is not None and two["psi"] == pytest.approx(expected, rel=1e-12)
    assert two["status"] == "alert"

    same = psi(train, serve_same, columns=["same", "a"], bins=5, warn=0.1, alert=0.25)
    assertDataFrameEqual(
        same.select("feature", "psi", "status", "training_rows", "serving_rows"),
        [Row(feature="same", psi=0.0, status="ok", training_rows=60, serving_rows=60),
         Row(feature="a", psi=None, status="no_data", training_rows=60, serving_rows=0)],
    )


# --------------------------------------------------------------------------- policy health

def _guard(rule: str, blocked: list[str]) -> dict[str, Any]:
    return {"rule": rule, "passed": not blocked, "blocked_actions": blocked, "reason": None}


def _decision(did: str, region: str, *, version: str, decided: datetime, trigger: str, action: str,
              propensity: float, explored: bool, holdout: bool, guards: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "decision_id": did, "lead_id": f"L{did:0>20}", "region": region, "decided_at": decided,
        "trigger": trigger, "trigger_type": "review" if trigger.startswith("review:") else "event",
        "action_id": action, "channel": None if action == "hold" else action.split("@")[0],
        "delay": None if action == "hold" else action.split("@")[1], "send_at": decided,
        "propensity": propensity, "action_probs": {action: propensity}, "expected_rewards": None,
        "explored": explored, "holdout": holdout, "guardrails": guards,
        "policy_kind": "holdout_baseline" if holdout else "champion", "model_name": "m",
        "model_version": version, "mlflow_run_id": "r", "policy_config_hash": "h", "feature_table_version": 1,
        "feature_as_of": decided, "job_run_id": "j", "batch_id": 0, "code_version": "c",
    }


def _outcome(d: dict[str, Any], reward: float, comps: dict[str, float], harm: bool) -> dict[str, Any]:
    return {
        "decision_id": d["decision_id"], "lead_id": d["lead_id"], "region": d["region"],
        "action_id": d["action_id"], "channel": d["channel"], "propensity": d["propensity"],
        "holdout": d["holdout"], "model_version": d["model_version"], "decided_at": d["decided_at"],
        "send_at": d["send_at"], "window_end": d["decided_at"] + timedelta(days=7), "reward": reward,
        "reward_components": comps, "attributed_event_ids": [], "harm": harm,
        "attributed_at": d["decided_at"] + timedelta(days=7),
    }


def _event(eid: str, region: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": eid, "event_type": "web_visit", "occurred_at": at, "region": region,
        "identifiers": {"cookie_id": "cookie_id:x"}, "channel": "web", "decision_id": None, "properties": {},
        "schema_version": "1", "source_file": None, "ingested_at": at, "batch_id": 0,
    }


def _frame(spark: SparkSession, rows: list[dict[str, Any]], schema: Any) -> Any:
    return spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)


def seed_lake(spark: SparkSession, lake: Lake) -> None:
    """Hand-made decisions, outcomes and trigger events in us and eu (see expected_health)."""
    d1 = _decision("d1", "us", version="3", decided=_at(10, 10), trigger="e1", action="email@1d", propensity=0.5,
                   explored=False, holdout=False, guards=[_guard("consent", []), _guard("quiet_hours", ["push@4h"])])
    d2 = _decision("d2", "us", version="3", decided=_at(11), trigger="review:x", action="hold", propensity=0.25,
                   explored=True, holdout=False, guards=[_guard("consent", []), _guard("quiet_hours", [])])
    d3 = _decision("d3", "us", version="3", decided=_at(10), trigger="e2", action="email@1d", propensity=0.25,
                   explored=True, holdout=False, guards=[_guard("consent", ["chat@4h"]), _guard("quiet_hours", [])])
    d4 = _decision("d4", "us", version="baseline", decided=_at(10), trigger="e3", action="email@1d",
                   propensity=0.8, explored=False, holdout=True, guards=[_guard("consent", [])])
    d5 = _decision("d5", "eu", version="3", decided=_at(12), trigger="review:y", action="push@4h", propensity=0.5,
                   explored=False, holdout=False, guards=[])
    events = {"us": [_event("e1", "us", _at(10)), _event("e2", "us", _at(9)), _event("e3", "us", _at(9, 30))]}
    outcomes = {
        "us": [_outcome(d1, 10.0, {"meeting_booked": 10.0}, False), _outcome(d2, -5.0, {"email_unsubscribe": -5.0}, True),
               _outcome(d4, 1.0, {"email_click": 1.0}, False)],
        "eu": [_outcome(d5, 0.0, {}, False)],
    }
    for region, ds in (("us", [d1, d2, d3, d4]), ("eu", [d5])):
        lake.table(region, "gold", "cadence_decisions").append(_frame(spark, ds, GOLD_CADENCE_DECISIONS))
        lake.table(region, "gold", "decision_outcomes").append(_frame(spark, outcomes[region], GOLD_DECISION_OUTCOMES))
    lake.table("us", "silver", "events").append(_frame(spark, events["us"], SILVER_EVENTS))


def expected_health(spark: SparkSession, at: datetime) -> Any:
    ess_v3 = (2 + 4 + 4) ** 2 / (4 + 16 + 16)
    rows = [
        (DAY, "us", "3", 3, 0.0, {"email@1d": 2 / 3, "hold": 1 / 3}, 2 / 3, 0.25, 0.25, 0.5,
         "inverse_propensity", ess_v3, ess_v3 / 3, {"consent": 1 / 3, "quiet_hours": 1 / 3},
         2, 35.0, 57.5, 2, 2.5, 0.5, 1, 0.5, 1, 1.0, 0.0, 0.0, 1.5, at),
        (DAY, "us", "baseline", 1, 1.0, {"email@1d": 1.0}, 0.0, 0.8, 0.8, 0.8,
         "inverse_propensity", 1.0, 1.0, {"consent": 0.0},
         1, 30.0, 30.0, 1, 1.0, 0.0, 0, 0.0, 1, 1.0, 0.0, 0.0, 0.0, at),
        (DAY, "eu", "3", 1, 0.0, {"push@4h": 1.0}, 0.0, 0.5, 0.5, 0.5,
         "inverse_propensity", 1.0, 1.0, {},
         0, None, None, 1, 0.0, 0.0, 0, 0.0, 0, None, None, None, None, at),
    ]
    return spark.createDataFrame(rows, POLICY_HEALTH)


def test_policy_health_by_day_region_and_version(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    seed_lake(spark, lake)
    at = datetime(2026, 11, 10, 0, 0)
    inputs = read_policy_inputs(spark, lake)
    assert inputs is not None
    health = policy_health(*inputs, computed_at=at)
    assertDataFrameEqual(health, expected_health(spark, at))

    # MERGE by (day, region, model_version): a re-run replaces, it does not duplicate
    write_policy_health(spark, lake, health)
    write_policy_health(spark, lake, health)
    assertDataFrameEqual(policy_health_table(lake).read(spark), expected_health(spark, at))


def test_policy_health_ess_with_a_target_policy(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    seed_lake(spark, lake)
    inputs = read_policy_inputs(spark, lake)
    assert inputs is not None
    target = spark.createDataFrame([("d1", 1.0), ("d2", 0.0), ("d3", 0.5)], "decision_id string, target_prob double")
    row = policy_health(*inputs, target=target).where("region = 'us' AND model_version = '3'").first()
    # weights 1/0.5=2, 0/0.25=0, 0.5/0.25=2 → ESS = 4² / 8 = 2
    assert row is not None and row["weight_source"] == "target"
    assert row["ess"] == pytest.approx(2.0) and row["ess_fraction"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- job: SLOs and report

def _cli(cfg: NurtureConfig, *extra: str) -> list[str]:
    s = cfg.storage
    return [
        "--set", f"storage.lake_root={s.lake_root}", "--set", f"storage.checkpoint_root={s.checkpoint_root}",
        "--set", f"storage.landing_root={s.landing_root}", "--set", f"storage.report_root={s.report_root}",
        *extra,
    ]


def test_healthy_lake_exits_zero_and_writes_the_report(
    spark: SparkSession, cfg: NurtureConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = Lake(cfg)
    seed_lake(spark, lake)
    monitor_main(_cli(cfg))  # returns normally: exit status 0

    out = capsys.readouterr().out
    assert "SLO OK       decision_freshness_p95_minutes = 57.5 <= 60" in out
    assert "SLO BREACHED" not in out
    html = (report_dir(lake) / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', html)
    assert {"reward.png", "exploration.png", "freshness.png", "action_mix.png", "guardrails.png"} <= set(images)
    for name in images:
        assert (report_dir(lake) / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in report_dir(lake).glob("*.png")) == sorted(images)
    assert "All SLOs met" in html


def test_breached_slos_exit_3_and_say_by_how_much(
    spark: SparkSession, cfg: NurtureConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = Lake(cfg)
    seed_lake(spark, lake)
    # a failed job run within the last day
    with pytest.raises(RuntimeError), audited_run(spark, lake, job="ingest", region="us"):
        raise RuntimeError("boom")
    # quarantine: 1 good and 3 quarantined rows ingested now
    now = datetime.now(UTC).replace(tzinfo=None)
    quarantine = lake.table("us", "silver", "events_quarantine")
    quarantine.append(spark.createDataFrame(
        [(f"q{i}", "malformed_json", None, "{", None, None, "us", now, 0) for i in range(3)], SILVER_EVENTS_QUARANTINE
    ))
    lake.table("us", "silver", "events").append(_frame(spark, [{**_event("e9", "us", _at(8)), "ingested_at": now}],
                                                       SILVER_EVENTS))
    # drift: lead_features version 0 vs a shifted version 1
    features = lake.table("us", "gold", "lead_features")
    features.append(spark.createDataFrame([(f"L{i}", float(i % 4)) for i in range(40)], "lead_id string, touches_7d double"))
    features.overwrite(spark.createDataFrame([(f"L{i}", float(i % 4) + 10) for i in range(40)],
                                             "lead_id string, touches_7d double"))

    with pytest.raises(SystemExit) as exit_info:
        monitor_main(_cli(cfg, "--set", "monitor.slo_freshness_p95_minutes=30", "--baseline-version", "0"))
    assert exit_info.value.code == 3
    captured = capsys.readouterr()
    err = captured.err
    assert "decision_freshness_p95_minutes = 57.5 > 30 (over by 27.5)" in err
    assert "quarantine_rate = 0.75 > 0.05 (over by 0.7)" in err
    assert "failed_job_runs = 1 > 0 (over by 1) — failed jobs: ingest" in err
    assert "feature_drift_alerts = 1 > 0 (over by 1) — alerting features: us.touches_7d" in err
    html = (report_dir(lake) / "index.html").read_text()
    assert "4 SLO(s) breached" in html and 'src="drift.png"' in html
