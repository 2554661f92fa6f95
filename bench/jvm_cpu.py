"""Where a benchmark's CPU goes in the driver JVM: Spark tasks, JIT compilation, garbage collection.

A benchmark that compares two runs in one process (ingest against a bare copy) reports wall times;
on a 2-core machine both cores are busy in both runs, so a wall-time ratio is a CPU ratio, and this
splits it. It reads the CPU time of every JVM thread from ``/proc`` and groups the threads by name,
so it works for a local session on Linux (the JVM PySpark launched); elsewhere :func:`sample`
returns ``None``. The JVM's own ``CompilationMXBean`` is not used: it reports the compiler threads'
elapsed time, which overstates their CPU when the cores are oversubscribed (55.4 s in one 1M-event
ingest run; the compiler threads' CPU, read here, was 31–35 s in the runs around it).

Example::

    before = sample(spark)
    run_something()
    print(since(spark, before))  # {'cpu_s': 106.0, 'tasks_s': 50.6, 'jit_s': 32.3, 'gc_s': 10.9, 'other_s': 12.2}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

THREAD_GROUPS: dict[str, tuple[str, ...]] = {
    "tasks_s": ("Executor task",),
    "jit_s": ("C1 CompilerThre", "C2 CompilerThre"),
    # With the serial collector the collections run on the VM thread; parallel and G1 have their own.
    "gc_s": ("VM Thread", "GC Thread", "G1 "),
}
"""Thread-name prefixes (as ``/proc`` shows them, cut to 15 characters) of each group."""


@dataclass(frozen=True)
class JvmCpu:
    """Cumulative CPU seconds (user + system) of the driver JVM at one moment."""

    total_s: float
    """The whole process, threads that have ended included."""
    threads: dict[int, tuple[str, float]]
    """Thread id → (:data:`THREAD_GROUPS` key, CPU seconds) of the live threads in a group."""


def _cpu_s(stat_file: Path) -> float:
    """User + system CPU seconds from a ``/proc`` ``stat`` file (fields 14 and 15)."""
    fields = stat_file.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _group(thread_name: str) -> str | None:
    for group, prefixes in THREAD_GROUPS.items():
        if thread_name.startswith(prefixes):
            return group
    return None


def _jvm_pid(spark: SparkSession) -> int | None:
    """The pid of the local JVM that PySpark launched, or ``None`` (e.g. Spark Connect, a cluster)."""
    gateway = getattr(spark.sparkContext, "_gateway", None)
    return getattr(getattr(gateway, "proc", None), "pid", None)


def sample(spark: SparkSession) -> JvmCpu | None:
    """The driver JVM's CPU counters now, or ``None`` where ``/proc`` or the JVM's pid is not available."""
    pid = _jvm_pid(spark)
    root = Path(f"/proc/{pid}")
    if pid is None or not root.is_dir():
        return None
    threads: dict[int, tuple[str, float]] = {}
    for task in (root / "task").iterdir():
        try:
            group = _group((task / "comm").read_text().strip())
            if group is not None:
                threads[int(task.name)] = (group, _cpu_s(task / "stat"))
        except OSError:  # the thread ended while we looked
            continue
    return JvmCpu(total_s=_cpu_s(root / "stat"), threads=threads)


def since(spark: SparkSession, before: JvmCpu | None) -> dict[str, float] | None:
    """CPU seconds the JVM spent since ``before``: in total, per thread group, and ``other_s`` (the rest:
    driver, scheduler, Delta commits, threads that ended); ``None`` where :func:`sample` gives none."""
    now = sample(spark)
    if now is None or before is None:
        return None
    spent = dict.fromkeys(THREAD_GROUPS, 0.0)
    for tid, (group, seconds) in now.threads.items():  # a thread that ended in between counts as other
        spent[group] += seconds - before.threads.get(tid, (group, 0.0))[1]
    total = now.total_s - before.total_s
    return {
        "cpu_s": round(total, 1),
        **{group: round(seconds, 1) for group, seconds in spent.items()},
        "other_s": round(total - sum(spent.values()), 1),
    }
