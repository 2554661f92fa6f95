"""Off-policy values of a policy on logged decisions, through ``nurture_lake.evaluation``.

:func:`with_target` scores logged rows with a candidate policy (its probabilities over the actions
that were allowed *then*) into the columns the evaluation module expects (``target_probs``,
``expected_rewards``); :func:`policy_estimates` calls ``off_policy_estimates`` and returns plain
:class:`Estimate` records whatever container the evaluation module returns.

Example::

    scored = with_target(validation, policy, seed=7)
    dr = policy_estimates(scored, estimators=("dr",), n_bootstrap=200)["dr"]
    dr.lower, dr.estimate
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from nurture_lake.policy.scoring import Policy, score_decisions


@dataclass(frozen=True)
class Estimate:
    """One estimator's value with its confidence interval and effective sample size."""

    estimator: str
    estimate: float
    lower: float
    upper: float
    ess: float

    def as_metrics(self, prefix: str) -> dict[str, float]:
        """``{prefix}{estimator}_estimate`` etc., ready for ``mlflow.log_metrics``."""
        base = f"{prefix}{self.estimator}"
        return {f"{base}_estimate": self.estimate, f"{base}_lower": self.lower,
                f"{base}_upper": self.upper, f"{base}_ess": self.ess}


def with_target(
    logged: DataFrame,
    policy: Policy,
    *,
    seed: int,
    context_col: str = "context",
    allowed_col: str = "allowed_actions",
    reward_col: str = "reward",
    keep: tuple[str, ...] = (),
) -> DataFrame:
    """``logged`` reduced to ``action, reward, propensity, target_probs, expected_rewards`` (+ ids, ``keep``).

    A policy without a reward model (the logging policy) gets an all-zero ``expected_rewards`` map, so
    model-based estimators reduce to their importance-weighted part.
    """
    scored = score_decisions(
        logged.select("decision_id", "decided_at", "action", "propensity", F.col(reward_col).alias("reward"),
                      context_col, allowed_col, *keep),
        policy, seed=seed, context_col=context_col, allowed_col=allowed_col, prefix="target_",
    )
    zero = F.transform_values("target_action_probs", lambda _k, _v: F.lit(0.0))
    return scored.select(
        "decision_id", "decided_at", "action", F.col("reward").cast("double").alias("reward"),
        F.col("propensity").cast("double").alias("propensity"),
        F.col("target_action_probs").alias("target_probs"),
        F.coalesce(F.col("target_expected_rewards"), zero).alias("expected_rewards"),
        *keep,
    )


_ESTIMATE_KEYS = ("estimate", "value", "point")
_LOWER_KEYS = ("lower", "ci_low", "ci_lower", "lo", "low", "lcb")
_UPPER_KEYS = ("upper", "ci_high", "ci_upper", "hi", "high", "ucb")
_ESS_KEYS = ("ess", "effective_sample_size")


def _pick(record: Mapping[str, Any], keys: Sequence[str], default: float = float("nan")) -> float:
    for key in keys:
        if key in record and record[key] is not None:
            return float(record[key])
    ci = record.get("ci") or record.get("interval")
    if ci is not None and keys in (_LOWER_KEYS, _UPPER_KEYS):
        return float(ci[0] if keys is _LOWER_KEYS else ci[1])
    return default


def _as_mapping(obj: Any) -> Mapping[str, Any]:
    if isinstance(obj, Mapping):
        return obj
    if hasattr(obj, "asDict"):
        return obj.asDict()
    if hasattr(obj, "_asdict"):
        return obj._asdict()
    if hasattr(obj, "__dataclass_fields__"):
        return {name: getattr(obj, name) for name in obj.__dataclass_fields__}
    return vars(obj)


def normalise_estimates(result: Any) -> dict[str, Estimate]:
    """Turn the evaluation module's result (mapping, records, pandas or Spark frame) into estimates."""
    if hasattr(result, "estimates") and isinstance(result.estimates, Mapping):
        result = result.estimates
    if hasattr(result, "toPandas") and not hasattr(result, "iterrows"):
        result = result.toPandas()
    if hasattr(result, "to_dict") and hasattr(result, "iterrows"):
        records: list[Mapping[str, Any]] = result.to_dict("records")
    elif isinstance(result, Mapping):
        records = []
        for name, value in result.items():
            record = dict(_as_mapping(value))
            record.setdefault("estimator", name)
            records.append(record)
    else:
        records = [_as_mapping(r) for r in result]
    out: dict[str, Estimate] = {}
    for record in records:
        name = str(record.get("estimator") or record.get("name"))
        out[name] = Estimate(
            estimator=name,
            estimate=_pick(record, _ESTIMATE_KEYS),
            lower=_pick(record, _LOWER_KEYS),
            upper=_pick(record, _UPPER_KEYS),
            ess=_pick(record, _ESS_KEYS),
        )
    return out


def policy_estimates(
    scored: DataFrame,
    *,
    estimators: Sequence[str] = ("ips", "snips", "dm", "dr"),
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    seed: int = 7,
) -> dict[str, Estimate]:
    """Off-policy estimates of the policy whose ``target_probs`` the rows carry (Spark aggregations)."""
    from nurture_lake.evaluation import off_policy_estimates  # the evaluation module owns the estimators

    result = off_policy_estimates(
        scored, estimators=tuple(estimators), n_bootstrap=n_bootstrap, alpha=alpha, seed=seed,
        key_col="decision_id" if "decision_id" in scored.columns else None,
    )
    return normalise_estimates(result)


def harm_estimate(
    scored: DataFrame,
    *,
    n_bootstrap: int,
    alpha: float,
    seed: int = 7,
    harm_col: str = "harm_value",
) -> Estimate:
    """Self-normalised IPS estimate of the harm rate (unsubscribe / complaint) under the scored policy.

    ``scored`` is a :func:`with_target` frame that kept ``harm_col`` (see :func:`with_harm_value`).
    """
    as_reward = scored.withColumn("reward", F.col(harm_col))
    return policy_estimates(as_reward, estimators=("snips",), n_bootstrap=n_bootstrap, alpha=alpha, seed=seed)["snips"]


def with_harm_value(logged: DataFrame) -> DataFrame:
    """``logged`` plus ``harm_value`` (1.0 when an unsubscribe / complaint was attributed, else 0.0)."""
    return logged.withColumn("harm_value", F.when(F.col("harm"), 1.0).otherwise(0.0))
