"""Learning settings: the ``learning`` section of the configuration, as a frozen model.

Example::

    settings = LearningSettings.from_config(cfg)
    settings.strategy        # 'thompson'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nurture_lake.config import ConfigError, NurtureConfig

Strategy = Literal["thompson", "linucb", "softmax", "epsilon_greedy"]
"""Exploration strategies of the learned policy."""


class LearningSettings(BaseModel):
    """Hyper-parameters of the contextual bandit, its training and its promotion gate."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    context_col: str = "context"
    """Column holding the context vector (array<double>, bias included)."""
    strategy: Strategy = "thompson"
    """Exploration strategy: ``thompson``, ``linucb``, ``softmax`` or ``epsilon_greedy``."""
    ridge_lambda: float = Field(1.0, gt=0)
    """Prior precision λ of every action's weights (ridge penalty): A = λI + Σ w x xᵀ."""
    ridge_auto: bool = True
    """Choose each action's λ by maximising the evidence of its data (``evidence_lambda``), starting
    from ``ridge_lambda`` (or ``prior_strength`` under the cold-start prior); False: use it as is."""
    exploration_floor: float = Field(0.05, ge=0, le=1)
    """ε: this share of probability is spread uniformly over the allowed actions (every action keeps ≥ ε/k)."""
    max_exploration: float = Field(0.5, ge=0, le=1)
    """Cap on the probability the strategy itself puts on non-greedy actions (before the floor is mixed in)."""
    exploration_scale: float = Field(1.0, ge=0)
    """Width multiplier: LinUCB's α and Thompson sampling's posterior scale (times the noise sd)."""
    temperature: float = Field(0.5, gt=0)
    """Softmax temperature in reward units (smaller is greedier)."""
    thompson_draws: int = Field(2000, ge=100)
    """Monte Carlo draws (common random numbers, fixed seed) that define Thompson sampling's probabilities."""
    importance_weighting: bool = False
    """Weight each logged example by 1/propensity in the fit (clipped at ``max_importance_weight``)."""
    max_importance_weight: float = Field(20.0, gt=0)
    """Clip of the 1/propensity importance weight."""
    seed: int = 7
    """Seed of Monte Carlo draws and of the per-decision sampling hash."""
    logging_policy: Literal["uniform", "baseline"] = "baseline"
    """Policy used while no champion exists: uniform over allowed actions, or the baseline cadence."""
    baseline_action: str = "email@1d"
    """The baseline cadence's action when the lead was not touched recently."""
    recent_touch_col: str | None = None
    """Optional numeric column: when > 0 the baseline holds instead (e.g. touches in the last day)."""
    cold_start_min_examples: int | None = Field(None, ge=0)
    """When some action has fewer training examples than this, every action's weights shrink towards a
    pooled ``pyspark.ml`` engagement model (the prior); ``None`` (the default): always, however much data
    there is (each action's evidence λ decides how far it moves away); ``0``: never."""
    prior_strength: float = Field(5.0, gt=0)
    """Precision of the cold-start prior (replaces λ when a prior mean is used)."""
    validation_fraction: float = Field(0.3, gt=0, lt=1)
    """Latest share of the complete decisions (by ``decided_at``) held out for off-policy validation (the
    challenger's estimates and the promotion gate); complete: made before the earliest decision whose reward
    window is still open."""
    tuning_fraction: float = Field(0.3, gt=0, lt=1)
    """Latest share of the *training* decisions on which hyperopt scores its trials. Tuning never reads the
    validation decisions, so the gate does not score the best of many trials on the very rows that picked it."""
    tuning_folds: int = Field(1, ge=1)
    """Consecutive time slices the ``tuning_fraction`` is cut into (rolling origin): each slice is scored by
    a fit on every training decision before it, and a trial's objective pools the slices."""
    tuning_max_evals: int = Field(12, ge=1)
    """hyperopt evaluations in ``train --phase tune``."""
    tuning_random_evals: int = Field(5, ge=1)
    """Random trials before TPE proposes from its model (hyperopt's ``n_startup_jobs``)."""
    ope_bootstrap: int = Field(200, ge=10)
    """Bootstrap replicates of the off-policy confidence intervals."""
    ope_alpha: float = Field(0.05, gt=0, lt=1)
    """1 - confidence level of the off-policy intervals."""
    harm_tolerance: float = Field(0.0, ge=0)
    """The gate accepts a challenger whose estimated harm rate exceeds the baseline's by at most this."""
    min_training_examples: int = Field(50, ge=1)
    """``train`` refuses to fit on fewer closed-window decisions."""
    reward_source: Literal["attributed", "explicit", "engagement"] = "engagement"
    """Reward to learn from: ``explicit`` — only events naming the decision (its own responses);
    ``engagement`` — the same with the positive part replaced by its channel's mean per engaged decision
    (Rao–Blackwellised, far less noisy); ``attributed`` — the outcome's reward, organic activity credited
    by last-touch attribution included."""

    @classmethod
    def from_config(cls, cfg: NurtureConfig) -> LearningSettings:
        """Read ``cfg.section("learning")``; a bad value raises :class:`ConfigError` naming the field."""
        try:
            return cls(**cfg.section("learning"))
        except ValueError as exc:
            raise ConfigError(f"learning: {exc}") from None
