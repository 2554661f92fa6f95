"""The Databricks jobs as code: declared task graphs → ``databricks.sdk`` ``JobSettings``.

Tasks are declared here by job *name* (the ``nurture-lake <job>`` sub-command), not by importing
the job modules, so a definition never depends on a job module being importable on this machine.

Example::

    for job in job_definitions(DeploySettings()):
        print(job.name, [t.task_key for t in job.tasks])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from databricks.sdk.service import compute, jobs

from nurture_lake.deploy.settings import ClusterSettings, DeploySettings

__all__ = [
    "DECLARED_JOBS",
    "JobDecl",
    "TaskDecl",
    "job_definitions",
    "job_dicts",
]

_RETENTION_GATE = "retention_due"


@dataclass(frozen=True)
class TaskDecl:
    """One task: the ``nurture-lake`` sub-command it runs, its extra arguments and upstream tasks."""

    key: str
    """Task key, unique within the job."""
    job: str
    """Sub-command (a key of ``nurture_lake.jobs.JOBS``)."""
    args: tuple[str, ...] = ()
    """Arguments after ``--env``."""
    depends_on: tuple[str, ...] = ()
    """Task keys that must succeed first."""
    gated_by_retention: bool = False
    """Runs only in the daily retention hour (behind the ``retention_due`` condition task)."""


@dataclass(frozen=True)
class JobDecl:
    """One workflow: which :class:`JobNames` field names it, its tasks, cluster and schedule."""

    kind: str
    """``streaming`` | ``learning`` | ``governance`` (field of ``DeploySettings.names``)."""
    description: str
    tasks: tuple[TaskDecl, ...]
    cluster_key: str
    """Job cluster key; ``learning`` uses ``DeploySettings.learning_cluster``."""


DECLARED_JOBS: tuple[JobDecl, ...] = (
    JobDecl(
        kind="streaming",
        description="Perception and action: landing events → silver → identity → features → decisions "
                    "(each task drains what is new with availableNow).",
        tasks=(
            TaskDecl("ingest", "ingest", ("--once",)),
            TaskDecl("identity", "identity", depends_on=("ingest",)),
            TaskDecl("features", "features", depends_on=("identity",)),
            TaskDecl("score", "score", ("--once",), depends_on=("features",)),
        ),
        cluster_key="nurture_lake_etl",
    ),
    JobDecl(
        kind="learning",
        description="Learning: close reward windows, train the challenger, gate its promotion off-policy.",
        tasks=(
            TaskDecl("attribute", "attribute"),
            TaskDecl("train", "train", ("--phase", "all"), depends_on=("attribute",)),
            TaskDecl("promote", "promote", depends_on=("train",)),
        ),
        cluster_key="nurture_lake_ml",
    ),
    JobDecl(
        kind="governance",
        description="Governance: hourly monitoring; daily erasure/retention and the guardrail invariant replay.",
        tasks=(
            TaskDecl("monitor", "monitor"),
            TaskDecl("retain", "retain", gated_by_retention=True),
            TaskDecl("check_guardrails", "check-guardrails", gated_by_retention=True),
        ),
        cluster_key="nurture_lake_etl",
    ),
)
"""Every workflow and its task graph (pipeline order)."""


def _cluster_spec(c: ClusterSettings, settings: DeploySettings) -> compute.ClusterSpec:
    autoscale = None
    if c.autoscale_max_workers is not None:
        autoscale = compute.AutoScale(min_workers=c.autoscale_min_workers or 1, max_workers=c.autoscale_max_workers)
    return compute.ClusterSpec(
        spark_version=c.spark_version,
        node_type_id=c.node_type_id,
        num_workers=None if autoscale else c.num_workers,
        autoscale=autoscale,
        data_security_mode=compute.DataSecurityMode(c.data_security_mode),
        spark_conf=dict(c.spark_conf) or None,
        spark_env_vars={var: f"{{{{secrets/{ref}}}}}" for var, ref in settings.secret_env.items()} or None,
        custom_tags=dict(settings.tags) or None,
    )


def _parameters(task: TaskDecl, settings: DeploySettings) -> list[str]:
    return ["--env", settings.target_env, *task.args]


def _runner(task: TaskDecl, settings: DeploySettings) -> dict[str, Any]:
    if settings.task_kind == "python_wheel":
        return {
            "python_wheel_task": jobs.PythonWheelTask(
                package_name=settings.package_name, entry_point=settings.entry_point,
                parameters=[task.job, *_parameters(task, settings)],
            ),
            "libraries": [compute.Library(whl=settings.wheel_path)],
        }
    root = settings.jobs_root.rstrip("/")
    return {
        "spark_python_task": jobs.SparkPythonTask(
            python_file=f"{root}/jobs/{task.job.replace('-', '_')}.py", parameters=_parameters(task, settings),
        ),
        "libraries": [compute.Library(whl=settings.wheel_path)],
    }


def _task(task: TaskDecl, decl: JobDecl, settings: DeploySettings) -> jobs.Task:
    depends = [jobs.TaskDependency(task_key=key) for key in task.depends_on]
    if task.gated_by_retention:
        depends.append(jobs.TaskDependency(task_key=_RETENTION_GATE, outcome="true"))
    return jobs.Task(
        task_key=task.key,
        description=f"nurture-lake {task.job}",
        depends_on=depends or None,
        job_cluster_key=decl.cluster_key,
        max_retries=settings.max_retries,
        timeout_seconds=settings.timeout_seconds,
        **_runner(task, settings),
    )


def _retention_gate(settings: DeploySettings) -> jobs.Task:
    # Databricks replaces {{job.start_time.hour}} with the run's UTC start hour: one job, two cadences.
    return jobs.Task(
        task_key=_RETENTION_GATE,
        description=f"true once a day: in the run that starts at {settings.retention_hour_utc:02d}:xx UTC",
        condition_task=jobs.ConditionTask(
            op=jobs.ConditionTaskOp.EQUAL_TO, left="{{job.start_time.hour}}", right=str(settings.retention_hour_utc),
        ),
    )


def _job(decl: JobDecl, settings: DeploySettings) -> jobs.JobSettings:
    cluster = settings.learning_cluster if decl.kind == "learning" else settings.cluster
    tasks = [_task(t, decl, settings) for t in decl.tasks]
    if any(t.gated_by_retention for t in decl.tasks):
        tasks.insert(0, _retention_gate(settings))
    cron = getattr(settings, f"{decl.kind}_cron")
    return jobs.JobSettings(
        name=getattr(settings.names, decl.kind),
        description=decl.description,
        tasks=tasks,
        job_clusters=[jobs.JobCluster(job_cluster_key=decl.cluster_key, new_cluster=_cluster_spec(cluster, settings))],
        schedule=jobs.CronSchedule(
            quartz_cron_expression=cron, timezone_id=settings.timezone,
            pause_status=jobs.PauseStatus(settings.pause_status),
        ),
        email_notifications=(
            jobs.JobEmailNotifications(on_failure=list(settings.notification_emails), no_alert_for_skipped_runs=True)
            if settings.notification_emails else None
        ),
        max_concurrent_runs=1,
        tags=dict(settings.tags) or None,
    )


def job_definitions(settings: DeploySettings | None = None) -> list[jobs.JobSettings]:
    """Every declared workflow as ``JobSettings`` (streaming, learning, governance)."""
    s = settings or DeploySettings()
    return [_job(decl, s) for decl in DECLARED_JOBS]


def job_dicts(settings: DeploySettings | None = None) -> list[dict[str, Any]]:
    """The REST/JSON form of :func:`job_definitions` (``JobSettings.as_dict()``)."""
    return [job.as_dict() for job in job_definitions(settings)]
