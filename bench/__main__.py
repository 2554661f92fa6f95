"""``make bench``: run every benchmark and print its figures and ratios.

Each benchmark measures a baseline in the same run (e.g. a bare JSON → Delta copy for ingest), so
the ratios do not depend on the machine. Sizes default to the issue targets; ``--scale 0.1`` runs a
smaller pass. Results are also written to ``.bench/results.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import Any

BENCHES: dict[str, str] = {
    "ingest": "bench.bench_ingest",
    "dedup": "bench.bench_dedup",
    "identity": "bench.bench_identity",
    "features": "bench.bench_features",
    "train": "bench.bench_train",
    "ope": "bench.bench_ope",
    "kafka": "bench.bench_kafka",
    "scoring": "bench.bench_scoring",
    "policy": "bench.bench_policy_quality",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", choices=sorted(BENCHES), help="run only these (repeatable)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every default size (e.g. 0.1)")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for name in args.only or list(BENCHES):
        try:
            module = importlib.import_module(BENCHES[name])
        except ModuleNotFoundError as exc:
            print(f"== {name}: not available ({exc})")
            continue
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        results[name] = module.bench(scale=args.scale)
        print(f"== {name}: done in {time.perf_counter() - started:.1f} s", flush=True)
    out = Path(".bench") / "results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
