"""MLflow tracking and registry: log a trained policy, register it, move aliases, load by alias.

Tracking and registry URIs come from ``cfg.mlflow``; a relative ``sqlite:///`` path is resolved
against the project root (``cfg.resolve``) and a ``file:`` store is allowed explicitly.

Example::

    registered = log_policy(cfg, policy, params={...}, metrics={...}, input_versions={...})
    set_alias(cfg, "champion", registered.version)
    champion = load_policy(cfg, "champion")
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from nurture_lake.audit import code_version
from nurture_lake.config import NurtureConfig
from nurture_lake.policy.ope import Estimate
from nurture_lake.policy.pyfunc import POLICY_ARTIFACT, PolicyModel, write_policy_json
from nurture_lake.policy.scoring import Policy

PIP_REQUIREMENTS: list[str] = ["mlflow==3.17.2", "numpy>=1.26,<3", "pandas>=2.2,<3", "nurture_lake"]
"""Declared serving requirements (no slow environment inference at log time)."""


def _resolve_uri(cfg: NurtureConfig, uri: str) -> str:
    if uri.startswith("sqlite:///"):
        rest = uri[len("sqlite:///"):]
        path = Path(rest) if rest.startswith("/") else cfg.resolve(rest)
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    if uri.startswith("file:"):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        rest = uri[len("file:"):].lstrip("/") if not uri.startswith("file:///") else uri[len("file://"):]
        path = Path(rest) if rest.startswith("/") else cfg.resolve(rest)
        return path.as_uri()
    if "://" not in uri and ":" not in uri:
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        return cfg.resolve(uri).as_uri()
    return uri


def configure_mlflow(cfg: NurtureConfig) -> MlflowClient:
    """Point MLflow at the configured stores and experiment; return a client for the registry."""
    tracking = _resolve_uri(cfg, cfg.mlflow.tracking_uri)
    registry = _resolve_uri(cfg, cfg.mlflow.registry_uri) if cfg.mlflow.registry_uri else tracking
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)
    if mlflow.get_experiment_by_name(cfg.mlflow.experiment) is None:
        artifacts = cfg.resolve(cfg.mlflow.artifact_root)
        artifacts.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(cfg.mlflow.experiment, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(cfg.mlflow.experiment)
    return MlflowClient(tracking_uri=tracking, registry_uri=registry)


@dataclass(frozen=True)
class RegisteredPolicy:
    """Where a logged policy lives: run, registered version, model URI."""

    run_id: str
    version: str | None
    model_uri: str


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy loaded from the registry with its lineage."""

    policy: Policy
    version: str
    run_id: str
    seed: int
    context_col: str


def _estimates_plot(estimates: Mapping[str, Mapping[str, Estimate]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels: list[str] = []
    for group, by_name in estimates.items():
        for name, est in by_name.items():
            y = len(labels)
            labels.append(f"{group}:{name}")
            ax.errorbar(est.estimate, y, xerr=[[est.estimate - est.lower], [est.upper - est.estimate]],
                        fmt="o", capsize=4)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("estimated value per decision (with confidence interval)")
    ax.set_title("Off-policy estimates")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def log_policy(
    cfg: NurtureConfig,
    policy: Policy,
    *,
    seed: int,
    context_col: str = "context",
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    estimates: Mapping[str, Mapping[str, Estimate]] | None = None,
    diagnostics: Mapping[str, Any] | None = None,
    input_versions: Mapping[str, int] | None = None,
    tags: Mapping[str, str] | None = None,
    register: bool = True,
    alias: str | None = "challenger",
    run_name: str = "train_policy",
) -> RegisteredPolicy:
    """Log one MLflow run with the policy pyfunc, register it and set ``alias`` on the new version.

    Metrics include every estimate's value, interval and ESS (``ope_<group>_<estimator>_*``); the
    artifacts hold the model, a plot of the estimates, the diagnostics JSON and the input versions.
    """
    configure_mlflow(cfg)
    all_metrics = {k: float(v) for k, v in (metrics or {}).items()}
    for group, by_name in (estimates or {}).items():
        for est in by_name.values():
            all_metrics.update(est.as_metrics(f"ope_{group}_"))
    with mlflow.start_run(run_name=run_name) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags({"code_version": code_version(), "policy_kind": policy.policy_kind,
                         "config_hash": cfg.config_hash(), **dict(tags or {})})
        mlflow.log_params({k: str(v)[:500] for k, v in (params or {}).items()})
        mlflow.log_params({f"input_version.{k}": v for k, v in (input_versions or {}).items()})
        if all_metrics:
            mlflow.log_metrics({k: v for k, v in all_metrics.items() if v == v})  # NaN-free
        mlflow.log_dict(dict(input_versions or {}), "lineage/input_versions.json")
        mlflow.log_dict(dict(diagnostics or {}), "diagnostics/diagnostics.json")
        if estimates:
            mlflow.log_artifact(str(_estimates_plot(estimates, Path(tmp) / "ope_estimates.png")), "plots")
        artifact = write_policy_json(policy, Path(tmp) / "policy.json", seed=seed, context_col=context_col)
        info = mlflow.pyfunc.log_model(
            name="policy",
            python_model=PolicyModel(),
            artifacts={POLICY_ARTIFACT: str(artifact)},
            pip_requirements=PIP_REQUIREMENTS,
        )
        run_id = run.info.run_id
    version: str | None = None
    if register:
        registered = mlflow.register_model(info.model_uri, cfg.mlflow.model_name, tags={"run_id": run_id})
        version = str(registered.version)
        if alias:
            set_alias(cfg, alias, version)
    return RegisteredPolicy(run_id=run_id, version=version, model_uri=info.model_uri)


def set_alias(cfg: NurtureConfig, alias: str, version: str | int) -> None:
    """Point ``alias`` (e.g. ``champion``) of the configured model at ``version``."""
    client = configure_mlflow(cfg)
    client.set_registered_model_alias(cfg.mlflow.model_name, alias, str(version))


def alias_version(cfg: NurtureConfig, alias: str) -> tuple[str, str] | None:
    """``(version, run_id)`` the alias points at, or ``None`` when the model or alias is absent."""
    client = configure_mlflow(cfg)
    try:
        mv = client.get_model_version_by_alias(cfg.mlflow.model_name, alias)
    except MlflowException:
        return None
    return str(mv.version), str(mv.run_id or "")


def load_policy_version(cfg: NurtureConfig, alias: str) -> LoadedPolicy | None:
    """Load ``models:/<name>@<alias>`` through pyfunc; ``None`` when the alias does not exist."""
    found = alias_version(cfg, alias)
    if found is None:
        return None
    version, run_id = found
    model = mlflow.pyfunc.load_model(f"models:/{cfg.mlflow.model_name}@{alias}")
    wrapped = model.unwrap_python_model()
    if not isinstance(wrapped, PolicyModel) or wrapped.policy is None:
        raise TypeError(f"models:/{cfg.mlflow.model_name}@{alias} is not a nurture_lake policy")
    return LoadedPolicy(wrapped.policy, version, run_id, wrapped.seed, wrapped.context_col)


def load_policy(cfg: NurtureConfig, alias: str) -> Policy | None:
    """The policy behind ``alias`` (``champion``, ``challenger``), or ``None`` if there is none."""
    loaded = load_policy_version(cfg, alias)
    return loaded.policy if loaded is not None else None




@dataclass(frozen=True)
class ServingPolicy:
    """What the scorer needs to decide and to write the lineage columns of a decision row."""

    policy: Policy
    policy_kind: str          # "champion" | "logging"
    model_name: str
    model_version: str        # registry version, or "logging"
    mlflow_run_id: str        # "" for the logging policy
    seed: int
    context_col: str
    recent_touch_col: str | None

    @property
    def policy_config_hash(self) -> str:
        """Stable hash of the policy's parameters and sampling seed (``policy_config_hash`` column)."""
        blob = json.dumps({"policy": self.policy.to_dict(), "seed": self.seed}, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def serving_policy(cfg: NurtureConfig, *, alias: str = "champion") -> ServingPolicy:
    """The ``champion`` from the registry, or the configured logging policy while there is none."""
    from nurture_lake.actions import ActionSpace
    from nurture_lake.policy.logging_policy import LoggingPolicy
    from nurture_lake.policy.settings import LearningSettings

    settings = LearningSettings.from_config(cfg)
    loaded = load_policy_version(cfg, alias)
    if loaded is not None:
        return ServingPolicy(loaded.policy, "champion", cfg.mlflow.model_name, loaded.version, loaded.run_id,
                             loaded.seed, loaded.context_col, None)
    logging_policy = LoggingPolicy.from_settings(ActionSpace.from_config(cfg).action_ids, settings)
    return ServingPolicy(logging_policy, "logging", cfg.mlflow.model_name, "logging", "", settings.seed,
                         settings.context_col, settings.recent_touch_col)
