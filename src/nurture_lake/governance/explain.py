"""Lineage of one decision: row → guardrails → features as of its table version → model → MLflow run
→ training data versions (and the outcome, when its window has closed).

Example::

    lineage = explain_decision(spark, lake, "d-123", region="us")
    print(render_explanation(lineage))
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlflow.exceptions import MlflowException
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from nurture_lake.features.store import lead_features_table
from nurture_lake.tables import Lake

NO_RUN = {"", "none", "null"}
"""``mlflow_run_id`` values meaning "no MLflow run" (logging and holdout baseline policies)."""

INPUT_VERSION_PREFIXES = ("input_version.", "training_data.")
"""Param/tag prefixes under which a training run records the Delta versions it read."""


class DecisionNotFound(LookupError):
    """No ``gold.cadence_decisions`` row has the decision id in the searched regions."""


def _find_decision(spark: SparkSession, lake: Lake, decision_id: str, regions: list[str]) -> dict[str, Any]:
    for region in regions:
        table = lake.table(region, "gold", "cadence_decisions")
        if not table.exists(spark):
            continue
        row = table.read(spark).where(F.col("decision_id") == decision_id).first()
        if row is not None:
            return row.asDict(recursive=True)
    raise DecisionNotFound(f"decision {decision_id!r} not found in region(s) {', '.join(regions)}")


def _features(spark: SparkSession, lake: Lake, decision: dict[str, Any]) -> dict[str, Any]:
    version = decision["feature_table_version"]
    out: dict[str, Any] = {"table": lead_features_table(lake, decision["region"]).label, "version": version,
                           "row": None, "note": None}
    table = lead_features_table(lake, decision["region"])
    try:
        row = table.read(spark, version=int(version)).where(F.col("lead_id") == decision["lead_id"]).first()
    except (PySparkException, Py4JJavaError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        out["note"] = f"version {version} is no longer readable (vacuumed by retention or erasure?): {first[:300]}"
        return out
    if row is None:
        out["note"] = f"lead {decision['lead_id']} has no row at version {version}"
        return out
    values = row.asDict(recursive=True)
    history = values.pop("history", None)
    values["history_events"] = len(history or [])
    out["row"] = values
    return out


def _model(lake: Lake, decision: dict[str, Any]) -> dict[str, Any]:
    run_id = (decision.get("mlflow_run_id") or "").strip()
    out: dict[str, Any] = {
        "name": decision["model_name"], "version": decision["model_version"], "run_id": run_id or None,
        "policy_kind": decision["policy_kind"], "policy_config_hash": decision["policy_config_hash"],
        "run": None, "training_data": {}, "note": None,
    }
    if run_id.lower() in NO_RUN:
        out["note"] = f"no MLflow run: decided by the {decision['policy_kind']} policy (not a trained model)"
        return out
    from nurture_lake.policy.registry import configure_mlflow

    client = configure_mlflow(lake.cfg)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        out["note"] = f"MLflow run {run_id} not found in {lake.cfg.mlflow.tracking_uri}: {exc.message[:300]}"
        return out
    params, tags = dict(run.data.params), {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    out["run"] = {
        "run_id": run.info.run_id, "run_name": run.info.run_name, "experiment_id": run.info.experiment_id,
        "status": run.info.status, "start_time": run.info.start_time, "params": params,
        "metrics": dict(run.data.metrics), "tags": tags,
    }
    out["training_data"] = {
        k[len(p):]: v for source in (params, tags) for k, v in source.items()
        for p in INPUT_VERSION_PREFIXES if k.startswith(p)
    }
    return out


def _outcome(spark: SparkSession, lake: Lake, decision: dict[str, Any]) -> dict[str, Any] | None:
    table = lake.table(decision["region"], "gold", "decision_outcomes")
    if not table.exists(spark):
        return None
    row = table.read(spark).where(F.col("decision_id") == decision["decision_id"]).first()
    return row.asDict(recursive=True) if row is not None else None


def explain_decision(spark: SparkSession, lake: Lake, decision_id: str, *, region: str | None = None) -> dict[str, Any]:
    """The decision's full lineage as a dict: ``decision``, ``guardrails``, ``features``, ``model``, ``outcome``.

    Raises :class:`DecisionNotFound` when no region holds the id.
    """
    decision = _find_decision(spark, lake, decision_id, [region] if region else lake.regions)
    guardrails = decision.pop("guardrails") or []
    return {
        "decision": decision,
        "guardrails": guardrails,
        "features": _features(spark, lake, decision),
        "model": _model(lake, decision),
        "outcome": _outcome(spark, lake, decision),
    }


def _fmt(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(value.items())) or "-"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) or "-"
    return "-" if value is None else str(value)


def render_explanation(lineage: dict[str, Any]) -> str:
    """Plain-text rendering of :func:`explain_decision` for the terminal."""
    d, f, m = lineage["decision"], lineage["features"], lineage["model"]
    lines = [
        f"decision {d['decision_id']}  ({d['region']}, lead {d['lead_id']})",
        f"  decided at {_fmt(d['decided_at'])} on trigger {d['trigger']} ({d['trigger_type']})",
        f"  action {d['action_id']}  channel {_fmt(d['channel'])}  delay {_fmt(d['delay'])}  "
        f"send at {_fmt(d['send_at'])}",
        f"  propensity {_fmt(d['propensity'])}  explored {d['explored']}  holdout {d['holdout']}",
        f"  action probabilities: {_fmt(d['action_probs'])}",
        f"  expected rewards: {_fmt(d['expected_rewards'])}",
        "guardrails:",
    ]
    for g in lineage["guardrails"]:
        state = "passed" if g["passed"] else "BLOCKED " + _fmt(g["blocked_actions"])
        lines.append(f"  {g['rule']:<20} {state}" + (f"  — {g['reason']}" if g.get("reason") else ""))
    if not lineage["guardrails"]:
        lines.append("  (none recorded)")
    lines.append(f"features: {f['table']} @ version {f['version']} (as of {_fmt(d['feature_as_of'])})")
    if f["row"] is None:
        lines.append(f"  {f['note']}")
    else:
        lines.extend(f"  {k:<28} {_fmt(v)}" for k, v in f["row"].items())
    lines.append(f"model: {m['name']} version {m['version']} ({m['policy_kind']}), "
                 f"policy config {m['policy_config_hash']}")
    if m["run"] is None:
        lines.append(f"  {m['note']}")
    else:
        run = m["run"]
        lines.append(f"  MLflow run {run['run_id']} ({run['run_name']}, {run['status']})")
        lines.append(f"  params:  {_fmt(run['params'])}")
        lines.append(f"  metrics: {_fmt(run['metrics'])}")
        lines.append(f"  tags:    {_fmt(run['tags'])}")
        lines.append("  training data versions: " + (_fmt(m["training_data"]) if m["training_data"] else "none recorded"))
    lines.append(f"code {d['code_version']}, job run {d['job_run_id']}, batch {d['batch_id']}")
    outcome = lineage.get("outcome")
    if outcome is None:
        lines.append("outcome: window not closed yet (no row in gold.decision_outcomes)")
    else:
        lines.append(f"outcome: reward {_fmt(outcome['reward'])} ({_fmt(outcome['reward_components'])}), "
                     f"harm {outcome['harm']}, events {_fmt(outcome['attributed_event_ids'])}")
    return "\n".join(lines)


__all__ = ["DecisionNotFound", "explain_decision", "render_explanation"]
