"""The training-throughput benchmark (bench/bench_train.py) at a tiny size."""

from __future__ import annotations

from pyspark.sql import SparkSession

from bench import bench_train


def test_train_benchmark_recovers_the_synthetic_world_and_reports_its_baseline(spark: SparkSession) -> None:
    result = bench_train.run(4_000, d=6, k=4, repeats=1)
    assert (result["rows"], result["dim"], result["actions"]) == (4_000, 6, 4)
    fit = result["spark_fit"]
    assert fit["max_abs_weight_error"] < 0.2  # 1,000 rows an action, unit noise
    assert fit["best_action_accuracy"] > 0.9
    assert fit["examples_per_s"] == 4_000 / min(fit["seconds"])
    vw = result["vowpal_wabbit"]
    if vw["available"]:  # the optional bench extra is installed
        assert vw["best_action_accuracy"] > 0.5
        assert result["spark_vs_vw_speedup"] == fit["examples_per_s"] / vw["examples_per_s"]
    else:
        assert vw["error"].startswith(("ImportError", "ModuleNotFoundError")) and "spark_vs_vw_speedup" not in result
