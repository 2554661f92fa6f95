"""The cadence policy: a contextual bandit trained on Spark, tracked and served through MLflow.

* :class:`LoggingPolicy` — uniform or baseline cadence with an exploration floor (exact propensities).
* :func:`sufficient_statistics` + :func:`fit_linear_bandit` — distributed per-action ridge /
  Bayesian linear regression (each action's λ by evidence maximisation); :class:`LinearBandit` scores
  with Thompson sampling, LinUCB, softmax or ε-greedy, always with the exact probability of every allowed action.
* :func:`score_decisions` — the vectorised Spark scoring path (pandas UDF).
* :func:`fit_engagement_prior` — the ``pyspark.ml`` cold-start prior.
* :func:`build_training_set` — closed decisions ⋈ outcomes ⋈ point-in-time context; the reward is the
  decision's own responses (:func:`explicit_rewards`) or everything attribution credited it with.
* :func:`train_policy`, :func:`promote_challenger` — the ``train`` and ``promote`` jobs' library side;
  :func:`log_policy`, :func:`load_policy`, :func:`set_alias` — the MLflow registry by alias.
"""

from nurture_lake.policy.bandit import (
    LinearBandit,
    SufficientStats,
    evidence_lambda,
    fit_linear_bandit,
    statistics_from_arrays,
    sufficient_statistics,
)
from nurture_lake.policy.cold_start import EngagementPrior, fit_engagement_prior
from nurture_lake.policy.exploration import (
    STRATEGIES,
    ExplorationParams,
    action_probabilities,
    decision_uniforms,
    sample_actions,
)
from nurture_lake.policy.gate import (
    POLICY_GATE_DECISIONS,
    GateDecision,
    evaluate_gate,
    gate_rule,
    gate_table,
    write_gate_decision,
)
from nurture_lake.policy.logging_policy import LoggingPolicy
from nurture_lake.policy.ope import Estimate, policy_estimates, with_target
from nurture_lake.policy.registry import (
    LoadedPolicy,
    RegisteredPolicy,
    ServingPolicy,
    alias_version,
    configure_mlflow,
    load_policy,
    load_policy_version,
    log_policy,
    serving_policy,
    set_alias,
)
from nurture_lake.policy.scoring import DECISION_FIELDS, Policy, decide, policy_from_dict, score_decisions, score_pandas
from nurture_lake.policy.settings import LearningSettings
from nurture_lake.policy.trainer import (
    NotEnoughData,
    TimeFold,
    TrainResult,
    promote_challenger,
    split_training_set,
    train_policy,
    tuning_folds,
)
from nurture_lake.policy.training_set import (
    ContextFn,
    build_training_set,
    explicit_rewards,
    read_training_inputs,
    time_cutoffs,
)
from nurture_lake.policy.tuning import TuningFold, TuningResult, flat_params, search_space, trial_params, tune_policy

__all__ = [
    "DECISION_FIELDS",
    "POLICY_GATE_DECISIONS",
    "STRATEGIES",
    "ContextFn",
    "EngagementPrior",
    "Estimate",
    "ExplorationParams",
    "GateDecision",
    "LearningSettings",
    "LinearBandit",
    "LoadedPolicy",
    "LoggingPolicy",
    "NotEnoughData",
    "Policy",
    "RegisteredPolicy",
    "ServingPolicy",
    "SufficientStats",
    "TimeFold",
    "TrainResult",
    "TuningFold",
    "TuningResult",
    "action_probabilities",
    "alias_version",
    "build_training_set",
    "configure_mlflow",
    "decide",
    "decision_uniforms",
    "evaluate_gate",
    "evidence_lambda",
    "explicit_rewards",
    "fit_engagement_prior",
    "fit_linear_bandit",
    "flat_params",
    "gate_rule",
    "gate_table",
    "load_policy",
    "load_policy_version",
    "log_policy",
    "policy_estimates",
    "policy_from_dict",
    "promote_challenger",
    "read_training_inputs",
    "sample_actions",
    "score_decisions",
    "score_pandas",
    "search_space",
    "serving_policy",
    "set_alias",
    "split_training_set",
    "statistics_from_arrays",
    "sufficient_statistics",
    "time_cutoffs",
    "train_policy",
    "trial_params",
    "tune_policy",
    "tuning_folds",
    "with_target",
    "write_gate_decision",
]
