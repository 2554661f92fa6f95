"""Benchmark: off-policy evaluation with a Poisson bootstrap on synthetic logged data.

Generates ``n_rows`` logged decisions over 13 actions in Spark (``spark.range`` + column
expressions: softmax logging and target policies, a noisy reward model), writes them once to
``.bench/ope_<rows>.parquet`` so both timings read the same input, then times in one run:

* ``baseline``: every estimator's point estimates and diagnostics only (``n_bootstrap=0``);
* ``full``: the same plus ``n_bootstrap`` Poisson-bootstrap resamples,

after an untimed warm-up on a slice (JVM JIT, Python workers).

Their ratio is the bootstrap's cost. Usage::

    python -m bench.bench_ope --rows 1000000 --bootstrap 100
"""

from __future__ import annotations

import argparse
import json
import time

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.config import PROJECT_ROOT
from nurture_lake.evaluation import off_policy_estimates
from nurture_lake.spark import get_spark

ACTIONS: tuple[str, ...] = ("hold",) + tuple(f"{c}@{w}" for c in ("email", "push", "chat") for w in ("4h", "1d", "3d", "7d"))
"""The 13 actions of the default action space."""
BENCH_DIR = PROJECT_ROOT / ".bench"


def _softmax(logits: list[Column], floor: float) -> list[Column]:
    """Softmax mixed with a uniform exploration floor, so every probability is at least ``floor / k``."""
    exps = [F.exp(x) for x in logits]
    total = exps[0]
    for e in exps[1:]:
        total = total + e
    k = len(logits)
    return [(1 - floor) * e / total + floor / k for e in exps]


def synthetic_logged(spark: SparkSession, n_rows: int, *, seed: int = 11) -> DataFrame:
    """``n_rows`` logged decisions: id, action, reward, propensity, target_probs, expected_rewards."""
    k = len(ACTIONS)
    base = spark.range(n_rows).select(
        F.col("id"),
        *(F.rand(seed + j).alias(f"x{j}") for j in range(k)),
        F.rand(seed + 100).alias("u"),
        F.randn(seed + 101).alias("noise"),
    )
    truth = [F.lit(0.2 + 0.05 * j) + 0.5 * F.col(f"x{j}") for j in range(k)]
    model = [t + 0.1 * (F.col(f"x{(j + 1) % k}") - 0.5) for j, t in enumerate(truth)]
    mu = _softmax([2.0 * F.col(f"x{j}") for j in range(k)], floor=0.2)
    pi = _softmax([4.0 * t for t in truth], floor=0.05)
    # Sample the logged action by inverting the logging policy's CDF at u.
    chosen: Column = F.lit(k - 1)
    cumulative = [mu[0]]
    for j in range(1, k):
        cumulative.append(cumulative[-1] + mu[j])
    for j in reversed(range(k - 1)):
        chosen = F.when(F.col("u") < cumulative[j], F.lit(j)).otherwise(chosen)
    with_choice = base.select(
        "id",
        "noise",
        chosen.alias("j"),
        F.array(*mu).alias("mu"),
        F.array(*truth).alias("truth"),
        F.create_map(*[item for j, a in enumerate(ACTIONS) for item in (F.lit(a), pi[j])]).alias("target_probs"),
        F.create_map(*[item for j, a in enumerate(ACTIONS) for item in (F.lit(a), model[j])]).alias("expected_rewards"),
    )
    return with_choice.select(
        "id",
        F.element_at(F.array(*map(F.lit, ACTIONS)), F.col("j") + 1).alias("action"),
        (F.element_at("truth", F.col("j") + 1) + F.col("noise")).alias("reward"),
        F.element_at("mu", F.col("j") + 1).alias("propensity"),
        "target_probs",
        "expected_rewards",
    )


def _materialise(spark: SparkSession, n_rows: int) -> DataFrame:
    path = BENCH_DIR / f"ope_{n_rows}.parquet"
    if not (path / "_SUCCESS").exists():
        print(f"  writing {n_rows:,} synthetic logged rows to {path} (kept for later runs)", flush=True)
        synthetic_logged(spark, n_rows).write.mode("overwrite").parquet(str(path))
    return spark.read.parquet(str(path))


def _timed(logged: DataFrame, n_bootstrap: int) -> tuple[float, dict[str, dict[str, float]]]:
    start = time.perf_counter()
    result = off_policy_estimates(logged, n_bootstrap=n_bootstrap, seed=1, key_col="id")
    seconds = time.perf_counter() - start
    table = {
        name: {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high, "ess": e.ess}
        for name, e in result.estimates.items()
    }
    return seconds, table


def run(n_rows: int = 10_000_000, n_bootstrap: int = 1000) -> dict[str, object]:
    """Time point estimates alone and with ``n_bootstrap`` resamples on ``n_rows`` rows; print and return."""
    spark = get_spark(app_name="bench_ope")
    logged = _materialise(spark, n_rows)
    _timed(logged.limit(min(n_rows, 50_000)), min(n_bootstrap, 10))  # warm-up: JIT, Python workers
    baseline_s, _ = _timed(logged, 0)
    print(f"  point estimates on {n_rows:,} rows: {baseline_s:.1f} s; now with {n_bootstrap:,} resamples", flush=True)
    full_s, estimates = _timed(logged, n_bootstrap)
    print(f"  with {n_bootstrap:,} resamples: {full_s:.1f} s", flush=True)
    report: dict[str, object] = {
        "n_rows": n_rows,
        "n_bootstrap": n_bootstrap,
        "n_actions": len(ACTIONS),
        "baseline_point_only_s": round(baseline_s, 3),
        "baseline_rows_per_s": round(n_rows / baseline_s),
        "full_with_bootstrap_s": round(full_s, 3),
        "full_rows_per_s": round(n_rows / full_s),
        "bootstrap_cost_ratio": round(full_s / baseline_s, 2),
        "row_resamples_per_s": round(n_rows * n_bootstrap / max(full_s - baseline_s, 1e-9)),
        "estimates": estimates,
    }
    print(json.dumps(report, indent=2))
    return report


def bench(scale: float = 1.0) -> dict[str, object]:
    """``make bench`` entry: 10M rows × 1000 resamples at scale 1."""
    return run(int(10_000_000 * scale), n_bootstrap=1000)


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.bench_ope --rows N --bootstrap B``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="logged rows (default 10,000,000)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    args = parser.parse_args(argv)
    run(args.rows, args.bootstrap)


if __name__ == "__main__":
    main()
