"""Create or update the jobs in a Databricks workspace, by name, idempotently.

``deploy_jobs(client.jobs, definitions)`` lists jobs with each definition's name: none → ``create``;
exactly one → ``reset`` (full replacement of its settings, same job id, history kept); several →
:class:`DeployError` (we never guess which one to overwrite). Credentials come from the
environment only (``DATABRICKS_HOST``, ``DATABRICKS_TOKEN``).

Example::

    client = workspace_client(settings)                     # from DATABRICKS_HOST / DATABRICKS_TOKEN
    for result in deploy_jobs(client.jobs, job_definitions(settings)):
        print(result.action, result.name, result.job_id)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from databricks.sdk.service.jobs import BaseJob, CreateResponse, JobSettings

from nurture_lake.deploy.settings import DeploySettings
from nurture_lake.deploy.validate import validate_jobs

__all__ = ["DeployError", "DeployResult", "JobsApi", "client_config_kwargs", "deploy_jobs", "workspace_client"]


class DeployError(RuntimeError):
    """Deployment cannot proceed (missing credentials, ambiguous job names)."""


class JobsApi(Protocol):
    """The part of ``WorkspaceClient().jobs`` that deploy calls."""

    def list(self, *, name: str | None = None) -> Iterator[BaseJob]:
        """Jobs whose name matches ``name`` (the API matches case-insensitively)."""
        ...

    def create(self, **settings: Any) -> CreateResponse:
        """Create a job from ``JobSettings`` fields."""
        ...

    def reset(self, job_id: int, new_settings: JobSettings) -> None:
        """Replace every setting of job ``job_id``."""
        ...


@dataclass(frozen=True)
class DeployResult:
    """What deploy did with one job."""

    name: str
    job_id: int
    action: Literal["created", "updated"]


def client_config_kwargs(settings: DeploySettings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments of ``databricks.sdk.core.Config`` from the environment; :class:`DeployError` if missing."""
    env = os.environ if environ is None else environ
    missing = [var for var in (settings.host_env, settings.token_env) if not env.get(var)]
    if missing:
        raise DeployError(
            f"set {' and '.join(missing)} to deploy (workspace URL and a personal access token or service "
            "principal token); `nurture-lake deploy --dry-run` prints the job definitions without credentials"
        )
    return {
        "host": env[settings.host_env],
        "token": env[settings.token_env],
        "retry_timeout_seconds": settings.retry_timeout_seconds,
        "http_timeout_seconds": settings.http_timeout_seconds,
    }


def workspace_client(settings: DeploySettings, environ: Mapping[str, str] | None = None) -> Any:
    """A ``WorkspaceClient`` for the workspace named by the environment, with bounded timeouts."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    return WorkspaceClient(config=Config(**client_config_kwargs(settings, environ)))


def _create_kwargs(job: JobSettings) -> dict[str, Any]:
    """``JobSettings`` as keyword arguments of ``jobs.create`` (unset fields left out)."""
    return {f.name: getattr(job, f.name) for f in dataclasses.fields(job) if getattr(job, f.name) is not None}


def _existing_ids(api: JobsApi, name: str) -> list[int]:
    return sorted(int(j.job_id) for j in api.list(name=name)
                  if j.job_id is not None and j.settings is not None and j.settings.name == name)


def deploy_jobs(api: JobsApi, definitions: Sequence[JobSettings]) -> list[DeployResult]:
    """Validate every definition, then create each missing job and reset each existing one (by name)."""
    validate_jobs([job.as_dict() for job in definitions])
    results: list[DeployResult] = []
    for job in definitions:
        name = job.name or ""
        ids = _existing_ids(api, name)
        if len(ids) > 1:
            raise DeployError(f"{len(ids)} jobs are named {name!r} (ids {ids}); delete or rename all but one, then redeploy")
        if ids:
            api.reset(ids[0], job)
            results.append(DeployResult(name, ids[0], "updated"))
        else:
            created = api.create(**_create_kwargs(job))
            if created.job_id is None:
                raise DeployError(f"the workspace returned no job id for {name!r}")
            results.append(DeployResult(name, int(created.job_id), "created"))
    return results
