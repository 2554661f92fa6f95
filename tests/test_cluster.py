"""A real Spark standalone cluster: spark-submit the ingest job against it, then check silver."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from pyspark.sql import Row, SparkSession
from pyspark.testing import assertDataFrameEqual
from test_ingest import event

from nurture_lake.config import PROJECT_ROOT, NurtureConfig
from nurture_lake.devtools.spark_cluster import SparkStandaloneCluster
from nurture_lake.privacy import pseudonym
from nurture_lake.spark import local_jars
from nurture_lake.tables import Lake

pytestmark = pytest.mark.slow


def _submit(cluster: SparkStandaloneCluster, script: Path, *args: str, timeout: float = 240) -> str:
    cmd = [
        str(cluster.spark_submit), "--master", cluster.master_url,
        "--jars", ",".join(str(j) for j in local_jars()),
        # Delta's SQL extension and catalog, as get_spark() sets them.
        "--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
        "--conf", "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # Executors run the project's interpreter (it has nurture_lake installed).
        "--conf", f"spark.pyspark.python={sys.executable}",
        # Fit the 1-core / 1g worker: one executor core, a small heap, small driver.
        "--conf", "spark.cores.max=1", "--conf", "spark.executor.memory=512m", "--driver-memory", "768m",
        # Loopback only; no UI; few shuffle partitions for tiny data.
        "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.ui.enabled=false",
        "--conf", "spark.sql.shuffle.partitions=2", "--conf", "spark.default.parallelism=2",
        # Delta rebuilds table state with 50 partitions by default: hundreds of tiny tasks on one core.
        "--conf", "spark.databricks.delta.snapshotPartitions=2",
        str(script), *args, "--master", cluster.master_url,
    ]
    env = {**cluster.env(), "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "NURTURE_LAKE_SPARK_LOG_LEVEL": "ERROR"}
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    (cluster.workdir / f"submit-{script.stem}.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"spark-submit {script.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result.stdout + result.stderr  # the driver's Python output reaches spark-submit's stdout


def test_spark_submit_ingest_on_a_standalone_cluster(
    spark: SparkSession, cfg: NurtureConfig, tmp_path: Path
) -> None:
    lake = Lake(cfg)
    landing = lake.landing("us")
    landing.mkdir(parents=True)
    lines = [
        event("c-1"),
        event("c-2", event_type="email_open", channel="email", occurred_at="2026-11-01T12:30:00+02:00"),
        event("c-3", event_type="telepathy"),  # quarantined: unknown_event_type
    ]
    (landing / "events-0001.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    storage = [f"--set=storage.{k}={getattr(cfg.storage, k)}"
               for k in ("lake_root", "checkpoint_root", "landing_root", "report_root")]

    with SparkStandaloneCluster(tmp_path / "cluster", cores=1, memory="1g") as cluster:
        log = _submit(cluster, PROJECT_ROOT / "jobs" / "ingest.py", "--once", "--region", "us", *storage)
        assert "app-" in cluster.master_log.read_text()  # the master ran our application
        score = PROJECT_ROOT / "jobs" / "score.py"
        if score.exists():
            scored = _submit(cluster, score, "--region", "us", *storage)
            # No identity graph yet in this lake, so nothing is due: the job must still run cleanly.
            assert "score us: 1 batches, 0 due leads, 0 decisions" in scored

    assert "ingest us: 1 batches, 3 raw lines, 2 new silver events, quarantined: unknown_event_type=1" in log
    key = cfg.hmac_key()
    ids = {"email": pseudonym(key, "email", "ada@example.com"), "cookie_id": pseudonym(key, "cookie_id", "c-1")}
    silver = lake.table("us", "silver", "events").read(spark)
    assertDataFrameEqual(
        silver.select("event_id", "event_type", "occurred_at", "region", "identifiers", "channel", "properties"),
        [
            Row(event_id="c-1", event_type="web_visit", occurred_at=datetime(2026, 11, 1, 10, 0), region="us",
                identifiers=ids, channel="web", properties={"page": "/pricing"}),
            Row(event_id="c-2", event_type="email_open", occurred_at=datetime(2026, 11, 1, 10, 30), region="us",
                identifiers=ids, channel="email", properties={"page": "/pricing"}),
        ],
    )
    quarantined = lake.table("us", "silver", "events_quarantine").read(spark).select("event_id", "reason")
    assertDataFrameEqual(quarantined, [Row(event_id="c-3", reason="unknown_event_type")])
