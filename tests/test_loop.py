"""The closed loop end to end on a tiny simulated population (the demo's code path)."""

from __future__ import annotations

from pathlib import Path

import deltalake
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from nurture_lake.actions import RewardSpec
from nurture_lake.config import NurtureConfig, parse_config
from nurture_lake.jobs.check_guardrails import check_region
from nurture_lake.loop import ClosedLoop, build_report
from nurture_lake.loop.report import learned_vs_holdout
from nurture_lake.outcomes.attribution import with_windows
from nurture_lake.tables import Lake

LINEAGE = ("decision_id", "lead_id", "region", "decided_at", "trigger", "action_id", "propensity", "action_probs",
           "explored", "holdout", "guardrails", "model_name", "model_version", "mlflow_run_id", "policy_config_hash",
           "feature_table_version", "feature_as_of", "job_run_id", "batch_id", "code_version")


def small_world(cfg: NurtureConfig, *, leads: int, days: int) -> NurtureConfig:
    raw = cfg.model_dump(mode="json")
    extra = raw.pop("extra")
    extra["simulator"] = {**extra.get("simulator", {}), "leads": leads, "days": days, "files_per_day": 1}
    extra["policy"]["reward"] = {**extra["policy"].get("reward", {}), "window": "1d"}
    return parse_config({**raw, **extra})


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_closed_loop_decisions_are_complete_guarded_and_readable_without_spark(
    spark: SparkSession, cfg: NurtureConfig, tmp_path: Path
) -> None:
    cfg = small_world(cfg, leads=60, days=3)
    lake = Lake(cfg)
    loop = ClosedLoop(spark, cfg, train_every_days=99, log=lambda _: None)
    result = loop.run()
    assert [t.day for t in result.ticks] == [1, 2, 3]

    for region in lake.regions:
        decisions = lake.table(region, "gold", "cadence_decisions").read(spark)
        assert decisions.count() > 0
        # Every decision row carries its full lineage.
        assert decisions.where(" OR ".join(f"{c} IS NULL" for c in LINEAGE)).count() == 0
        # The exact propensity is the logged probability of the chosen action.
        assert decisions.where(F.abs(F.col("propensity") - F.col("action_probs")[F.col("action_id")]) > 1e-12).count() == 0
        # Zero guardrail violations when the table is replayed against the history.
        violations = check_region(spark, cfg, region)
        assert violations is not None
        assert violations.count() == 0, violations.limit(20).collect()
        # BI tools read the decision table without Spark, with the same rows.
        table = deltalake.DeltaTable(lake.table(region, "gold", "cadence_decisions").path)
        pdf = table.to_pandas(columns=["decision_id", "action_id", "propensity"])
        assertDataFrameEqual(spark.createDataFrame(pdf), decisions.select("decision_id", "action_id", "propensity"))

    # The outcomes are exactly the decisions whose 1-day window closed by the last tick's attribution, each
    # with its decision's action and propensity, and a reward that is the sum of its components.
    spec, last_now = RewardSpec.from_config(cfg), result.ticks[-1].now
    keys = ["decision_id", "lead_id", "action_id", "propensity", "decided_at", "send_at", "window_end"]
    for region in lake.regions:
        decisions = lake.table(region, "gold", "cadence_decisions").read(spark)
        closed = with_windows(decisions, reward=spec).where(F.col("window_end") <= F.lit(last_now))
        outcomes = lake.table(region, "gold", "decision_outcomes").read(spark)
        assert closed.count() > 0, f"{region}: no window closed in 3 days with a 1-day reward window"
        assertDataFrameEqual(outcomes.select(keys), closed.select(keys))
        summed = F.aggregate(F.map_values("reward_components"), F.lit(0.0), lambda acc, v: acc + v)
        assert outcomes.where(F.abs(F.col("reward") - summed) > 1e-9).count() == 0
    report = build_report(spark, lake, notes=loop.notes())
    assert report.html_path.exists() and report.pngs
    assert all(p.name in report.html_path.read_text() for p in report.pngs)


def test_learned_vs_holdout_pools_learned_versions_and_gives_a_normal_interval() -> None:
    oracle = pd.DataFrame({
        "group": ["policy v1", "policy v1", "policy v2", "policy vlogging", "holdout", "holdout", "holdout"],
        "chosen": [0.30, 0.10, 0.20, 5.00, 0.00, 0.10, -0.10],
    })
    verdict = learned_vs_holdout(oracle)
    assert verdict is not None
    learned, holdout = np.array([0.30, 0.10, 0.20]), np.array([0.00, 0.10, -0.10])
    diff = learned.mean() - holdout.mean()
    se = np.sqrt(learned.var(ddof=1) / 3 + holdout.var(ddof=1) / 3)
    assert verdict["difference"] == round(diff, 4)
    assert verdict["ci_low"] == round(diff - 1.96 * se, 4) and verdict["ci_high"] == round(diff + 1.96 * se, 4)
    assert (verdict["learned_decisions"], verdict["holdout_decisions"]) == (3, 3)  # logging is not "learned"
    assert verdict["summary"].startswith("Learned policy beats the holdout")

    same = pd.DataFrame({"group": ["policy v1"] * 2 + ["holdout"] * 2, "chosen": [0.0, 1.0, 0.0, 1.0]})
    assert "not distinguishable" in learned_vs_holdout(same)["summary"]
    assert learned_vs_holdout(oracle[oracle["group"] != "holdout"]) is None
