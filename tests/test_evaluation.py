"""Off-policy evaluation: estimators against NumPy and hand computations, bootstrap, diagnostics, errors."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from nurture_lake.config import ConfigError, load_config
from nurture_lake.evaluation import ESTIMATORS, OpeSettings, PoissonCounts, off_policy_estimates

SCHEMA = (
    "id string, action string, reward double, propensity double, "
    "target_probs map<string,double>, expected_rewards map<string,double>"
)
ACTIONS = ["a", "b", "c", "d", "e"]
CLIP, TAU = 5.0, 5.0

Row = tuple[str, str, float, float, dict[str, float], dict[str, float]]


def _frame(spark: SparkSession, rows: list[Row]) -> DataFrame:
    return spark.createDataFrame(rows, SCHEMA)


def _random_rows(n: int, seed: int, *, floor: float = 0.0) -> list[Row]:
    """Random logged data: Dirichlet logging/target policies over 5 actions, reward model on a subset.

    ``floor`` mixes the logging policy with the uniform one (propensities ≥ floor/5, bounded weights).

    About a tenth of the target maps leave out the logged action (its probability is then 0), and the
    reward model also predicts for an action ``z`` no policy uses.
    """
    rng = np.random.default_rng(seed)
    rows: list[Row] = []
    for i in range(n):
        mu = (1 - floor) * rng.dirichlet(np.ones(len(ACTIONS))) + floor / len(ACTIONS)
        k = int(rng.choice(len(ACTIONS), p=mu))
        pi = rng.dirichlet(np.full(len(ACTIONS), 0.7))
        target = {a: float(p) for a, p in zip(ACTIONS, pi, strict=True)}
        if rng.random() < 0.1:  # drop the logged action and renormalise over the rest
            dropped = target.pop(ACTIONS[k])
            target = {a: p / (1 - dropped) for a, p in target.items()}
        model = {a: float(rng.normal(j * 0.3, 1)) for j, a in enumerate(ACTIONS)} | {"z": 9.0}
        reward = float(rng.normal(0.3 * k, 1.0))
        rows.append((f"r{i}", ACTIONS[k], reward, float(mu[k]), target, model))
    return rows


def _numpy_reference(rows: list[Row]) -> dict[str, float]:
    """The estimators computed directly from the formulas, row by row, with NumPy."""
    w = np.array([r[4].get(r[1], 0.0) / r[3] for r in rows])
    reward = np.array([r[2] for r in rows])
    v_hat = np.array([sum(p * r[5][a] for a, p in r[4].items()) for r in rows])
    q_logged = np.array([r[5][r[1]] for r in rows])
    n = len(rows)
    clipped = np.minimum(w, CLIP)
    switched = np.where(w <= TAU, w, 0.0)
    return {
        "ips": float(np.sum(w * reward) / n),
        "snips": float(np.sum(w * reward) / np.sum(w)),
        "clipped_ips": float(np.sum(clipped * reward) / n),
        "dm": float(np.mean(v_hat)),
        "dr": float(np.mean(v_hat + w * (reward - q_logged))),
        "sndr": float(np.mean(v_hat) + np.sum(w * (reward - q_logged)) / np.sum(w)),
        "switch_dr": float(np.mean(v_hat + switched * (reward - q_logged))),
        "ess": float(np.sum(w) ** 2 / np.sum(w**2)),
        "ess_clipped": float(np.sum(clipped) ** 2 / np.sum(clipped**2)),
        "ess_switch": float(np.sum(switched) ** 2 / np.sum(switched**2)),
        "max_weight": float(np.max(w)),
        "mean_weight": float(np.mean(w)),
    }


@pytest.fixture(scope="module")
def random_rows() -> list[Row]:
    return _random_rows(2500, seed=5)


# ---------------------------------------------------------------- point estimates


def test_every_estimator_matches_numpy_on_random_data(spark: SparkSession, random_rows: list[Row]) -> None:
    expected = _numpy_reference(random_rows)
    result = off_policy_estimates(_frame(spark, random_rows), n_bootstrap=0, clip=CLIP, switch_tau=TAU)

    assert list(result.estimates) == list(ESTIMATORS)
    for name, est in result.estimates.items():
        assert est.value == pytest.approx(expected[name], abs=1e-9), name
        assert math.isnan(est.ci_low) and math.isnan(est.ci_high)
    ess = {name: est.ess for name, est in result.estimates.items()}
    assert ess["ips"] == pytest.approx(expected["ess"], rel=1e-9)
    assert ess["clipped_ips"] == pytest.approx(expected["ess_clipped"], rel=1e-9)
    assert ess["switch_dr"] == pytest.approx(expected["ess_switch"], rel=1e-9)
    assert ess["dm"] == len(random_rows)
    diag = result.diagnostics
    assert diag.n == len(random_rows)
    assert diag.ess == pytest.approx(expected["ess"], rel=1e-9)
    assert diag.max_weight == pytest.approx(expected["max_weight"], rel=1e-12)
    assert diag.mean_weight == pytest.approx(expected["mean_weight"], rel=1e-9)


def _hand_rows() -> list[Row]:
    return [
        ("r1", "a", 1.0, 0.5, {"a": 0.8, "b": 0.2}, {"a": 0.6, "b": 0.1}),
        ("r2", "b", 0.0, 0.25, {"a": 0.5, "b": 0.5}, {"a": 0.4, "b": 0.2}),
        ("r3", "a", 2.0, 0.5, {"b": 1.0}, {"a": 1.0, "b": 0.5}),  # logged a not in target: w = 0
        ("r4", "b", 1.0, 0.1, {"a": 0.0, "b": 1.0}, {"a": 0.3, "b": 0.4}),
    ]


def test_hand_computed_case(spark: SparkSession) -> None:
    # weights w = π(a_i)/p_i: 0.8/0.5 = 1.6, 0.5/0.25 = 2, 0 (a missing), 1/0.1 = 10; rewards 1, 0, 2, 1
    # Σ w r = 1.6 + 0 + 0 + 10 = 11.6; Σ w = 13.6; Σ w² = 2.56 + 4 + 0 + 100 = 106.56
    # IPS = 11.6/4 = 2.9; SNIPS = 11.6/13.6 = 0.8529411764705882
    # clipped at 5: 1.6, 2, 0, 5 → Σ w̃ r = 6.6 → 1.65; ESS = 8.6²/(2.56+4+25) = 73.96/31.56
    # v̂ = 0.8·0.6+0.2·0.1 = 0.5; 0.5·0.4+0.5·0.2 = 0.3; 1·0.5 = 0.5; 0·0.3+1·0.4 = 0.4 → Σ 1.7, DM = 0.425
    # residuals r − q̂(a_i) = 0.4, −0.2, 1.0, 0.6; w·res = 0.64, −0.4, 0, 6.0 → Σ 6.24
    # DR = (1.7 + 6.24)/4 = 1.985; SNDR = 0.425 + 6.24/13.6 = 0.8838235294117647
    # Switch-DR (τ = 5, row 4 switched to DM): (1.7 + 0.64 − 0.4 + 0)/4 = 0.485; ESS = 3.6²/6.56
    result = off_policy_estimates(_frame(spark, _hand_rows()), n_bootstrap=0, clip=5.0, switch_tau=5.0)
    cols = ["estimator", "value", "ess"]
    actual = spark.createDataFrame(result.to_pandas()[cols])
    ess = 13.6**2 / 106.56
    expected = spark.createDataFrame(
        [
            ("ips", 2.9, ess),
            ("snips", 11.6 / 13.6, ess),
            ("clipped_ips", 1.65, 73.96 / 31.56),
            ("dm", 0.425, 4.0),
            ("dr", 1.985, ess),
            ("sndr", 0.425 + 6.24 / 13.6, ess),
            ("switch_dr", 0.485, 3.6**2 / 6.56),
        ],
        "estimator string, value double, ess double",
    )
    assertDataFrameEqual(actual, expected, checkRowOrder=True, rtol=0, atol=1e-12)
    assert result.diagnostics.max_weight == pytest.approx(10.0, abs=1e-12)
    assert result.diagnostics.mean_weight == pytest.approx(3.4, abs=1e-12)


def test_target_equal_to_logging_policy_gives_mean_reward(spark: SparkSession) -> None:
    rng = np.random.default_rng(3)
    rows: list[Row] = []
    for i in range(600):
        mu = rng.dirichlet(np.ones(4))
        k = int(rng.choice(4, p=mu))
        probs = {ACTIONS[j]: float(mu[j]) for j in range(4)}
        rows.append((f"r{i}", ACTIONS[k], float(rng.normal(k, 1)), float(mu[k]), probs, {a: 0.0 for a in ACTIONS}))
    result = off_policy_estimates(_frame(spark, rows), estimators=["ips", "snips"], n_bootstrap=0)
    mean_reward = float(np.mean([r[2] for r in rows]))
    assert result.estimates["ips"].value == pytest.approx(mean_reward, abs=1e-12)
    assert result.estimates["snips"].value == pytest.approx(mean_reward, abs=1e-12)
    assert result.diagnostics.ess == pytest.approx(600, abs=1e-9)
    assert result.diagnostics.max_weight == pytest.approx(1.0, abs=1e-12)


def test_weight_only_estimators_without_reward_model(spark: SparkSession) -> None:
    frame = _frame(spark, _hand_rows()).drop("expected_rewards")
    result = off_policy_estimates(frame, n_bootstrap=0, clip=5.0)
    assert list(result.estimates) == ["ips", "snips", "clipped_ips"]
    assert result.estimates["ips"].value == pytest.approx(2.9, abs=1e-12)


# ---------------------------------------------------------------- diagnostics


def test_diagnostics_on_hand_case(spark: SparkSession) -> None:
    # Action c is never logged. Unsupported mass = (0.5 + 0 + 0.5)/3 = 1/3.
    # Weights: 0.5/0.5 = 1, 1/0.5 = 2, 0.25/0.25 = 1 → ESS = 4²/(1+4+1) = 8/3; max 2; mean 4/3.
    rows: list[Row] = [
        ("r1", "a", 1.0, 0.5, {"a": 0.5, "c": 0.5}, {}),
        ("r2", "b", 0.0, 0.5, {"b": 1.0}, {}),
        ("r3", "a", 1.0, 0.25, {"a": 0.25, "b": 0.25, "c": 0.5}, {}),
    ]
    diag = off_policy_estimates(_frame(spark, rows), estimators=["ips"], n_bootstrap=0).diagnostics
    assert diag.n == 3
    assert diag.unsupported_mass == pytest.approx(1 / 3, abs=1e-12)
    assert diag.ess == pytest.approx(8 / 3, abs=1e-12)
    assert diag.max_weight == pytest.approx(2.0, abs=1e-12)
    assert diag.mean_weight == pytest.approx(4 / 3, abs=1e-12)
    assert diag.logged_counts == {"a": 2, "b": 1}
    assert diag.target_mass == pytest.approx({"a": 0.75 / 3, "b": 1.25 / 3, "c": 1.0 / 3}, abs=1e-12)


# ---------------------------------------------------------------- bootstrap


def test_poisson_counts_are_poisson_and_deterministic() -> None:
    keys = np.arange(4000, dtype=np.int64) * 7919
    counts = PoissonCounts(seed=11, n_resamples=300)(keys).copy()
    assert counts.mean() == pytest.approx(1.0, abs=0.01)
    assert counts.var() == pytest.approx(1.0, abs=0.02)
    observed = np.bincount(counts.astype(int).ravel(), minlength=5)[:5] / counts.size
    poisson = np.array([math.exp(-1) / math.factorial(k) for k in range(5)])
    assert observed == pytest.approx(poisson, abs=0.003)
    # Depends only on (seed, key, resample): any chunk or order of the same keys gives the same rows.
    again = PoissonCounts(seed=11, n_resamples=300)(keys[::-1][:1000]).copy()
    np.testing.assert_array_equal(again, counts[::-1][:1000])
    other_seed = PoissonCounts(seed=12, n_resamples=300)(keys)
    assert not np.array_equal(other_seed, counts)
    # Resamples of one row, and rows within one resample, are uncorrelated.
    assert abs(np.corrcoef(counts[:, 0], counts[:, 1])[0, 1]) < 0.06
    assert abs(np.corrcoef(counts[0], counts[1])[0, 1]) < 0.2


def test_bootstrap_matches_numpy_resampling(spark: SparkSession, random_rows: list[Row]) -> None:
    rows = random_rows[:800]
    frame = _frame(spark, rows).repartition(3)
    result = off_policy_estimates(
        frame, n_bootstrap=150, seed=42, alpha=0.1, clip=CLIP, switch_tau=TAU, key_col="id"
    )
    # Independent resampling in NumPy with the same counts: key = Spark's xxhash64 of the id.
    hashes = dict(frame.select("id", F.xxhash64("id").alias("h")).toPandas().itertuples(index=False))
    counts = PoissonCounts(seed=42, n_resamples=150)(np.array([hashes[r[0]] for r in rows], dtype=np.int64)).copy()
    w = np.array([r[4].get(r[1], 0.0) / r[3] for r in rows])
    reward = np.array([r[2] for r in rows])
    v_hat = np.array([sum(p * r[5][a] for a, p in r[4].items()) for r in rows])
    res = reward - np.array([r[5][r[1]] for r in rows])
    n_b = counts.sum(axis=0)
    resampled = {
        "ips": counts.T @ (w * reward) / n_b,
        "snips": counts.T @ (w * reward) / (counts.T @ w),
        "clipped_ips": counts.T @ (np.minimum(w, CLIP) * reward) / n_b,
        "dm": counts.T @ v_hat / n_b,
        "dr": counts.T @ (v_hat + w * res) / n_b,
        "sndr": counts.T @ v_hat / n_b + counts.T @ (w * res) / (counts.T @ w),
        "switch_dr": counts.T @ (v_hat + np.where(w <= TAU, w, 0) * res) / n_b,
    }
    for name, values in resampled.items():
        low, high = np.quantile(values, [0.05, 0.95])
        est = result.estimates[name]
        assert (est.ci_low, est.ci_high) == pytest.approx((low, high), abs=1e-9), name
        assert est.std_error == pytest.approx(np.std(values, ddof=1), abs=1e-9)
        assert est.ci_low <= est.value <= est.ci_high, name


def test_bootstrap_is_deterministic_and_narrows_with_more_data(spark: SparkSession) -> None:
    rows = _random_rows(3000, seed=8, floor=0.5)  # weights ≤ 10: no heavy tail to mislead a small sample
    small = _frame(spark, rows[:300])
    large = _frame(spark, rows)
    first = off_policy_estimates(small, n_bootstrap=200, seed=9)
    second = off_policy_estimates(small, n_bootstrap=200, seed=9)
    other = off_policy_estimates(small, n_bootstrap=200, seed=10)
    bigger = off_policy_estimates(large, n_bootstrap=200, seed=9)
    for name in ESTIMATORS:
        a, b = first.estimates[name], second.estimates[name]
        assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high), name
        assert (a.ci_low, a.ci_high) != (other.estimates[name].ci_low, other.estimates[name].ci_high), name
        assert a.ci_low <= a.value <= a.ci_high, name
        big = bigger.estimates[name]
        assert big.ci_low <= big.value <= big.ci_high, name
        # 10× the rows: the interval should shrink by about √10 ≈ 3.2; demand at least 1.8.
        assert (big.ci_high - big.ci_low) < (a.ci_high - a.ci_low) / 1.8, name


def test_key_col_makes_intervals_independent_of_partitioning(spark: SparkSession, random_rows: list[Row]) -> None:
    frame = _frame(spark, random_rows[:400])
    one = off_policy_estimates(frame.coalesce(1), estimators=["snips", "dr"], n_bootstrap=100, seed=3, key_col="id")
    four = off_policy_estimates(frame.repartition(4), estimators=["snips", "dr"], n_bootstrap=100, seed=3, key_col="id")
    for name in ("snips", "dr"):
        assert one.estimates[name].ci_low == pytest.approx(four.estimates[name].ci_low, abs=1e-12)
        assert one.estimates[name].ci_high == pytest.approx(four.estimates[name].ci_high, abs=1e-12)


# ---------------------------------------------------------------- result and settings


def test_result_is_frozen_and_tabular(spark: SparkSession) -> None:
    result = off_policy_estimates(_frame(spark, _hand_rows()), n_bootstrap=20, seed=1, clip=5.0, switch_tau=5.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.alpha = 0.1  # type: ignore[misc]
    table = result.to_pandas()
    assert table["estimator"].tolist() == list(ESTIMATORS)
    assert table["n"].tolist() == [4] * 7
    assert table.to_dict("records") == result.to_rows()
    metrics = result.to_metrics()
    assert metrics["ope_ips_value"] == pytest.approx(2.9, abs=1e-12)
    assert metrics["ope_diag_max_weight"] == pytest.approx(10.0, abs=1e-12)
    assert all(math.isfinite(v) for v in metrics.values())


def test_settings_from_config(tmp_path: Any) -> None:
    default = OpeSettings.from_config(load_config("local"))
    assert default.n_bootstrap == 1000 and default.alpha == 0.05
    cfg = load_config("local", overrides={"evaluation.n_bootstrap": 50, "evaluation.estimators": ["ips", "dr"]})
    settings = OpeSettings.from_config(cfg)
    assert settings.as_kwargs()["n_bootstrap"] == 50 and settings.estimators == ("ips", "dr")
    with pytest.raises(ConfigError, match="evaluation.alpha"):
        OpeSettings.from_config(load_config("local", overrides={"evaluation.alpha": 1.5}))
    with pytest.raises(ConfigError, match="unknown estimator"):
        OpeSettings.from_config(load_config("local", overrides={"evaluation.estimators": ["magic"]}))


# ---------------------------------------------------------------- input errors


def _with(row: Row, **changes: Any) -> Row:
    fields = ["id", "action", "reward", "propensity", "target_probs", "expected_rewards"]
    values = dict(zip(fields, row, strict=True)) | changes
    return tuple(values[f] for f in fields)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"propensity": 0.0}, r"1 of 4 rows: propensity must be in \(0, 1\].*observed range \[0.0, 0.5\]"),
        ({"propensity": 1.5}, r"propensity must be in \(0, 1\]"),
        ({"propensity": None}, r"propensity"),
        ({"reward": None}, r"1 of 4 rows: reward must be a finite number"),
        ({"reward": float("nan")}, r"reward must be a finite number"),
        ({"action": None}, r"action must not be null"),
        ({"target_probs": {"a": 0.3, "b": 0.4}}, r"target_probs must be a probability distribution"),
        ({"target_probs": {"a": -0.5, "b": 1.5}}, r"target_probs must be a probability distribution"),
        ({"target_probs": None}, r"target_probs"),
        ({"expected_rewards": {"b": 0.1}}, r"expected_rewards must give a finite value"),
        ({"expected_rewards": None}, r"expected_rewards must give a finite value"),
    ],
)
def test_bad_rows_raise_value_error(spark: SparkSession, change: dict[str, Any], message: str) -> None:
    rows = _hand_rows()
    rows[0] = _with(rows[0], **change)
    with pytest.raises(ValueError, match=message):
        off_policy_estimates(_frame(spark, rows), n_bootstrap=10)


def test_prediction_missing_only_for_zero_probability_action_is_fine(spark: SparkSession) -> None:
    rows = _hand_rows()
    rows[3] = _with(rows[3], expected_rewards={"b": 0.4})  # π(a) = 0 in row 4, so q̂(a) is not needed
    result = off_policy_estimates(_frame(spark, rows), n_bootstrap=0, clip=5.0, switch_tau=5.0)
    assert result.estimates["dm"].value == pytest.approx(0.425, abs=1e-12)


def test_bad_frames_and_options_raise_value_error(spark: SparkSession) -> None:
    frame = _frame(spark, _hand_rows())
    with pytest.raises(ValueError, match=r"missing column\(s\) 'propensity'"):
        off_policy_estimates(frame.drop("propensity"))
    with pytest.raises(ValueError, match=r"'expected_rewards' \(needed by the model-based"):
        off_policy_estimates(frame.drop("expected_rewards"), estimators=["dr"])
    with pytest.raises(ValueError, match=r"column 'action' must be string, got int"):
        off_policy_estimates(frame.withColumn("action", F.lit(1)))
    with pytest.raises(ValueError, match=r"column 'target_probs' must be map<string,double>"):
        off_policy_estimates(frame.withColumn("target_probs", F.lit("x")))
    with pytest.raises(ValueError, match=r"unknown estimator\(s\) 'magic'"):
        off_policy_estimates(frame, estimators=["ips", "magic"])
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        off_policy_estimates(frame, alpha=1.0)
    with pytest.raises(ValueError, match="n_bootstrap must be a non-negative integer"):
        off_policy_estimates(frame, n_bootstrap=-1)
    with pytest.raises(ValueError, match="clip must be positive"):
        off_policy_estimates(frame, clip=0.0)
    with pytest.raises(ValueError, match="key_col 'nope'"):
        off_policy_estimates(frame, key_col="nope")
    with pytest.raises(ValueError, match="no rows"):
        off_policy_estimates(frame.limit(0), n_bootstrap=0)
