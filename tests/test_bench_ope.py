"""The OPE benchmark's synthetic logged data (bench/bench_ope.py): logged with the propensities it states."""

from __future__ import annotations

import numpy as np
from pyspark.sql import SparkSession

from bench import bench_ope
from nurture_lake.evaluation import off_policy_estimates


def _true_target_value(n: int = 2_000_000, seed: int = 0) -> float:
    """The target policy's value by Monte Carlo over the generator's contexts (13 uniform draws a row), in numpy."""
    k = len(bench_ope.ACTIONS)
    x = np.random.default_rng(seed).random((n, k))
    truth = 0.2 + 0.05 * np.arange(k) + 0.5 * x
    logits = 4.0 * truth
    soft = np.exp(logits - logits.max(axis=1, keepdims=True))
    pi = 0.95 * soft / soft.sum(axis=1, keepdims=True) + 0.05 / k
    return float((pi * truth).sum(axis=1).mean())  # 0.9333, Monte Carlo error ~5e-5


def test_estimates_on_the_benchmark_data_find_the_target_policys_true_value(spark: SparkSession) -> None:
    logged = bench_ope.synthetic_logged(spark, 100_000)
    result = off_policy_estimates(logged, estimators=["ips", "snips", "dm", "dr"], n_bootstrap=20, seed=1, key_col="id")
    truth = _true_target_value()
    for name, estimate in result.estimates.items():
        # A wrong logged propensity would bias IPS and SNIPS; a wrong reward model DM. ~4 standard errors at most.
        assert abs(estimate.value - truth) < 0.03, (name, estimate.value, truth)
        assert estimate.ci_low <= estimate.value <= estimate.ci_high and estimate.ess > 0
