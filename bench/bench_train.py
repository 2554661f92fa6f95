"""Benchmark: examples/s of the distributed bandit fit vs Vowpal Wabbit ``--cb_explore_adf``, same data, same run.

Synthetic logged decisions (uniform logging over ``k`` actions, a known linear reward per action)
are generated once with numpy and written to Parquet; the Spark fit reads them (sufficient
statistics over the cluster + per-action solves on the driver) and VW learns the very same rows
(``--cb_explore_adf`` with shared×action interactions, i.e. a per-action linear model, cost = −reward).
Both are also scored on the best-action accuracy of their greedy choice for held-out contexts.

Run: ``python -m bench.bench_train --rows 200000`` (``vowpalwabbit`` is the optional ``bench`` extra;
without it the VW baseline is reported as unavailable with the import error).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nurture_lake.config import PROJECT_ROOT
from nurture_lake.policy import fit_linear_bandit, sufficient_statistics
from nurture_lake.spark import get_spark


def synthetic_logged(n: int, *, d: int = 10, k: int = 13, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` logged decisions: contexts (bias first), uniformly logged actions, rewards, the true weights."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(scale=0.5, size=(k, d))
    x = np.c_[np.ones(n), rng.normal(size=(n, d - 1))]
    a = rng.integers(0, k, n)
    r = np.einsum("nd,nd->n", x, theta[a]) + rng.normal(size=n)
    return {"x": x, "a": a, "r": r, "theta": theta, "p": np.full(n, 1.0 / k)}


def _write_parquet(data: dict[str, np.ndarray], action_ids: list[str], folder: Path, files: int = 8) -> None:
    """One Parquet file per chunk, so Spark reads ``files`` partitions in parallel."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, d = data["x"].shape
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, n, files + 1).astype(int)
    for part, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        flat = pa.array(data["x"][start:stop].ravel())
        table = pa.table({
            "decision_id": pa.array([f"b{i}" for i in range(start, stop)]),
            "context": pa.FixedSizeListArray.from_arrays(flat, d).cast(pa.list_(pa.float64())),
            "action": pa.array([action_ids[i] for i in data["a"][start:stop]]),
            "propensity": pa.array(data["p"][start:stop]),
            "reward": pa.array(data["r"][start:stop]),
        })
        pq.write_table(table, folder / f"part-{part:03d}.parquet")


def _accuracy(chosen: np.ndarray, x_test: np.ndarray, theta: np.ndarray) -> float:
    return float(np.mean(chosen == np.argmax(x_test @ theta.T, axis=1)))


def _vw_lines(x: np.ndarray, action: int | None, reward: float, prob: float, k: int) -> list[str]:
    shared = "shared |s " + " ".join(f"f{j}:{v:.6g}" for j, v in enumerate(x))
    lines = [shared]
    for i in range(k):
        label = f"0:{-reward:.6g}:{prob:.6g} " if action == i else ""
        lines.append(f"{label}|a a{i}")
    return lines


def bench_vw(data: dict[str, np.ndarray], x_test: np.ndarray) -> dict[str, Any]:
    """Vowpal Wabbit ``--cb_explore_adf`` on the same rows (Python API), or why it is unavailable."""
    try:
        from vowpalwabbit import Workspace
    except ImportError as exc:  # the optional bench extra is missing
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"}
    n, k = len(data["r"]), data["theta"].shape[0]
    t0 = time.perf_counter()
    examples = [_vw_lines(data["x"][i], int(data["a"][i]), float(data["r"][i]), float(data["p"][i]), k)
                for i in range(n)]
    format_s = time.perf_counter() - t0
    vw = Workspace("--cb_explore_adf --epsilon 0.05 -q sa --quiet")
    t0 = time.perf_counter()
    for ex in examples:
        vw.learn(ex)
    learn_s = time.perf_counter() - t0
    chosen = []
    for x in x_test:
        pmf = vw.predict(_vw_lines(x, None, 0.0, 1.0, k))
        chosen.append(int(np.argmax(pmf)))
    vw.finish()
    return {
        "available": True, "learn_seconds": learn_s, "format_seconds": format_s,
        "examples_per_s": n / learn_s, "examples_per_s_incl_format": n / (learn_s + format_s),
        "best_action_accuracy": _accuracy(np.asarray(chosen), x_test, data["theta"]),
    }


def run(n: int = 1_000_000, *, d: int = 10, k: int = 13, seed: int = 0, vw: bool = True, repeats: int = 2) -> dict[str, Any]:
    """Time the distributed fit (best of ``repeats``) and, if available, VW on the same ``n`` rows."""
    spark = get_spark(app_name="nurture_lake.bench_train")
    data = synthetic_logged(n, d=d, k=k, seed=seed)
    action_ids = [f"a{i}" for i in range(k)]
    x_test = np.c_[np.ones(2000), np.random.default_rng(seed + 1).normal(size=(2000, d - 1))]
    result: dict[str, Any] = {"rows": n, "dim": d, "actions": k, "cores": spark.sparkContext.defaultParallelism}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logged.parquet"
        _write_parquet(data, action_ids, path)
        timings = []
        for _ in range(repeats):
            df = spark.read.parquet(str(path))
            t0 = time.perf_counter()
            stats = sufficient_statistics(df, action_ids=action_ids)
            policy = fit_linear_bandit(stats, ridge_lambda=1.0)
            timings.append(time.perf_counter() - t0)
        best = min(timings)
        chosen = np.argmax(policy.expected_rewards(x_test), axis=1)
        result["spark_fit"] = {
            "seconds": timings, "examples_per_s": n / best,
            "best_action_accuracy": _accuracy(chosen, x_test, data["theta"]),
            "max_abs_weight_error": float(np.abs(policy.theta - data["theta"]).max()),
        }
    fit = result["spark_fit"]
    print(f"  d={d}: distributed fit of {n:,} rows in {', '.join(f'{t:.2f}' for t in timings)} s "
          f"→ {fit['examples_per_s']:,.0f} examples/s, best-action accuracy {fit['best_action_accuracy']:.3f}", flush=True)
    if vw:
        result["vowpal_wabbit"] = vw_result = bench_vw(data, x_test)
        if vw_result.get("available"):
            result["spark_vs_vw_speedup"] = fit["examples_per_s"] / vw_result["examples_per_s"]
            print(f"  d={d}: Vowpal Wabbit learned in {vw_result['learn_seconds']:.1f} s (+{vw_result['format_seconds']:.1f} s "
                  f"formatting) → {vw_result['examples_per_s']:,.0f} examples/s, best-action accuracy "
                  f"{vw_result['best_action_accuracy']:.3f}; ratio {result['spark_vs_vw_speedup']:.2f}", flush=True)
        else:
            print(f"  d={d}: Vowpal Wabbit not available ({vw_result['error']})", flush=True)
    return result


def product_context_length() -> int:
    """Slots of the context vector the default feature configuration builds (``conf/local.yaml``)."""
    from nurture_lake.config import load_config
    from nurture_lake.features import FeatureSettings, context_columns

    cfg = load_config("local")
    return len(context_columns(FeatureSettings.from_config(cfg), regions=list(cfg.regions)))


def bench(scale: float = 1.0) -> list[dict[str, Any]]:
    """``make bench`` entry: 1M logged decisions, the distributed fit vs Vowpal Wabbit, with 10 features and with
    the product's context length."""
    return [run(int(1_000_000 * scale), d=d) for d in (10, product_context_length())]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_train", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="logged decisions (default 1,000,000)")
    parser.add_argument("--dim", type=int, nargs="+", default=[10],
                        help="context lengths incl. bias, one run each (default 10; the product's is "
                             f"{product_context_length()})")
    parser.add_argument("--actions", type=int, default=13, help="number of actions (default 13)")
    parser.add_argument("--no-vw", action="store_true", help="skip the Vowpal Wabbit baseline")
    args = parser.parse_args(argv)
    results = [run(args.rows, d=d, k=args.actions, vw=not args.no_vw) for d in args.dim]
    out = PROJECT_ROOT / ".bench" / "bench_train.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

