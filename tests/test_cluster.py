"""A real Spark standalone cluster: spark-submit ingest → identity → features → score, then check their tables."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from nurture_lake.actions import ActionSpace
from nurture_lake.audit import audit_table
from nurture_lake.config import PROJECT_ROOT, NurtureConfig
from nurture_lake.devtools.spark_cluster import SparkStandaloneCluster
from nurture_lake.features import latest_features_version, read_lead_features
from nurture_lake.identity import identity_tables
from nurture_lake.privacy import normalise_identifier, pseudonym
from nurture_lake.schemas import EVENT_TYPES
from nurture_lake.scoring import ScoringSettings
from nurture_lake.scoring.run import decisions_table, policy_config_hash
from nurture_lake.simulator import SimulatorConfig, World
from nurture_lake.spark import local_jars
from nurture_lake.tables import Lake

pytestmark = pytest.mark.slow

REGION = "us"
JOBS = ("ingest", "identity", "features", "score")
# A small world: ~20 leads in the region over 2 days, some bad records of a kind the test can spot
# (an unknown event type), a few late arrivals.
SIMULATION: dict[str, Any] = {
    "leads": 40, "days": 2, "files_per_day": 2, "bad_record_rate": 0.1,
    "bad_kind_weights": {"unknown_event_type": 1.0}, "late_event_rate": 0.05,
}
SILVER_COLUMNS = ("event_id", "event_type", "occurred_at", "region", "identifiers", "channel", "decision_id",
                  "properties", "schema_version")
LINEAGE_COLUMNS = ("model_name", "model_version", "mlflow_run_id", "policy_config_hash", "feature_table_version",
                   "feature_as_of", "job_run_id", "batch_id", "code_version", "decided_at", "trigger")


def _spark_options(cluster: SparkStandaloneCluster) -> list[str]:
    jvm = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m"
    return [
        "--jars", ",".join(str(j) for j in local_jars()),
        # Delta's SQL extension and catalog, as get_spark() sets them.
        "--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
        "--conf", "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # Executors run the project's interpreter (it has nurture_lake installed).
        "--conf", f"spark.pyspark.python={sys.executable}",
        # Fit the 1-core / 1g worker: one executor core, a small heap, small driver.
        "--conf", "spark.cores.max=1", "--conf", "spark.executor.memory=512m", "--driver-memory", "768m",
        # Short jobs: serial GC and the C1-only JIT start JVMs faster; a larger code cache keeps the JIT on.
        "--conf", f"spark.driver.extraJavaOptions={jvm}", "--conf", f"spark.executor.extraJavaOptions={jvm}",
        # Loopback only; no UI or progress bars; few shuffle partitions for tiny data.
        "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.ui.enabled=false",
        "--conf", "spark.ui.showConsoleProgress=false",
        "--conf", "spark.sql.shuffle.partitions=2", "--conf", "spark.default.parallelism=2",
        # Delta rebuilds table state with 50 partitions by default: hundreds of tiny tasks on one core.
        "--conf", "spark.databricks.delta.snapshotPartitions=2",
        # Keep spark-warehouse/ out of the project folder (the jobs' cwd).
        "--conf", f"spark.sql.warehouse.dir={cluster.workdir / 'warehouse'}",
    ]


def _submit(cluster: SparkStandaloneCluster, cfg: NurtureConfig, job: str, *args: str) -> str:
    """spark-submit ``jobs/<job>.py`` to the cluster with this test's lake; returns the driver's output."""
    overrides = {
        **{f"storage.{k}": getattr(cfg.storage, k) for k in ("lake_root", "checkpoint_root", "landing_root", "report_root")},
        # The score job reads the registry (for a champion): keep MLflow's stores in the test's folder.
        "mlflow.tracking_uri": cfg.mlflow.tracking_uri, "mlflow.artifact_root": cfg.mlflow.artifact_root,
    }
    result = cluster.submit(
        PROJECT_ROOT / "jobs" / f"{job}.py", *args, *(f"--set={k}={v}" for k, v in overrides.items()),
        "--master", cluster.master_url,
        options=_spark_options(cluster), cwd=PROJECT_ROOT, timeout_s=300,
        env={"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
             "NURTURE_LAKE_SPARK_LOG_LEVEL": "ERROR"},
    )
    assert result.returncode == 0, f"spark-submit {job}.py failed (log {result.log}):\n{result.output[-8000:]}"
    return result.output


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> SparkStandaloneCluster:
    """A master and a 1-core worker on loopback; a finalizer stops them whatever happens (also a failed start)."""
    standalone = SparkStandaloneCluster(tmp_path / "cluster", cores=1, memory="1g")
    request.addfinalizer(standalone.stop)  # registered first: runs even if start() raises
    return standalone.start()


def _simulated_events(cfg: NurtureConfig) -> tuple[list[Row], list[Row]]:
    """The region's landing lines read independently: (valid events as silver rows, quarantined (event_id, reason))."""
    key = cfg.hmac_key()
    phone_region = cfg.regions[REGION].phone_region
    valid, bad = [], []
    for path in sorted(Lake(cfg).landing(REGION).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            ev = json.loads(line)
            if ev["event_type"] not in EVENT_TYPES:
                bad.append(Row(event_id=ev["event_id"], reason="unknown_event_type"))
                continue
            normalised = {t: normalise_identifier(t, v, phone_region=phone_region) for t, v in ev["identifiers"].items()}
            valid.append(Row(
                event_id=ev["event_id"], event_type=ev["event_type"],
                occurred_at=datetime.fromisoformat(ev["occurred_at"]).astimezone(UTC).replace(tzinfo=None),
                region=ev["region"], identifiers={t: pseudonym(key, t, n) for t, n in normalised.items() if n},
                channel=ev["channel"], decision_id=ev["decision_id"], properties=ev["properties"],
                schema_version=ev["schema_version"],
            ))
    return valid, bad


def _due_leads(silver: DataFrame, graph: DataFrame, trigger_types: tuple[str, ...]) -> DataFrame:
    """Leads of the identity graph that have a trigger event: every one is due on the first scoring run."""
    keys = silver.where(F.col("event_type").isin(*trigger_types)).select(
        F.explode(F.map_values("identifiers")).alias("id_key")
    )
    return keys.join(graph.select("id_key", "lead_id"), "id_key").select("lead_id").distinct()


def _invalid_decisions(decisions: DataFrame, action_ids: tuple[str, ...]) -> DataFrame:
    """Decisions whose propensity or chosen action breaks the contract (should be none)."""
    blocked = F.flatten(F.transform(
        "guardrails", lambda g: F.coalesce(g["blocked_actions"], F.array().cast("array<string>"))
    ))
    total = F.aggregate(F.map_values("action_probs"), F.lit(0.0), lambda acc, p: acc + p)
    bad = (
        ~((F.col("propensity") > 0) & (F.col("propensity") <= 1))
        | ~F.col("action_id").isin(*action_ids)                          # not an action of the space
        | F.array_contains(blocked, F.col("action_id"))                  # a guardrail blocked it
        | F.exists(F.map_keys("action_probs"), lambda a: F.array_contains(blocked, a))  # blocked yet offered
        | (F.col("action_probs")[F.col("action_id")] != F.col("propensity"))  # not the logged probability
        | (F.abs(total - F.lit(1.0)) > 1e-9)
    )
    return decisions.where(bad).select("decision_id", "action_id", "propensity", "action_probs", "guardrails")


def test_spark_submit_pipeline_on_a_standalone_cluster(
    spark: SparkSession, cfg: NurtureConfig, cluster: SparkStandaloneCluster
) -> None:
    World(cfg, SimulatorConfig.from_config(cfg, overrides=SIMULATION)).generate_organic()
    expected_silver, expected_quarantine = _simulated_events(cfg)
    assert expected_silver and expected_quarantine

    _submit(cluster, cfg, "ingest", "--once", "--region", REGION)
    _submit(cluster, cfg, "identity", "--region", REGION, "--skip-global")
    _submit(cluster, cfg, "features", "--region", REGION)
    scored = _submit(cluster, cfg, "score", "--once", "--region", REGION)
    # The worker ran an executor for each of the four applications.
    assert cluster.worker_log.read_text().count("Asked to launch executor app-") == len(JOBS)

    # Ingest: silver holds exactly the valid simulated events, quarantine exactly the bad ones.
    lake = Lake(cfg)
    silver = lake.table(REGION, "silver", "events").read(spark)
    assertDataFrameEqual(silver.select(*SILVER_COLUMNS), expected_silver)
    quarantine = lake.table(REGION, "silver", "events_quarantine").read(spark)
    assertDataFrameEqual(quarantine.select("event_id", "reason"), expected_quarantine)

    # Score: one or more decisions for every due lead and none for anyone else.
    graph = identity_tables(lake, REGION).graph.read(spark)
    due = _due_leads(silver, graph, ScoringSettings.from_config(cfg).trigger_event_types).localCheckpoint()
    decisions = decisions_table(lake, REGION).read(spark).localCheckpoint()
    n_decisions = decisions.count()
    assert due.count() >= 10, "the simulated region should make a dozen or more leads due"
    assertDataFrameEqual(decisions.select("lead_id").distinct(), due)
    # In this world every lead has a trigger event (lead_created, web visits), so the features table agrees.
    assertDataFrameEqual(read_lead_features(spark, lake, REGION).select("lead_id"), due)
    assert f"score {REGION}: " in scored and f", {n_decisions} decisions" in scored

    # Propensities are exact probabilities of an allowed action; hold is always allowed.
    assertDataFrameEqual(_invalid_decisions(decisions, ActionSpace.from_config(cfg).action_ids), [])
    # Every lineage column is filled, and names this run, its features and its rules.
    missing = decisions.where(" OR ".join(f"{c} IS NULL" for c in LINEAGE_COLUMNS))
    assertDataFrameEqual(missing.select("decision_id", *LINEAGE_COLUMNS), [])

    # The audit table records the four cluster runs, each with the cluster's master URL.
    audit = audit_table(lake).read(spark).localCheckpoint()
    assertDataFrameEqual(
        audit.select("job", "region", "status", F.get_json_object("args", "$.master").alias("master")),
        [Row(job=job, region=REGION, status="succeeded", master=cluster.master_url) for job in JOBS],
    )
    score_run = audit.where(F.col("job") == "score").first()
    assert score_run is not None
    label = decisions_table(lake, REGION).label
    assert score_run["row_counts"][label] == n_decisions
    assert score_run["outputs"][label] == decisions_table(lake, REGION).version(spark)
    assertDataFrameEqual(
        decisions.select("job_run_id", "feature_table_version", "policy_config_hash").distinct(),
        [Row(job_run_id=score_run["run_id"], feature_table_version=latest_features_version(spark, lake, REGION),
             policy_config_hash=policy_config_hash(cfg))],
    )
