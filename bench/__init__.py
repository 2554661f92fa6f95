"""Benchmarks: each module has ``run(...) -> dict`` and prints figures with a same-run baseline."""
