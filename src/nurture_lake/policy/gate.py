"""The promotion gate: a challenger becomes champion only when the evidence says it is better.

Rule (``gate_rule``): promote iff the challenger's doubly-robust **lower** confidence bound beats the
baseline's value — the champion's DR estimate on the same logged decisions, or, with no champion,
the logging policy's on-policy value (the mean logged reward) — **and** the challenger's estimated
harm rate (self-normalised IPS of the outcome flag ``harm``: unsubscribes, complaints) is not worse
than the baseline's: refused when even the *lower* bound of the challenger's harm interval exceeds
the baseline's harm rate plus ``harm_tolerance`` (significantly more harm). Comparing point
estimates instead would refuse about half of all equally safe challengers on sampling noise alone.
Every decision, either way, is appended to ``global.gold.policy_gate_decisions`` with the numbers
that decided it.

Example::

    decision = evaluate_gate(logged, challenger=chal, champion=champ, settings=settings, model_name=name)
    write_gate_decision(spark, lake, decision)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType, DoubleType, LongType, MapType, StringType, StructField, StructType, TimestampType,
)

from nurture_lake.audit import code_version
from nurture_lake.policy.ope import Estimate, harm_estimate, policy_estimates, with_harm_value, with_target
from nurture_lake.policy.registry import LoadedPolicy
from nurture_lake.policy.settings import LearningSettings
from nurture_lake.tables import GLOBAL_REGION, Lake, TableRef

POLICY_GATE_DECISIONS = StructType([
    StructField("gate_id", StringType(), False),
    StructField("decided_at", TimestampType(), False),
    StructField("model_name", StringType(), False),
    StructField("challenger_version", StringType(), False),
    StructField("challenger_run_id", StringType(), False),
    StructField("baseline_kind", StringType(), False),          # "champion" | "logging"
    StructField("champion_version", StringType(), True),        # null when there was no champion
    StructField("challenger_dr_estimate", DoubleType(), False),
    StructField("challenger_dr_lower", DoubleType(), False),
    StructField("challenger_dr_upper", DoubleType(), False),
    StructField("challenger_dr_ess", DoubleType(), True),
    StructField("baseline_value", DoubleType(), False),         # champion DR estimate, or mean logged reward
    StructField("challenger_harm", DoubleType(), False),        # estimated harm rate under the challenger
    StructField("challenger_harm_lower", DoubleType(), False),  # its interval (the gate compares the lower end)
    StructField("challenger_harm_upper", DoubleType(), False),
    StructField("baseline_harm", DoubleType(), False),
    StructField("harm_tolerance", DoubleType(), False),
    StructField("n_decisions", LongType(), False),              # logged decisions the estimates used
    StructField("alpha", DoubleType(), False),                  # 1 - confidence level of the interval
    StructField("promoted", BooleanType(), False),
    StructField("reason", StringType(), False),
    StructField("input_versions", MapType(StringType(), LongType()), True),
    StructField("job_run_id", StringType(), True),
    StructField("code_version", StringType(), False),
])
"""``global.gold.policy_gate_decisions``: one row per gate evaluation, promoted or refused."""


@dataclass(frozen=True)
class GateDecision:
    """The numbers a gate evaluation used and its verdict (one table row)."""

    model_name: str
    challenger_version: str
    challenger_run_id: str
    baseline_kind: str
    champion_version: str | None
    challenger_dr: Estimate
    baseline_value: float
    challenger_harm: Estimate
    baseline_harm: float
    harm_tolerance: float
    n_decisions: int
    alpha: float
    promoted: bool
    reason: str
    input_versions: dict[str, int] = field(default_factory=dict)
    job_run_id: str | None = None
    gate_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    decided_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))

    def row(self) -> tuple[object, ...]:
        """The row of :data:`POLICY_GATE_DECISIONS`."""
        dr = self.challenger_dr
        return (
            self.gate_id, self.decided_at, self.model_name, self.challenger_version, self.challenger_run_id,
            self.baseline_kind, self.champion_version, dr.estimate, dr.lower, dr.upper,
            None if dr.ess != dr.ess else dr.ess, self.baseline_value, self.challenger_harm.estimate,
            self.challenger_harm.lower, self.challenger_harm.upper, self.baseline_harm,
            self.harm_tolerance, self.n_decisions, self.alpha, self.promoted, self.reason,
            dict(self.input_versions), self.job_run_id, code_version(),
        )


def gate_rule(
    *,
    challenger_lower: float,
    baseline_value: float,
    challenger_harm_lower: float,
    baseline_harm: float,
    harm_tolerance: float,
) -> tuple[bool, str]:
    """The verdict and a one-line reason (pure; NaN numbers never promote)."""
    if any(v != v for v in (challenger_lower, baseline_value, challenger_harm_lower, baseline_harm)):
        return False, "refused: an estimate is undefined (no usable logged decisions)"
    value_ok = challenger_lower > baseline_value
    harm_ok = challenger_harm_lower <= baseline_harm + harm_tolerance
    why = (
        f"DR lower bound {challenger_lower:.4f} {'>' if value_ok else '<='} baseline {baseline_value:.4f}; "
        f"harm lower bound {challenger_harm_lower:.4f} {'<=' if harm_ok else '>'} "
        f"baseline {baseline_harm:.4f} + {harm_tolerance:.4f}"
    )
    return value_ok and harm_ok, ("promoted: " if value_ok and harm_ok else "refused: ") + why


def _value_and_harm(
    logged: DataFrame, policy: LoadedPolicy, context_col: str, settings: LearningSettings,
) -> tuple[Estimate, Estimate]:
    """(DR value, SNIPS harm rate) of ``policy`` on ``logged``; the scored frame is cached for both."""
    scored = with_target(logged, policy.policy, seed=policy.seed, context_col=context_col, keep=("harm_value",)).cache()
    try:
        common = {"n_bootstrap": settings.ope_bootstrap, "alpha": settings.ope_alpha, "seed": settings.seed}
        dr = policy_estimates(scored, estimators=("dr",), **common)["dr"]
        return dr, harm_estimate(scored, **common)
    finally:
        scored.unpersist()


def evaluate_gate(
    logged: DataFrame,
    *,
    challenger: LoadedPolicy,
    champion: LoadedPolicy | None,
    settings: LearningSettings,
    model_name: str,
    input_versions: dict[str, int] | None = None,
    job_run_id: str | None = None,
) -> GateDecision:
    """Estimate challenger and baseline on ``logged`` (a training-set frame) and apply :func:`gate_rule`.

    Runs Spark jobs (scoring and the off-policy aggregations); ``logged`` needs ``decision_id,
    decided_at, context, action, propensity, reward, harm, allowed_actions``.
    """
    ctx = settings.context_col
    logged = with_harm_value(logged).cache()
    try:
        summary = logged.agg(
            F.count("*").alias("n"), F.avg("reward").alias("reward"), F.avg("harm_value").alias("harm"),
        ).first()
        n = int(summary["n"]) if summary is not None else 0
        nan = float("nan")
        if n == 0:
            dr = chal_harm = Estimate("dr", nan, nan, nan, 0.0)
            base_value = base_harm = nan
        else:
            chal = _value_and_harm(logged, challenger, ctx, settings)
            dr, chal_harm = chal
            if champion is None:
                base_value, base_harm = float(summary["reward"]), float(summary["harm"])
            else:
                champ_dr, champ_harm = _value_and_harm(logged, champion, ctx, settings)
                base_value, base_harm = champ_dr.estimate, champ_harm.estimate
    finally:
        logged.unpersist()
    promoted, reason = gate_rule(
        challenger_lower=dr.lower, baseline_value=base_value, challenger_harm_lower=chal_harm.lower,
        baseline_harm=base_harm, harm_tolerance=settings.harm_tolerance,
    )
    return GateDecision(
        model_name=model_name, challenger_version=challenger.version, challenger_run_id=challenger.run_id,
        baseline_kind="champion" if champion is not None else "logging",
        champion_version=champion.version if champion is not None else None,
        challenger_dr=dr, baseline_value=base_value, challenger_harm=chal_harm, baseline_harm=base_harm,
        harm_tolerance=settings.harm_tolerance, n_decisions=n, alpha=settings.ope_alpha,
        promoted=promoted, reason=reason, input_versions=dict(input_versions or {}), job_run_id=job_run_id,
    )


def gate_table(lake: Lake) -> TableRef:
    """``global.gold.policy_gate_decisions``."""
    return lake.table(GLOBAL_REGION, "gold", "policy_gate_decisions")


def write_gate_decision(spark: SparkSession, lake: Lake, decision: GateDecision) -> TableRef:
    """Append the decision's row (creating the table on first use)."""
    table = gate_table(lake)
    table.ensure(spark, POLICY_GATE_DECISIONS)
    table.append(spark.createDataFrame([decision.row()], POLICY_GATE_DECISIONS))
    return table
