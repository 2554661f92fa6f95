"""The notebooks run top to bottom against a small demo lake and produce what they promise.

The lake: a simulated world (60 leads, 3 days) ingested, linked and featurised for region ``us``
with the library, plus 30 hand-written decisions and outcomes (actions cycle email@1d, push@4h, hold).
Each notebook is split on its ``# COMMAND ----------`` separators, ``# MAGIC`` (markdown) lines are
skipped, and its cells run in one namespace with ``display``/``dbutils`` shims.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from nurture_lake.config import PROJECT_ROOT, NurtureConfig, load_config
from nurture_lake.features import read_lead_features, update_lead_features
from nurture_lake.identity import attach_lead_id, identity_tables, run_region
from nurture_lake.ingest import run_ingest
from nurture_lake.schemas import GOLD_CADENCE_DECISIONS, GOLD_DECISION_OUTCOMES
from nurture_lake.simulator import SimulatorConfig, World
from nurture_lake.tables import Lake

NOTEBOOKS = PROJECT_ROOT / "notebooks"
REGION = "us"
N_DECISIONS = 30
ACTIONS = ("email@1d", "push@4h", "hold")
PROBS = {"email@1d": 0.5, "push@4h": 0.25, "hold": 0.25}
REWARD = {"email@1d": 1.0, "push@4h": 0.0, "hold": 0.0}
FIRST_DECISION = datetime(2026, 9, 4, 12, 0, tzinfo=UTC)


class Shims:
    """``display`` records what a notebook showed; ``dbutils`` answers widget reads with defaults."""

    def __init__(self) -> None:
        self.shown: list[Any] = []

    def display(self, obj: Any, *_: Any, **__: Any) -> None:
        self.shown.append(obj)

    class _Widgets:
        def text(self, name: str, default: str, *_: Any) -> None:
            self.__dict__[name] = default

        def get(self, name: str) -> str:
            return str(self.__dict__[name])

    class _DbUtils:
        def __init__(self) -> None:
            self.widgets = Shims._Widgets()

    def dbutils(self) -> Any:
        return Shims._DbUtils()


def cells(path: Path) -> list[str]:
    """The code cells of a Databricks source notebook (markdown-only cells come back empty)."""
    text = path.read_text()
    assert text.startswith("# Databricks notebook source\n"), path.name
    body = text.split("\n", 1)[1]
    return ["\n".join(line for line in chunk.splitlines() if not line.startswith("# MAGIC"))
            for chunk in body.split("# COMMAND ----------")]


def run_notebook(name: str) -> tuple[dict[str, Any], Shims]:
    """Execute every cell of ``notebooks/<name>`` in one namespace; return it and the shims."""
    shims = Shims()
    namespace: dict[str, Any] = {"display": shims.display, "dbutils": shims.dbutils(), "__name__": "__notebook__"}
    for i, source in enumerate(cells(NOTEBOOKS / name)):
        exec(compile(source, f"{name}[cell {i}]", "exec"), namespace)  # noqa: S102 - running our own notebooks
    return namespace, shims


def _decision_rows(leads: list[str], feature_as_of: datetime, feature_version: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    decisions, outcomes = [], []
    for i, lead_id in enumerate(leads):
        action = ACTIONS[i % len(ACTIONS)]
        decided = FIRST_DECISION + timedelta(minutes=10 * i)
        channel, _, delay = action.partition("@")
        send_at = None if action == "hold" else decided + (timedelta(days=1) if delay == "1d" else timedelta(hours=4))
        common = {"decision_id": f"d{i:03d}", "lead_id": lead_id, "region": REGION, "action_id": action,
                  "channel": None if action == "hold" else channel, "propensity": PROBS[action], "holdout": False,
                  "model_version": "0", "decided_at": decided, "send_at": send_at}
        decisions.append({
            **common, "trigger": f"review:{decided.isoformat()}", "trigger_type": "review", "delay": delay or None,
            "action_probs": PROBS, "expected_rewards": None, "explored": False, "guardrails": [],
            "policy_kind": "logging", "model_name": "logging_uniform", "mlflow_run_id": "", "policy_config_hash": "test",
            "feature_table_version": feature_version, "feature_as_of": feature_as_of, "job_run_id": "test-notebooks",
            "batch_id": 0, "code_version": "test",
        })
        outcomes.append({
            **common, "window_end": decided + timedelta(days=7), "reward": REWARD[action],
            "reward_components": {"click": REWARD[action]}, "attributed_event_ids": [], "harm": False,
            "attributed_at": decided + timedelta(days=7),
        })
    return decisions, outcomes


def _config_file(root: Path) -> Path:
    raw = yaml.safe_load((PROJECT_ROOT / "conf" / "local.yaml").read_text())
    raw["storage"].update(lake_root=str(root / "elsewhere"), checkpoint_root=str(root / "checkpoints"),
                          landing_root=str(root / "landing"), report_root=str(root / "reports"))
    raw["mlflow"].update(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "mlartifacts"))
    raw["simulator"].update(leads=60, days=3)
    # Tiny data: fewer bootstrap resamples, no cold-start prior, a small training minimum.
    raw["learning"].update(ope_bootstrap=20, min_training_examples=10, cold_start_min_examples=0)
    raw["evaluation"].update(n_bootstrap=20)
    path = root / "notebooks.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def demo_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NurtureConfig]:
    """A small demo lake; the notebooks find it through NURTURE_LAKE_ENV (a YAML path) + NURTURE_LAKE_LAKE_ROOT."""
    root = tmp_path_factory.mktemp("notebook_lake")
    config_path = _config_file(root)
    lake_root = root / "lake"
    cfg = load_config(config_path, overrides={"storage.lake_root": str(lake_root)})
    lake = Lake(cfg)
    World(cfg, SimulatorConfig.from_config(cfg)).generate_organic()
    run_ingest(spark, lake, REGION, progress=False)
    run_region(spark, lake, REGION)
    events = attach_lead_id(lake.table(REGION, "silver", "events").read(spark), identity_tables(lake, REGION).graph.read(spark))
    update = update_lead_features(spark, lake, REGION, events)
    leads = [r["lead_id"] for r in read_lead_features(spark, lake, REGION).select("lead_id").orderBy("lead_id").collect()]
    assert len(leads) >= N_DECISIONS, f"the simulated region has only {len(leads)} leads"
    assert update.as_of is not None and update.table_version is not None
    decisions, outcomes = _decision_rows(leads[:N_DECISIONS], update.as_of.replace(tzinfo=UTC), update.table_version)
    lake.table(REGION, "gold", "cadence_decisions").append(spark.createDataFrame(decisions, GOLD_CADENCE_DECISIONS))
    lake.table(REGION, "gold", "decision_outcomes").append(spark.createDataFrame(outcomes, GOLD_DECISION_OUTCOMES))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NURTURE_LAKE_ENV", str(config_path))
        mp.setenv("NURTURE_LAKE_LAKE_ROOT", str(lake_root))
        mp.setenv("NURTURE_LAKE_REGION", REGION)
        mp.delenv("NURTURE_LAKE_REGISTER", raising=False)
        yield cfg


def test_notebooks_are_numbered_databricks_sources() -> None:
    names = sorted(p.name for p in NOTEBOOKS.glob("*.py"))
    assert names == ["00_quickstart.py", "01_events.py", "02_identity.py", "03_features.py",
                     "04_training_and_ope.py", "05_decisions_for_bi.py"]
    for name in names:
        text = (NOTEBOOKS / name).read_text()
        assert "\n# MAGIC %md\n" in text and text.count("\n# COMMAND ----------\n") >= 3, name


def test_00_quickstart(spark: SparkSession, demo_lake: NurtureConfig) -> None:
    ns, shims = run_notebook("00_quickstart.py")
    assert ns["lake"].cfg.storage.lake_root == demo_lake.storage.lake_root  # the override reached the notebook
    inventory = ns["inventory"].set_index("table")
    assert list(inventory.columns) == ["location", "version"]
    assert inventory.loc["us.silver.events", "location"] == str(Path(demo_lake.storage.lake_root) / "us" / "silver" / "events")
    assert inventory.loc["us.gold.cadence_decisions", "version"] == 0  # one append
    assert inventory.loc["us.gold.decision_outcomes", "version"] == 0
    assert inventory.loc["us.silver.lead_merges", "version"] is not None  # identity ensured its tables
    assert shims.shown[-1] is ns["inventory"]


def test_01_events(spark: SparkSession, demo_lake: NurtureConfig) -> None:
    ns, _ = run_notebook("01_events.py")
    lake = Lake(demo_lake)
    mix = ns["event_mix"].toPandas()
    assert list(mix.columns) == ["event_type", "channel", "count"]
    assert mix["count"].sum() == lake.table(REGION, "silver", "events").read(spark).count()
    reasons = ns["quarantine_reasons"].toPandas()
    assert list(reasons.columns) == ["reason", "count"]
    assert reasons["count"].sum() == lake.table(REGION, "silver", "events_quarantine").read(spark).count()


def test_02_identity(spark: SparkSession, demo_lake: NurtureConfig) -> None:
    ns, _ = run_notebook("02_identity.py")
    sizes = ns["lead_sizes"].toPandas()
    assert list(sizes.columns) == ["identifiers", "leads"]
    graph = identity_tables(Lake(demo_lake), REGION).graph.read(spark)
    assert sizes["leads"].sum() == graph.select("lead_id").distinct().count()
    assert (sizes["identifiers"] * sizes["leads"]).sum() == graph.count()
    assert {"lead_id", "event_type", "channel", "occurred_at"} <= set(ns["lead_events"].columns)


def test_03_features(spark: SparkSession, demo_lake: NurtureConfig) -> None:
    ns, _ = run_notebook("03_features.py")
    assert list(ns["feature_dictionary"].columns) == ["name", "family", "transform", "doc"]
    contexts = ns["contexts"].select("lead_id", F.size("context").alias("n")).toPandas()
    n_leads = read_lead_features(spark, Lake(demo_lake), REGION).count()
    assert len(contexts) == n_leads
    assert set(contexts["n"]) == {1 + len(ns["feature_dictionary"]) + 2}  # bias, features, region one-hots (us, eu)


def test_04_training_and_ope(spark: SparkSession, demo_lake: NurtureConfig) -> None:
    ns, _ = run_notebook("04_training_and_ope.py")
    assert ns["training"].count() == N_DECISIONS  # every decision has a closed window
    result = ns["result"]
    assert (result.n_train, result.n_validation) == (21, 9)  # validation_fraction 0.3 of 30, split by time
    assert result.registered is None  # REGISTER unset: nothing logged to MLflow
    assert {"ips", "snips", "dm", "dr"} <= set(ns["estimates"]["estimator"])
    table = ns["ope_table"]
    assert {"ips", "snips", "dr"} <= set(table["estimator"])
    assert ns["ope"].diagnostics.n == N_DECISIONS


def test_05_decisions_for_bi(demo_lake: NurtureConfig) -> None:
    ns, _ = run_notebook("05_decisions_for_bi.py")
    assert "spark" not in ns  # read without Spark
    assert len(ns["decisions"]) == N_DECISIONS and ns["undocumented"] == []
    expected = pd.DataFrame({"channel": ["email", "hold", "push"], "decisions": [10, 10, 10],
                             "mean_propensity": [0.5, 0.25, 0.25]})
    pd.testing.assert_frame_equal(ns["action_mix"], expected)
    assert len(ns["latest"]) == N_DECISIONS  # one decision per lead
