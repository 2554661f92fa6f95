"""Run one function over several tables side by side (erasure, retention and purges share it).

On small Delta tables a search, DELETE or VACUUM is mostly driver latency (log reads, commits, tiny
Spark jobs), so a few at once keep the cores busy. Every item is attempted, and its outcome (result or
exception) is returned in item order, so a caller can finish what succeeded before raising.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def side_by_side(fn: Callable[[T], R], items: Sequence[T], *, workers: int, name: str) -> list[R | Exception]:
    """``fn(item)`` for every item, ``workers`` at a time; each outcome (result or exception) in item order."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))), thread_name_prefix=name) as pool:
        futures = [pool.submit(fn, item) for item in items]
    outcomes: list[R | Exception] = []
    for future in futures:
        error = future.exception()
        if error is not None and not isinstance(error, Exception):
            raise error  # KeyboardInterrupt, SystemExit: not an item's failure
        outcomes.append(future.result() if error is None else error)
    return outcomes


def results(outcomes: Sequence[R | Exception]) -> list[R]:
    """Every result; raises the first failure (in item order) if there was one."""
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
    return [outcome for outcome in outcomes if not isinstance(outcome, Exception)]


__all__ = ["results", "side_by_side"]
