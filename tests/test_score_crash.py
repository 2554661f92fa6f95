"""Crash safety of scoring: SIGKILL the streaming ``score`` job mid-stream, restart it, and neither
duplicate nor lose a decision.

The lake is built with the library (simulate → ingest → identity → features) plus a few CRM-imported
leads ("W leads") that are known to the identity graph but have no trigger event yet. While the
scorer runs with a processingTime trigger, waves of trigger events for disjoint groups of W leads
keep arriving (landing file → ingest). The job is killed right after a micro-batch's MERGE into
``gold.cadence_decisions`` committed (and, if the kill came too late, that batch's checkpoint
commit is removed, the state a kill a few milliseconds earlier leaves), more events land while it is
down, and it is restarted with ``--once``: the batch is replayed against decisions it already wrote.

The reference is a clean, uninterrupted ``availableNow`` run on a copy of the lake taken before
scoring started, fed the same landing files. Because every lead has trigger events in one arrival
only (the simulated leads in the initial data, each W lead in its own wave), the decisions due do
not depend on how arrivals were cut into micro-batches, so both runs must decide exactly the same
(lead, trigger) pairs with the same deterministic ids and draws.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from nurture_lake.config import NurtureConfig, load_config
from nurture_lake.features import update_lead_features
from nurture_lake.identity import attach_lead_id, identity_tables, run_region
from nurture_lake.ingest import run_ingest
from nurture_lake.scoring import ScoringSettings
from nurture_lake.scoring.run import decisions_table
from nurture_lake.scoring.stream import run_scoring
from nurture_lake.simulator import SimulatorConfig, World
from nurture_lake.tables import Lake

REGION = "us"
WAVES = 3
W_PER_WAVE = 4
SIMULATION = {"leads": 24, "days": 2, "files_per_day": 1, "bad_record_rate": 0.0, "late_event_rate": 0.0,
              "anonymous_share": 0.0}
LINEAGE = ("decision_id", "lead_id", "region", "decided_at", "trigger", "trigger_type", "action_id", "propensity",
           "action_probs", "explored", "holdout", "guardrails", "policy_kind", "model_name", "model_version",
           "mlflow_run_id", "policy_config_hash", "feature_table_version", "feature_as_of", "job_run_id", "batch_id",
           "code_version")
KEPT = ("decision_id", "trigger", "action_id", "decided_at", "send_at", "batch_id", "job_run_id")
COMPARED = ("decision_id", "lead_id", "region", "trigger", "trigger_type", "action_id", "holdout", "propensity")
BATCH_DONE = re.compile(rf"score {REGION}: batch (\d+):")


def _config(root: Path, landing: Path, mlflow_root: Path) -> NurtureConfig:
    return load_config("local", overrides={
        "storage.lake_root": str(root / "lake"), "storage.checkpoint_root": str(root / "checkpoints"),
        "storage.landing_root": str(landing), "storage.report_root": str(root / "reports"),
        "mlflow.tracking_uri": f"sqlite:///{mlflow_root / 'mlflow.db'}",
        "mlflow.artifact_root": str(mlflow_root / "mlartifacts"),
    })


def _job_args(cfg: NurtureConfig, *extra: str) -> list[str]:
    s, m = cfg.storage, cfg.mlflow
    return [
        sys.executable, "-m", "nurture_lake.cli", "score", "--region", REGION,
        "--set", f"storage.lake_root={s.lake_root}", "--set", f"storage.checkpoint_root={s.checkpoint_root}",
        "--set", f"storage.landing_root={s.landing_root}", "--set", f"storage.report_root={s.report_root}",
        "--set", f"mlflow.tracking_uri={m.tracking_uri}", "--set", f"mlflow.artifact_root={m.artifact_root}",
        *extra,
    ]


def _w_identifiers(n: int) -> dict[str, str]:
    return {"email": f"w{n:03d}@import.example.com", "crm_id": f"CRM-W-{n:04d}"}


def _line(event_id: str, event_type: str, occurred_at: datetime, identifiers: dict[str, str],
          channel: str) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": event_type, "occurred_at": occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION, "identifiers": identifiers, "channel": channel, "properties": {}, "schema_version": "1"}


def _land(lake: Lake, name: str, lines: list[dict[str, Any]]) -> None:
    folder = lake.landing(REGION)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp"  # write then rename: the file source never sees a half-written file
    tmp.write_text("".join(json.dumps(x) + "\n" for x in lines))
    tmp.rename(folder / name)


def _wave(k: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Wave ``k``'s landing lines and, per W lead, the id of its latest trigger event (what it is due for)."""
    now = datetime.now(UTC).replace(microsecond=0)
    lines: list[dict[str, Any]] = []
    triggers: list[str] = []
    for j in range(W_PER_WAVE):
        n = k * W_PER_WAVE + j
        ids = _w_identifiers(n)
        visit = _line(f"wave{k}-w{n:03d}-visit", "web_visit", now - timedelta(minutes=2), ids, "web")
        lines.append(visit)
        if j == 0:  # two triggers in one wave: the later one names the decision
            lines.append(_line(f"wave{k}-w{n:03d}-form", "form_submit", now - timedelta(minutes=1), ids, "web"))
        triggers.append(lines[-1]["event_id"])
        lines.append(_line(f"wave{k}-w{n:03d}-dlv", "email_delivered", now - timedelta(minutes=1), ids, "email"))
    return lines, triggers


def _build_lake(spark: SparkSession, lake: Lake) -> None:
    """Simulated leads plus W leads known only from a CRM import (no trigger event), then identity and features."""
    World(lake.cfg, SimulatorConfig.from_config(lake.cfg, overrides=SIMULATION)).generate_organic()
    imported = datetime(2026, 9, 1, 12, tzinfo=UTC)
    lines = [_line(f"import-w{n:03d}", "email_delivered", imported, _w_identifiers(n), "email")
             for n in range(WAVES * W_PER_WAVE)]
    # Every other W lead complained: suppressed on every channel, it gets `hold`, so it is due again
    # when its batch is replayed (no pending touch) and only the deterministic id prevents a duplicate.
    lines += [_line(f"complaint-w{n:03d}", "email_complaint", imported + timedelta(hours=1), _w_identifiers(n),
                    "email") for n in range(1, WAVES * W_PER_WAVE, 2)]
    _land(lake, "crm-import.jsonl", lines)
    run_ingest(spark, lake, REGION, progress=False)
    run_region(spark, lake, REGION, run_id="setup")
    graph = identity_tables(lake, REGION).graph.read(spark)
    events = attach_lead_id(lake.table(REGION, "silver", "events").read(spark), graph)
    update_lead_features(spark, lake, REGION, events.where(F.col("lead_id").isNotNull()))


def _wait_for(what: str, condition: Callable[[], bool], *, timeout_s: float, log_path: Path | None = None,
              poll_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            tail = log_path.read_text()[-3000:] if log_path is not None else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(poll_s)


def _log_commits(folder: Path) -> int:
    return len(list(folder.glob("_delta_log/*.json"))) if folder.exists() else 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_mid_stream_then_restart_duplicates_and_loses_no_decision(spark: SparkSession, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    cfg = _config(tmp_path / "crash", landing, tmp_path)
    lake = Lake(cfg)
    _build_lake(spark, lake)
    # The reference lake: a copy (tables and ingest checkpoint) taken before any scoring.
    clean_cfg = _config(tmp_path / "clean", landing, tmp_path)
    for folder in ("lake", "checkpoints"):
        shutil.copytree(tmp_path / "crash" / folder, tmp_path / "clean" / folder)

    checkpoint = Path(lake.checkpoint(REGION, "score"))
    decisions_dir = Path(decisions_table(lake, REGION).path or "")
    log_path = tmp_path / "score.log"
    env = {**os.environ, "NURTURE_LAKE_SPARK_LOG_LEVEL": "ERROR"}
    expected_wave_triggers: list[str] = []

    def batches_done() -> set[int]:
        return {int(b) for b in BATCH_DONE.findall(log_path.read_text())}

    def arrive(k: int) -> None:
        lines, triggers = _wave(k)
        expected_wave_triggers.extend(triggers)
        _land(lake, f"wave-{k}.jsonl", lines)
        run_ingest(spark, lake, REGION, progress=False)

    with log_path.open("w") as log:
        continuous = _job_args(cfg, "--continuous", "--set", "ingest.processing_time=1 second")
        proc = subprocess.Popen(continuous, stderr=log, stdout=log, env=env)
        try:
            # Batch 0: the initial silver snapshot (the simulated leads' triggers).
            _wait_for("batch 0", lambda: 0 in batches_done(), timeout_s=300, log_path=log_path)
            # Wave 0 makes batch 1; wave 1 arrives while batch 1 runs; kill as soon as batch 1's MERGE committed.
            before = _log_commits(decisions_dir)
            arrive(0)
            _wait_for("batch 1 planned", lambda: (checkpoint / "offsets" / "1").exists(), timeout_s=120,
                      log_path=log_path, poll_s=0.05)
            more = ThreadPoolExecutor(max_workers=1)
            arriving = more.submit(arrive, 1)
            _wait_for("batch 1 written", lambda: _log_commits(decisions_dir) > before, timeout_s=300,
                      log_path=log_path, poll_s=0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            arriving.result()  # wave 1 is in silver (its ingest raised nothing)
            more.shutdown()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # Killed after the MERGE: if the checkpoint commit of batch 1 slipped in before the signal, remove it
    # so the restart replays batch 1 against the decisions it already wrote (the case under test).
    for name in ("1", ".1.crc"):
        (checkpoint / "commits" / name).unlink(missing_ok=True)
    killed_run = decisions_table(lake, REGION).read(spark).select(*KEPT).collect()

    arrive(2)  # events keep arriving while the job is down
    done = subprocess.run(_job_args(cfg, "--once"), capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    restart_batches = [int(b) for b in BATCH_DONE.findall(done.stderr)]
    assert restart_batches[:1] == [1], done.stderr[-3000:]  # batch 1 was replayed, not skipped
    replay = re.search(rf"score {REGION}: batch 1: (\d+) due leads", done.stderr)
    assert replay is not None and int(replay.group(1)) > 0  # the replay decided again (the held W leads)

    # The clean reference: one uninterrupted availableNow run on the copy, after every file landed.
    clean = Lake(clean_cfg)
    run_ingest(spark, clean, REGION, progress=False)
    run_scoring(spark, clean, REGION, job_run_id="clean", once=True, progress=False)

    crashed = decisions_table(lake, REGION).read(spark)
    reference = decisions_table(clean, REGION).read(spark)
    # No duplicate: ids are unique, and a lead has at most one decision per trigger.
    assert crashed.groupBy("decision_id").count().where("count > 1").count() == 0
    assert crashed.groupBy("lead_id", "trigger").count().where("count > 1").count() == 0
    # Nothing lost, nothing extra: the same decisions as the clean run (ids, draws, propensities).
    assertDataFrameEqual(crashed.select(*COMPARED), reference.select(*COMPARED))
    # Every W lead was decided once, for its latest trigger of its wave; and the simulated leads too.
    assertDataFrameEqual(crashed.where(F.col("trigger").startswith("wave")).select("trigger"),
                         [(t,) for t in expected_wave_triggers])
    simulated = attach_lead_id(lake.table(REGION, "silver", "events").read(spark),
                               identity_tables(lake, REGION).graph.read(spark))
    triggers = ScoringSettings.from_config(cfg).trigger_event_types
    assertDataFrameEqual(
        crashed.where(~F.col("trigger").startswith("wave")).select("lead_id"),
        simulated.where(~F.col("event_id").startswith("wave") & F.col("event_type").isin(*triggers))
        .select("lead_id").distinct(),
    )
    # The replay added nothing to, and changed nothing in, what the killed run had written.
    assertDataFrameEqual(crashed.where("batch_id <= 1").select(*KEPT), killed_run)
    # Every decision carries its full lineage.
    assert crashed.where(" OR ".join(f"{c} IS NULL" for c in LINEAGE)).count() == 0
