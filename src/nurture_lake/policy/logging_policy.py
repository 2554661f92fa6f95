"""The logging policy used until a learned policy is champion, with exact propensities.

``uniform``: every allowed action equally likely. ``baseline``: a fixed cadence — the baseline
action (e.g. ``email@1d``), or ``hold`` when the lead was touched recently — mixed with an
exploration floor ε spread uniformly over the allowed actions. When the cadence's action is
blocked by a guardrail, the cadence falls back to ``hold`` (or, if hold is blocked too, uniform).

Example::

    policy = LoggingPolicy(space.action_ids, kind="baseline", floor=0.1)
    policy.probabilities(contexts, allowed)   # rows sum to 1 over allowed actions
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nurture_lake.actions import HOLD
from nurture_lake.policy.settings import LearningSettings


@dataclass
class LoggingPolicy:
    """Uniform or baseline-cadence policy with an exploration floor."""

    action_ids: tuple[str, ...]
    kind: str = "baseline"
    baseline_action: str = "email@1d"
    floor: float = 0.1
    seed: int = 7

    policy_kind: str = "logging"

    def __post_init__(self) -> None:
        self.action_ids = tuple(self.action_ids)
        if self.kind not in ("uniform", "baseline"):
            raise ValueError(f"logging policy kind must be 'uniform' or 'baseline', got {self.kind!r}")
        if self.kind == "baseline" and self.baseline_action not in self.action_ids:
            raise ValueError(f"baseline action {self.baseline_action!r} is not an action of the space")
        if not 0.0 <= self.floor <= 1.0:
            raise ValueError("floor must lie in [0, 1]")

    def expected_rewards(self, contexts: np.ndarray) -> None:
        """The logging policy has no reward model."""
        return None

    def cadence_actions(self, n: int, allowed: np.ndarray, recent_touch: np.ndarray | None) -> np.ndarray:
        """Index of the cadence's action per row (before the floor)."""
        k = len(self.action_ids)
        base = self.action_ids.index(self.baseline_action)
        hold = self.action_ids.index(HOLD) if HOLD in self.action_ids else -1
        choice = np.full(n, base)
        if recent_touch is not None and hold >= 0:
            touched = np.nan_to_num(np.asarray(recent_touch, dtype=np.float64), nan=0.0) > 0
            choice = np.where(touched, hold, choice)
        rows = np.arange(n)
        blocked = ~allowed[rows, choice] if k else np.zeros(n, dtype=bool)
        if hold >= 0:
            choice = np.where(blocked & allowed[:, hold], hold, choice)
        return choice

    def probabilities(
        self, contexts: np.ndarray | None, allowed: np.ndarray, *, recent_touch: np.ndarray | None = None,
    ) -> np.ndarray:
        """Exact probability of every action; rows sum to 1 over allowed actions (0 if none allowed)."""
        allowed = np.asarray(allowed, dtype=bool)
        n, _ = allowed.shape
        count = allowed.sum(axis=1, keepdims=True)
        uniform = np.divide(allowed.astype(float), count, out=np.zeros(allowed.shape), where=count > 0)
        if self.kind == "uniform":
            return uniform
        choice = self.cadence_actions(n, allowed, recent_touch)
        rows = np.arange(n)
        chosen_ok = allowed[rows, choice]
        cadence = np.zeros(allowed.shape)
        cadence[rows[chosen_ok], choice[chosen_ok]] = 1.0
        cadence[~chosen_ok] = uniform[~chosen_ok]
        return (1.0 - self.floor) * cadence + self.floor * uniform

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "logging_policy", "action_ids": list(self.action_ids), "policy": self.kind,
            "baseline_action": self.baseline_action, "floor": self.floor, "seed": self.seed,
        }

    @classmethod
    def from_settings(cls, action_ids: tuple[str, ...], settings: LearningSettings) -> LoggingPolicy:
        """The logging policy configured in the ``learning`` section."""
        return cls(tuple(action_ids), kind=settings.logging_policy, baseline_action=settings.baseline_action,
                   floor=max(settings.exploration_floor, 1e-3), seed=settings.seed)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LoggingPolicy:
        return cls(
            tuple(raw["action_ids"]), kind=raw["policy"], baseline_action=raw["baseline_action"],
            floor=float(raw["floor"]), seed=int(raw["seed"]),
        )
