"""Crash safety: SIGKILL the ingest job mid-stream, restart it, and lose or duplicate nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from nurture_lake.config import NurtureConfig
from nurture_lake.ingest import IngestTables
from nurture_lake.tables import Lake
from tests.test_ingest import event, land


def _job_args(cfg: NurtureConfig, *extra: str) -> list[str]:
    s = cfg.storage
    return [
        sys.executable, "-m", "nurture_lake.cli", "ingest", "--region", "us",
        "--set", f"storage.lake_root={s.lake_root}", "--set", f"storage.checkpoint_root={s.checkpoint_root}",
        "--set", f"storage.landing_root={s.landing_root}",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(
    spark: SparkSession, cfg: NurtureConfig, tmp_path: Path
) -> None:
    lake = Lake(cfg)
    expected = []
    for f in range(6):
        batch = [event(f"f{f}-e{i}", occurred_at=f"2026-11-0{1 + f % 5}T10:{i % 60:02d}:00Z") for i in range(40)]
        batch.append(event(f"f{(f + 1) % 6}-e0"))  # a re-send of another file's event: a duplicate
        land(lake, "us", f"events-{f:04d}.jsonl", batch)
        expected += [(e["event_id"],) for e in batch[:-1]]

    log_path = tmp_path / "ingest.log"
    env = {**os.environ, "NURTURE_LAKE_SPARK_LOG_LEVEL": "ERROR"}
    with log_path.open("w") as log:
        continuous = _job_args(cfg, "--continuous", "--set", "ingest.max_files_per_trigger=1",
                               "--set", "ingest.processing_time=0 seconds")
        proc = subprocess.Popen(continuous, stderr=log, stdout=log, env=env)
        deadline = time.time() + 900
        while time.time() < deadline and log_path.read_text().count("raw →") < 2:
            time.sleep(0.2)
        time.sleep(0.7)  # land inside a later batch's writes
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    progress = log_path.read_text()
    assert progress.count("raw →") >= 2, progress[-3000:]

    done = subprocess.run(_job_args(cfg, "--once"), capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    tables = IngestTables.for_region(lake, "us")
    assertDataFrameEqual(tables.silver.read(spark).select("event_id"), expected)
    # Every landed line is in bronze exactly once, and the 6 re-sends are quarantined once each.
    bronze = tables.bronze.read(spark)
    assert bronze.count() == 6 * 41
    assert bronze.select("value", "source_file").distinct().count() == 6 * 41
    dup_rows = tables.quarantine.read(spark).where("reason = 'duplicate_event_id'").select("event_id")
    assertDataFrameEqual(dup_rows, [(f"f{(f + 1) % 6}-e0",) for f in range(6)])
