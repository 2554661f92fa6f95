"""Offline validation of job definitions (the SDK's ``from_dict`` is not a validator).

``JobSettings.from_dict`` silently drops unknown keys and unknown enum values, so a typo in a
definition would deploy as a *different* job. :func:`job_problems` therefore round-trips the dict
through the SDK and reports every key or value the SDK would lose, then checks what the API would
reject at deploy time: a name, unique task keys, one runner per task, dependencies that exist and
form no cycle, a compute spec per task, the library a wheel task needs, and the cron schedule.

Example::

    validate_job(job.as_dict())            # raises JobValidationError listing every problem
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from databricks.sdk.service.jobs import JobSettings

__all__ = ["JobValidationError", "cron_problems", "find_cycle", "job_problems", "validate_job", "validate_jobs"]

_TASK_KEY = re.compile(r"^[\w\-.]{1,100}$")
_NO_COMPUTE_TASKS = {"condition_task", "run_job_task", "sql_task", "dbt_cloud_task", "pipeline_task",
                     "dashboard_task", "alert_task", "power_bi_task", "for_each_task"}
_COMPUTE_KEYS = ("job_cluster_key", "new_cluster", "existing_cluster_id", "environment_key", "compute")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class JobValidationError(ValueError):
    """A job definition the workspace would reject or silently change; ``problems`` lists each one."""

    def __init__(self, job: str, problems: Sequence[str]) -> None:
        self.job = job
        self.problems = list(problems)
        super().__init__(f"job {job!r} is invalid:\n  - " + "\n  - ".join(self.problems))


# ---------------------------------------------------------------- round trip through the SDK
def _lost(original: Any, kept: Any, path: str) -> list[str]:
    """Where ``kept`` (the SDK's round trip) differs from ``original``, one message per difference."""
    if isinstance(original, Mapping):
        if not isinstance(kept, Mapping):
            return [f"{path or '<root>'}: expected {type(original).__name__}, the SDK made it {kept!r}"]
        out: list[str] = []
        for key, value in original.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in kept:
                out.append(f"{where}: unknown field or invalid value {value!r} (the SDK drops it silently)")
            else:
                out.extend(_lost(value, kept[key], where))
        out.extend(f"{path}.{key}: added by the SDK" if path else f"{key}: added by the SDK"
                   for key in kept if key not in original)
        return out
    if isinstance(original, list):
        if not isinstance(kept, list) or len(kept) != len(original):
            return [f"{path}: list changed by the SDK ({original!r} → {kept!r})"]
        return [msg for i, (a, b) in enumerate(zip(original, kept, strict=True)) for msg in _lost(a, b, f"{path}[{i}]")]
    if original != kept:
        return [f"{path}: value {original!r} became {kept!r} in the SDK"]
    return []


def _round_trip_problems(job: Mapping[str, Any]) -> list[str]:
    return _lost(job, JobSettings.from_dict(dict(job)).as_dict(), "")


# ---------------------------------------------------------------- cron
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("seconds", 0, 59, ()),
    ("minutes", 0, 59, ()),
    ("hours", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day-of-week", 1, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
    ("year", 1970, 2199, ()),
)
_ATOM = r"(?:\d+|[A-Z]{3})"
_CRON_TOKEN = re.compile(rf"^(?P<range>\*|{_ATOM}(?:-{_ATOM})?)(?:/(?P<step>\d+))?$")
_SPECIAL = re.compile(r"^(?:L(?:-\d+)?|LW|\d+W|\d+L|\d+#[1-5])$")


def _cron_value(atom: str, names: tuple[str, ...], lo: int) -> int | None:
    if atom.isdigit():
        return int(atom)
    return names.index(atom) + lo if atom in names else None


def _cron_field_problems(text: str, name: str, lo: int, hi: int, names: tuple[str, ...]) -> list[str]:
    if text == "?":
        return [] if name in ("day-of-month", "day-of-week") else [f"{name}: '?' is only allowed in day-of-month or day-of-week"]
    out: list[str] = []
    for token in text.upper().split(","):
        if name in ("day-of-month", "day-of-week") and _SPECIAL.match(token):
            continue
        match = _CRON_TOKEN.match(token)
        if match is None:
            out.append(f"{name}: cannot read {token!r}")
            continue
        if match["step"] is not None and int(match["step"]) == 0:
            out.append(f"{name}: step 0 in {token!r}")
        if match["range"] == "*":
            continue
        for atom in match["range"].split("-"):
            value = _cron_value(atom, names, lo)
            if value is None or not lo <= value <= hi:
                out.append(f"{name}: {atom!r} is outside {lo}-{hi}")
    return out


def cron_problems(expression: str) -> list[str]:
    """Problems of a Quartz cron expression (``sec min hour day-of-month month day-of-week [year]``)."""
    fields = expression.split()
    if len(fields) not in (6, 7):
        return [f"quartz cron {expression!r} needs 6 or 7 fields (sec min hour dom month dow [year]), got {len(fields)}"]
    out = [msg for text, spec in zip(fields, _CRON_FIELDS, strict=False) for msg in _cron_field_problems(text, *spec)]
    if (fields[3] == "?") == (fields[5] == "?"):
        out.append("exactly one of day-of-month and day-of-week must be '?'")
    return [f"quartz cron {expression!r}: {msg}" for msg in out]


# ---------------------------------------------------------------- task graph
def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as ``[a, b, ..., a]`` (``edges``: task → tasks it depends on), else ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in edges:
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def _runner_keys(task: Mapping[str, Any]) -> list[str]:
    return [key for key in task if key.endswith("_task")]


def _task_problems(task: Mapping[str, Any], where: str, job: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    runners = _runner_keys(task)
    if len(runners) != 1:
        out.append(f"{where}: needs exactly one runner (python_wheel_task, spark_python_task, ...), found {runners or 'none'}")
    needs_compute = not runners or runners[0] not in _NO_COMPUTE_TASKS
    compute = [key for key in _COMPUTE_KEYS if task.get(key)]
    if needs_compute and not compute:
        out.append(f"{where}: no compute spec (job_cluster_key, new_cluster, existing_cluster_id or environment_key)")
    if len(compute) > 1:
        out.append(f"{where}: more than one compute spec {compute}")
    cluster_keys = {c.get("job_cluster_key") for c in job.get("job_clusters") or []}
    if task.get("job_cluster_key") and task["job_cluster_key"] not in cluster_keys:
        out.append(f"{where}: job_cluster_key {task['job_cluster_key']!r} is not in job_clusters {sorted(cluster_keys)}")
    env_keys = {e.get("environment_key") for e in job.get("environments") or []}
    if task.get("environment_key") and task["environment_key"] not in env_keys:
        out.append(f"{where}: environment_key {task['environment_key']!r} is not in environments")
    wheel = task.get("python_wheel_task")
    if wheel is not None:
        out += [f"{where}.python_wheel_task: {key} is required" for key in ("package_name", "entry_point") if not wheel.get(key)]
        if not task.get("environment_key") and not any(lib.get("whl") for lib in task.get("libraries") or []):
            out.append(f"{where}: a python_wheel_task on a cluster needs a 'whl' library")
    spark_python = task.get("spark_python_task")
    if spark_python is not None and not spark_python.get("python_file"):
        out.append(f"{where}.spark_python_task: python_file is required")
    return out


def _graph_problems(tasks: Sequence[Mapping[str, Any]]) -> list[str]:
    out: list[str] = []
    keys = [t.get("task_key") for t in tasks]
    for i, key in enumerate(keys):
        if not key or not _TASK_KEY.match(str(key)):
            out.append(f"tasks[{i}]: task_key {key!r} must be 1-100 letters, digits, '_', '-' or '.'")
    duplicates = sorted({k for k in keys if k and keys.count(k) > 1})
    if duplicates:
        out.append(f"duplicate task_key(s): {', '.join(duplicates)}")
    known = {k for k in keys if k}
    conditions = {t.get("task_key") for t in tasks if "condition_task" in t}
    edges: dict[str, list[str]] = {}
    for task in tasks:
        key = str(task.get("task_key"))
        for dep in task.get("depends_on") or []:
            upstream = dep.get("task_key")
            if upstream not in known:
                out.append(f"task {key!r} depends on {upstream!r}, which is not a task of this job "
                           f"(tasks: {', '.join(sorted(known))})")
            if dep.get("outcome") is not None and upstream not in conditions:
                out.append(f"task {key!r}: outcome {dep['outcome']!r} on {upstream!r}, which is not a condition_task")
            edges.setdefault(key, []).append(str(upstream))
    cycle = find_cycle(edges)
    if cycle is not None:
        out.append(f"dependency cycle: {' → '.join(cycle)}")
    return out


def _schedule_problems(schedule: Mapping[str, Any]) -> list[str]:
    out = cron_problems(str(schedule.get("quartz_cron_expression") or ""))
    zone = schedule.get("timezone_id")
    if not zone:
        out.append("schedule.timezone_id is required")
    else:
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            out.append(f"schedule.timezone_id: unknown time zone {zone!r}")
    return out


def _notification_problems(job: Mapping[str, Any]) -> list[str]:
    notes = job.get("email_notifications") or {}
    return [f"email_notifications.{kind}: {addr!r} is not an e-mail address"
            for kind, addrs in notes.items() if isinstance(addrs, list) for addr in addrs if not _EMAIL.match(str(addr))]


def job_problems(job: Mapping[str, Any]) -> list[str]:
    """Every problem of one job definition (REST/JSON form); empty when it is valid."""
    out = _round_trip_problems(job)
    if not job.get("name"):
        out.append("name is required (deploy finds jobs by name)")
    tasks = job.get("tasks") or []
    if not tasks:
        out.append("tasks: at least one task is required")
    out += _graph_problems(tasks)
    for i, task in enumerate(tasks):
        out += _task_problems(task, f"tasks[{i}] ({task.get('task_key')})", job)
    if job.get("schedule"):
        out += _schedule_problems(job["schedule"])
    out += _notification_problems(job)
    return out


def validate_job(job: Mapping[str, Any]) -> None:
    """Raise :class:`JobValidationError` listing every problem of ``job``."""
    problems = job_problems(job)
    if problems:
        raise JobValidationError(str(job.get("name") or "<unnamed>"), problems)


def validate_jobs(jobs: Sequence[Mapping[str, Any]]) -> None:
    """Validate each job, and that no two share a name (deploy matches jobs by name)."""
    names = [j.get("name") for j in jobs]
    duplicates = sorted({str(n) for n in names if names.count(n) > 1})
    if duplicates:
        raise JobValidationError(", ".join(duplicates), ["two job definitions share this name"])
    for job in jobs:
        validate_job(job)
