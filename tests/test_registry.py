"""MLflow registry round trip by alias, the promotion gate and train → register (real Spark, real MLflow)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from nurture_lake.audit import audit_table
from nurture_lake.config import NurtureConfig, load_config
from nurture_lake.jobs.promote import main as promote_main
from nurture_lake.jobs.train import main as train_main
from nurture_lake.policy import (
    ExplorationParams,
    LearningSettings,
    LinearBandit,
    LoggingPolicy,
    alias_version,
    fit_linear_bandit,
    gate_rule,
    gate_table,
    load_policy,
    load_policy_version,
    log_policy,
    promote_challenger,
    score_pandas,
    serving_policy,
    set_alias,
    sufficient_statistics,
    train_policy,
)
from nurture_lake.tables import Lake
from test_policy import ACTIONS, TRUE_THETA, logged_frame, simulate_logged


@pytest.fixture
def small_cfg(cfg: NurtureConfig) -> NurtureConfig:
    """The test configuration with a three-action space and fast evaluation settings."""
    extra = {
        **cfg.extra,
        "policy": {**cfg.section("policy"), "actions": {"channels": ["email", "push"], "waits": ["1d"], "hold": True}},
        "learning": {"ope_bootstrap": 50, "thompson_draws": 200, "validation_fraction": 0.4, "seed": 3,
                     "strategy": "epsilon_greedy", "exploration_floor": 0.1, "cold_start_min_examples": 0},
    }
    return cfg.model_copy(update={"extra": extra})


def _bandit(theta: np.ndarray) -> LinearBandit:
    return LinearBandit(ACTIONS, theta, np.tile(np.eye(3) * 0.05, (3, 1, 1)), 1.0, np.zeros(3, dtype=np.int64),
                        ExplorationParams("epsilon_greedy", floor=0.1))


def _requests(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(8)
    return pd.DataFrame({
        "context": [[1.0, *rng.normal(size=2)] for _ in range(n)],
        "allowed_actions": [list(ACTIONS) if i % 2 else ["hold", "push@1d"] for i in range(n)],
        "decision_id": [f"r{i}" for i in range(n)],
    })


def test_registry_round_trip_by_alias(small_cfg: NurtureConfig) -> None:
    assert load_policy(small_cfg, "champion") is None
    policy = LinearBandit(
        ACTIONS, TRUE_THETA.copy(), np.tile(np.eye(3) * 0.2, (3, 1, 1)), 0.5, np.array([10, 11, 12]),
        ExplorationParams("thompson", floor=0.05, draws=300, seed=9),
    )
    registered = log_policy(small_cfg, policy, seed=21, params={"ridge_lambda": 1.0},
                            metrics={"n_train": 33}, input_versions={"us.gold.cadence_decisions": 4})
    assert registered.version == "1"
    assert alias_version(small_cfg, "challenger") == ("1", registered.run_id)
    set_alias(small_cfg, "champion", registered.version)
    loaded = load_policy_version(small_cfg, "champion")
    assert loaded is not None and loaded.version == "1" and loaded.seed == 21
    requests = _requests(40)
    contexts = np.stack(requests.context.map(np.asarray))
    mask = np.array([[a in allowed for a in ACTIONS] for allowed in requests.allowed_actions])
    np.testing.assert_array_equal(loaded.policy.probabilities(contexts, mask), policy.probabilities(contexts, mask))
    # The pyfunc served by alias returns the same decisions as the in-memory policy.
    served = mlflow.pyfunc.load_model(f"models:/{small_cfg.mlflow.model_name}@champion").predict(requests)
    local = score_pandas(policy, requests, seed=21)
    assert list(served.action_id) == list(local.action_id)
    for got, want in zip(served.action_probs, local.action_probs, strict=True):
        assert got == pytest.approx(want, abs=0)
    run = mlflow.get_run(registered.run_id)
    assert run.data.params["input_version.us.gold.cadence_decisions"] == "4"
    assert run.data.tags["code_version"]


def _training(spark: SparkSession, n: int = 1000, seed: int = 2) -> tuple[DataFrame, dict[str, np.ndarray]]:
    sim = simulate_logged(n, seed=seed)
    return logged_frame(spark, sim, partitions=2).cache(), sim


def test_gate_rule_by_hand() -> None:
    assert gate_rule(challenger_lower=0.5, baseline_value=0.4, challenger_harm_lower=0.01, baseline_harm=0.01,
                     harm_tolerance=0.0)[0]
    assert not gate_rule(challenger_lower=0.4, baseline_value=0.4, challenger_harm_lower=0.0, baseline_harm=0.01,
                         harm_tolerance=0.0)[0]
    refused, why = gate_rule(challenger_lower=0.9, baseline_value=0.4, challenger_harm_lower=0.03,
                             baseline_harm=0.01, harm_tolerance=0.01)
    assert not refused and "harm lower bound 0.0300 >" in why
    assert not gate_rule(challenger_lower=float("nan"), baseline_value=0.0, challenger_harm_lower=0.0,
                         baseline_harm=0.0, harm_tolerance=0.0)[0]


def test_gate_refuses_a_worse_challenger_and_accepts_a_better_one(spark: SparkSession, small_cfg: NurtureConfig) -> None:
    training, sim = _training(spark)
    settings = LearningSettings.from_config(small_cfg)
    good = fit_linear_bandit(sufficient_statistics(training, action_ids=ACTIONS),
                             exploration=ExplorationParams("epsilon_greedy", floor=0.1))
    bad = _bandit(-TRUE_THETA)

    # 1. No champion: the bad challenger must beat the logging policy's value (mean logged reward) — it cannot.
    v_bad = log_policy(small_cfg, bad, seed=3).version
    first = promote_challenger(spark, small_cfg, training, settings=settings)
    assert first is not None and not first.promoted and first.baseline_kind == "logging"
    later = np.arange(len(sim["r"])) >= 600  # validation_fraction 0.4 of 1000 decisions, one a minute
    assert first.baseline_value == pytest.approx(float(sim["r"][later].mean()), abs=1e-9)
    assert first.baseline_harm == pytest.approx(float(sim["harm"][later].mean()), abs=1e-9)
    assert first.n_decisions == 400
    assert load_policy_version(small_cfg, "champion") is None

    # 2. A better challenger is promoted over the logging policy.
    v_good = log_policy(small_cfg, good, seed=3).version
    second = promote_challenger(spark, small_cfg, training, settings=settings)
    assert second is not None and second.promoted, second.reason
    assert second.challenger_dr.lower > second.baseline_value
    assert alias_version(small_cfg, "champion")[0] == v_good

    # 3. A worse challenger is refused against the champion.
    v_bad2 = log_policy(small_cfg, bad, seed=3).version
    third = promote_challenger(spark, small_cfg, training, settings=settings)
    assert third is not None and not third.promoted and third.baseline_kind == "champion"
    assert alias_version(small_cfg, "champion")[0] == v_good

    written = gate_table(Lake(small_cfg)).read(spark)
    assertDataFrameEqual(
        written.select("challenger_version", "baseline_kind", "champion_version", "promoted", "n_decisions"),
        spark.createDataFrame(
            [(v_bad, "logging", None, False, 400), (v_good, "logging", None, True, 400),
             (v_bad2, "champion", v_good, False, 400)],
            "challenger_version string, baseline_kind string, champion_version string, promoted boolean, "
            "n_decisions long",
        ),
    )
    reasons = {r.challenger_version: r.reason for r in written.collect()}
    assert reasons[v_good].startswith("promoted") and reasons[v_bad2].startswith("refused")
    training.unpersist()


def test_gate_refuses_a_challenger_that_causes_more_harm(spark: SparkSession, small_cfg: NurtureConfig) -> None:
    sim = simulate_logged(1000, seed=6)
    # Harm follows email: every email touch with x1 > 0 unsubscribes (the challenger loves those).
    sim["harm"] = (sim["a"] == 1) & (sim["x"][:, 1] > 0)
    training = logged_frame(spark, sim, partitions=2)
    settings = LearningSettings.from_config(small_cfg)
    good_reward = fit_linear_bandit(sufficient_statistics(training, action_ids=ACTIONS),
                                    exploration=ExplorationParams("epsilon_greedy", floor=0.1))
    log_policy(small_cfg, good_reward, seed=3)
    decision = promote_challenger(spark, small_cfg, training, settings=settings)
    assert decision is not None and not decision.promoted
    assert decision.challenger_dr.lower > decision.baseline_value      # better reward ...
    assert decision.challenger_harm.lower > decision.baseline_harm     # ... but significantly more harm
    assert "harm" in decision.reason and decision.reason.startswith("refused")


def test_train_policy_fits_evaluates_and_registers_a_challenger(spark: SparkSession, small_cfg: NurtureConfig) -> None:
    training, sim = _training(spark, n=800, seed=9)
    result = train_policy(spark, small_cfg, training.drop("harm").withColumn("harm", F.lit(False)),
                          phase="fit", input_versions={"us.gold.decision_outcomes": 2})
    assert result.n_train + result.n_validation == 800 and result.n_validation == 320
    assert result.registered is not None and result.registered.version == "1"
    assert alias_version(small_cfg, "challenger") == ("1", result.registered.run_id)
    dr = result.estimates["dr"]
    assert dr.lower <= dr.estimate <= dr.upper
    run = mlflow.get_run(result.registered.run_id)
    assert run.data.metrics["ope_challenger_dr_estimate"] == pytest.approx(dr.estimate)
    assert run.data.params["input_version.us.gold.decision_outcomes"] == "2"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.registered.run_id, "plots")}
    assert artifacts == {"plots/ope_estimates.png"}
    loaded = load_policy(small_cfg, "challenger")
    assert isinstance(loaded, LinearBandit)
    np.testing.assert_allclose(loaded.theta, result.policy.theta)
    training.unpersist()


def test_serving_policy_is_the_logging_policy_until_a_champion_exists(small_cfg: NurtureConfig) -> None:
    serving = serving_policy(small_cfg)
    assert isinstance(serving.policy, LoggingPolicy)
    assert (serving.policy_kind, serving.model_version, serving.mlflow_run_id) == ("logging", "logging", "")
    registered = log_policy(small_cfg, _bandit(TRUE_THETA), seed=3)
    set_alias(small_cfg, "champion", registered.version)
    champion = serving_policy(small_cfg)
    assert (champion.policy_kind, champion.model_version, champion.mlflow_run_id) == (
        "champion", registered.version, registered.run_id)
    assert champion.policy_config_hash != serving.policy_config_hash


def test_jobs_run_audited_on_an_empty_lake(spark: SparkSession, tmp_path: Path) -> None:
    overrides = [
        "--set", f"storage.lake_root={tmp_path / 'lake'}",
        "--set", f"storage.checkpoint_root={tmp_path / 'ck'}",
        "--set", f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "--set", f"mlflow.artifact_root={tmp_path / 'art'}",
    ]
    train_main(["--phase", "fit", *overrides])
    promote_main(overrides)
    cfg = load_config("local", overrides={"storage.lake_root": str(tmp_path / "lake")})
    audit = audit_table(Lake(cfg)).read(spark).select("job", "status")
    assertDataFrameEqual(audit, spark.createDataFrame([("train", "succeeded"), ("promote", "succeeded")],
                                                      "job string, status string"))
