"""Executor task time per Spark job group: what each step of a run cost, apart from what it waited for.

A step's wall time (the ingest benchmark's ``step_s``) counts waiting as well as work. Every region's
ingest query runs side by side on the same cores, so a step's one-task job can sit behind the other
region's long tasks: in one 1M-event run a silver snapshot read of two tasks took 8.4 s of wall time
inside the ``duplicates`` step. The executor run time of a step's tasks does not include that wait.

The figures come from the session's status store (the data behind the Spark UI and its REST API,
kept even with the UI off), read through the JVM gateway. It retains the latest
``spark.ui.retainedJobs`` jobs and ``spark.ui.retainedStages`` stages (1,000 each by default); when it has
dropped a job or a stage that ran between :func:`last_job_id` and :func:`by_job_group`, the run is
reported as incomplete rather than undercounted.
Where the gateway is not there (Spark Connect) both return ``None``.

Example::

    before = last_job_id(spark)
    run_something()                      # under spark.sparkContext.setJobGroup("load.clean", ...)
    by_job_group(spark, after=before)    # {'load.clean': TaskTime(run_s=12.4, cpu_s=9.8)}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from pyspark.sql import SparkSession

NO_GROUP = ""
"""The key of jobs run outside any job group."""


@dataclass(frozen=True)
class TaskTime:
    """Summed over the tasks of some jobs: executor run time and executor CPU time, in seconds."""

    run_s: float
    cpu_s: float

    def __add__(self, other: TaskTime) -> TaskTime:
        return TaskTime(self.run_s + other.run_s, self.cpu_s + other.cpu_s)


class IncompleteHistory(RuntimeError):
    """The status store no longer holds every job since the mark, or every stage they ran (more ran than it retains)."""


def _store(spark: SparkSession) -> Any | None:
    try:
        return spark.sparkContext._jsc.sc().statusStore()  # type: ignore[union-attr]
    except Exception:  # Spark Connect has no JVM gateway; a changed internal API is not fatal either
        return None


class _Job(NamedTuple):
    job_id: int
    group: str
    stage_ids: list[int]
    stages_completed: int
    """Stages that ran to completion; the job's other stages were skipped (or failed)."""


def _jobs(store: Any) -> list[_Job]:
    """Every job the store holds, with its job group (or :data:`NO_GROUP`)."""
    out = []
    jobs = store.jobsList(None).iterator()
    while jobs.hasNext():
        job = jobs.next()
        group = job.jobGroup()
        stage_ids = job.stageIds()
        out.append(_Job(
            int(job.jobId()),
            str(group.get()) if group.isDefined() else NO_GROUP,
            [int(stage_ids.apply(i)) for i in range(stage_ids.size())],
            int(job.numCompletedStages()),
        ))
    return out


def _stage_times(spark: SparkSession, store: Any) -> dict[int, tuple[TaskTime, bool]]:
    """Stage id → (task time over all its attempts, whether it ran: a skipped stage ran no task)."""
    gateway = spark.sparkContext._gateway  # type: ignore[attr-defined]
    no_quantiles = gateway.new_array(gateway.jvm.double, 0)
    times: dict[int, tuple[TaskTime, bool]] = {}
    stages = store.stageList(None, False, False, no_quantiles, None).iterator()
    while stages.hasNext():
        stage = stages.next()
        spent = TaskTime(stage.executorRunTime() / 1e3, stage.executorCpuTime() / 1e9)
        ran = stage.status().toString() != "SKIPPED"
        before, ran_before = times.get(int(stage.stageId()), (TaskTime(0.0, 0.0), False))
        times[int(stage.stageId())] = (before + spent, ran or ran_before)
    return times


def last_job_id(spark: SparkSession) -> int | None:
    """The highest job id so far (-1 before the first job); the mark :func:`by_job_group` counts from."""
    store = _store(spark)
    if store is None:
        return None
    return max((job.job_id for job in _jobs(store)), default=-1)


def by_job_group(spark: SparkSession, *, after: int | None) -> dict[str, TaskTime] | None:
    """Task time of the jobs with an id above ``after`` (finished ones), summed per job group.

    Raises :class:`IncompleteHistory` when the store has dropped some of those jobs, or a stage of
    theirs that ran. (It drops skipped stages first, and those ran nothing, so they are not missed.)
    """
    if after is None:  # no mark: the session had no gateway
        return None
    store = _store(spark)
    if store is None:
        return None
    jobs = [job for job in _jobs(store) if job.job_id > after]
    held = {job.job_id for job in jobs}
    if jobs and held != set(range(after + 1, max(held) + 1)):
        raise IncompleteHistory(
            f"the status store holds {len(held)} of the {max(held) - after} jobs since job {after}; "
            "raise spark.ui.retainedJobs and spark.ui.retainedStages"
        )
    stages = _stage_times(spark, store)
    totals: dict[str, TaskTime] = {}
    for job in jobs:
        present = [stages[stage_id] for stage_id in job.stage_ids if stage_id in stages]
        if sum(ran for _, ran in present) < job.stages_completed:
            raise IncompleteHistory(
                f"the status store no longer holds every stage job {job.job_id} ran; raise spark.ui.retainedStages"
            )
        for spent, _ in present:
            totals[job.group] = totals.get(job.group, TaskTime(0.0, 0.0)) + spent
    return totals
