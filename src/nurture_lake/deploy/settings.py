"""The ``deploy`` configuration section: job names, cluster, wheel, schedules, notifications, credentials.

Every field has a default, so ``DeploySettings.from_config(cfg)`` works with no ``deploy`` section.

Example::

    settings = DeploySettings.from_config(load_config("databricks"))
    settings.names.streaming          # "nurture_lake_streaming"
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nurture_lake.config import ConfigError, NurtureConfig

__all__ = ["ClusterSettings", "DeploySettings", "JobNames"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class JobNames(_Frozen):
    """Databricks job names; deploy finds existing jobs by these names (create or update)."""

    streaming: str = "nurture_lake_streaming"
    """The ingest → identity → features → score workflow."""
    learning: str = "nurture_lake_learning"
    """The attribute → train → promote workflow."""
    governance: str = "nurture_lake_governance"
    """Monitoring (hourly) and retention plus the guardrail invariant check (daily)."""


class ClusterSettings(_Frozen):
    """One job cluster (``ClusterSpec``)."""

    spark_version: str = "17.3.x-scala2.13"
    """Databricks Runtime; 17.3 LTS runs Spark 4.0, the line our pyspark and Delta pins target."""
    node_type_id: str = "i3.xlarge"
    """Worker (and driver) instance type of the cloud."""
    num_workers: int = Field(2, ge=0)
    """Fixed worker count (ignored when ``autoscale_max_workers`` is set)."""
    autoscale_min_workers: int | None = Field(None, ge=0)
    """With ``autoscale_max_workers``: the autoscaling lower bound."""
    autoscale_max_workers: int | None = Field(None, ge=1)
    """Set to autoscale between ``autoscale_min_workers`` (default 1) and this many workers."""
    data_security_mode: Literal["SINGLE_USER", "USER_ISOLATION", "DATA_SECURITY_MODE_AUTO"] = "SINGLE_USER"
    """Unity Catalog access mode of the cluster."""
    spark_conf: dict[str, str] = Field(default_factory=dict)
    """Spark settings of the cluster, verbatim."""


class DeploySettings(_Frozen):
    """How the jobs are defined and deployed to a Databricks workspace."""

    target_env: str = "databricks"
    """``--env`` passed to every task: a ``conf/<env>.yaml`` name or a YAML path visible to the cluster."""
    task_kind: Literal["python_wheel", "spark_python"] = "python_wheel"
    """``python_wheel``: the ``nurture-lake`` console script of the wheel; ``spark_python``: ``jobs/<job>.py`` files."""
    package_name: str = "nurture_lake"
    """Distribution name of the wheel (``PythonWheelTask.package_name``)."""
    entry_point: str = "nurture-lake"
    """Console script of the wheel (``PythonWheelTask.entry_point``); its first argument is the job."""
    wheel_path: str = "/Volumes/nurture_lake/ops/artifacts/nurture_lake-0.1.0-py3-none-any.whl"
    """Where the uploaded wheel lives (a UC volume or workspace file); installed on every task's cluster."""
    jobs_root: str = "/Workspace/Shared/nurture_lake/files"
    """``spark_python`` only: folder holding the checkout's ``jobs/<job>.py`` files."""
    names: JobNames = JobNames()
    """The three jobs' names on Databricks (deploy creates or updates by name)."""
    cluster: ClusterSettings = ClusterSettings()
    """Cluster of the streaming and governance jobs."""
    learning_cluster: ClusterSettings = ClusterSettings(spark_version="17.3.x-cpu-ml-scala2.13")
    """Cluster of the learning job (the ML runtime ships MLflow and hyperopt)."""
    timezone: str = "UTC"
    """Time zone of every cron schedule."""
    streaming_cron: str = "0 0/15 * * * ?"
    """Quartz cron of the streaming workflow (each run drains what is new with ``availableNow``)."""
    learning_cron: str = "0 0 4 * * ?"
    """Quartz cron of the learning workflow (daily)."""
    governance_cron: str = "0 0 * * * ?"
    """Quartz cron of the governance workflow (hourly: monitor every run)."""
    retention_hour_utc: int = Field(3, ge=0, le=23)
    """The UTC hour whose governance run also purges (retain) and replays guardrails (daily)."""
    pause_status: Literal["PAUSED", "UNPAUSED"] = "UNPAUSED"
    """Schedule state of newly deployed jobs."""
    notification_emails: tuple[str, ...] = ()
    """Addresses told about failed runs."""
    secret_env: dict[str, str] = Field(default_factory=lambda: {"NURTURE_LAKE_HMAC_KEY": "nurture_lake/hmac_key"})
    """Cluster environment variable → ``<secret scope>/<key>``; values resolve from the scope at start."""
    max_retries: int = Field(1, ge=0)
    """Retries of a failed task."""
    timeout_seconds: int = Field(4 * 3600, ge=0)
    """Timeout of every task (0: none)."""
    tags: dict[str, str] = Field(default_factory=lambda: {"project": "nurture_lake", "managed_by": "nurture-lake-deploy"})
    """Tags of every job (and its clusters)."""
    host_env: str = "DATABRICKS_HOST"
    """Environment variable holding the workspace URL."""
    token_env: str = "DATABRICKS_TOKEN"
    """Environment variable holding the access token (never in YAML)."""
    http_timeout_seconds: int = Field(30, ge=1)
    """Timeout of one HTTP request to the workspace."""
    retry_timeout_seconds: int = Field(60, ge=1)
    """Give up retrying the workspace after this long (the SDK's default is 300 s)."""

    @classmethod
    def from_config(cls, cfg: NurtureConfig) -> DeploySettings:
        """Read ``cfg.section("deploy")``; invalid values raise :class:`ConfigError` naming the field."""
        try:
            return cls(**cfg.section("deploy"))
        except ValidationError as exc:
            problems = "; ".join(
                f"deploy.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(problems) from None
