"""Running on clusters: the Databricks jobs as code, validated offline, deployed by name.

* :func:`job_definitions` — the streaming, learning and governance workflows as ``JobSettings``.
* :func:`validate_job` / :func:`job_problems` — round-trip and graph checks the SDK does not do.
* :func:`deploy_jobs` — create or reset each job by name (idempotent); :func:`workspace_client`.
* :class:`DeploySettings` — the ``deploy`` configuration section.

Example::

    from nurture_lake.deploy import DeploySettings, job_dicts, validate_jobs
    validate_jobs(job_dicts(DeploySettings()))
"""

from nurture_lake.deploy.definitions import DECLARED_JOBS, JobDecl, TaskDecl, job_definitions, job_dicts
from nurture_lake.deploy.settings import ClusterSettings, DeploySettings, JobNames
from nurture_lake.deploy.validate import (
    JobValidationError,
    cron_problems,
    find_cycle,
    job_problems,
    validate_job,
    validate_jobs,
)
from nurture_lake.deploy.workspace import (
    DeployError,
    DeployResult,
    JobsApi,
    client_config_kwargs,
    deploy_jobs,
    workspace_client,
)

__all__ = [
    "DECLARED_JOBS",
    "ClusterSettings",
    "DeployError",
    "DeployResult",
    "DeploySettings",
    "JobDecl",
    "JobNames",
    "JobValidationError",
    "JobsApi",
    "TaskDecl",
    "client_config_kwargs",
    "cron_problems",
    "deploy_jobs",
    "find_cycle",
    "job_definitions",
    "job_dicts",
    "job_problems",
    "validate_job",
    "validate_jobs",
    "workspace_client",
]
