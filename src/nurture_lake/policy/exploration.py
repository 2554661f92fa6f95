"""Exact action probabilities for every exploration strategy, and deterministic sampling.

Everything here is plain numpy on arrays of shape ``(n, k)`` (``n`` decisions, ``k`` actions in the
policy's fixed order) with a boolean ``allowed`` mask of the same shape: guardrails remove actions
*before* sampling, so probabilities are renormalised over the allowed actions only.

The probability vector returned is the distribution actually sampled from, so the logged propensity
is exact by construction — also for Thompson sampling, whose probabilities come from a fixed, seeded
Monte Carlo (common random numbers shared by every decision) instead of a single posterior draw.

Example::

    probs = action_probabilities("softmax", means, widths, allowed, params)
    chosen = sample_actions(probs, decision_uniforms(["d1", "d2"], seed=7))
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

_THOMPSON_CHUNK = 128


@dataclass(frozen=True)
class ExplorationParams:
    """How a learned policy turns expected rewards and uncertainty into probabilities."""

    strategy: str = "thompson"
    floor: float = 0.05
    max_exploration: float = 0.5
    scale: float = 1.0
    temperature: float = 0.5
    draws: int = 2000
    seed: int = 7
    max_exploration_rate: float = 1.0
    """Guardrail cap (``guardrails.max_exploration_rate``) on the *final* probability of non-greedy actions,
    exploration floor included; applied last, so the floor shrinks with it when both cannot hold."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; known: {', '.join(STRATEGIES)}")
        if not all(0.0 <= v <= 1.0 for v in (self.floor, self.max_exploration, self.max_exploration_rate)):
            raise ValueError("floor, max_exploration and max_exploration_rate must lie in [0, 1]")
        if self.temperature <= 0 or self.draws < 1 or self.scale < 0:
            raise ValueError("temperature must be > 0, draws >= 1, scale >= 0")

    def with_changes(self, **changes: Any) -> ExplorationParams:
        """A copy with some fields replaced (used by tuning)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


STRATEGIES: tuple[str, ...] = ("thompson", "linucb", "softmax", "epsilon_greedy")


def decision_uniforms(decision_ids: Iterable[str], seed: int) -> np.ndarray:
    """One uniform in [0, 1) per decision: SHA-256 of ``"<seed>:<decision_id>"`` → 53 bits.

    A replay of the same decision id with the same seed draws the same number, hence the same action.
    """
    out = []
    for decision_id in decision_ids:
        digest = hashlib.sha256(f"{seed}:{decision_id}".encode()).digest()
        out.append((int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53))
    return np.asarray(out, dtype=np.float64)


def sample_actions(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling over the fixed action order; -1 where a row has no allowed action."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    cdf = np.cumsum(probs, axis=1)
    idx = (cdf <= uniforms[:, None]).sum(axis=1)
    # Rounding can leave cdf[-1] a hair below u: fall back to the last action with positive probability.
    positive = probs > 0
    last_positive = np.where(positive.any(axis=1), probs.shape[1] - 1 - np.argmax(positive[:, ::-1], axis=1), -1)
    idx = np.minimum(idx, last_positive)
    return np.where(positive.any(axis=1), idx, -1).astype(np.int64)


def greedy_indices(means: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Index of the best allowed action per row (ties → first in the fixed order); -1 if none allowed."""
    masked = np.where(allowed, means, -np.inf)
    idx = np.argmax(masked, axis=1)
    return np.where(allowed.any(axis=1), idx, -1)


def _one_hot(idx: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((idx.shape[0], k))
    rows = np.nonzero(idx >= 0)[0]
    out[rows, idx[rows]] = 1.0
    return out


def _softmax(means: np.ndarray, allowed: np.ndarray, temperature: float) -> np.ndarray:
    masked = np.where(allowed, means / temperature, -np.inf)
    top = np.max(masked, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.where(allowed, np.exp(masked - top), 0.0)
    total = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


def thompson_noise(draws: int, k: int, seed: int) -> np.ndarray:
    """The fixed standard-normal draws (``draws × k``) every decision's Monte Carlo shares."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0x7E5])).standard_normal((draws, k))


def _thompson(means: np.ndarray, widths: np.ndarray, allowed: np.ndarray, scale: float, noise: np.ndarray) -> np.ndarray:
    """P(action is the argmax of one posterior draw), by Monte Carlo with common random numbers."""
    n, k = means.shape
    out = np.zeros((n, k))
    draws = noise.shape[0]
    for start in range(0, n, _THOMPSON_CHUNK):
        stop = min(n, start + _THOMPSON_CHUNK)
        m = means[start:stop, None, :]
        w = widths[start:stop, None, :] * scale
        scores = m + w * noise[None, :, :]
        scores = np.where(allowed[start:stop, None, :], scores, -np.inf)
        winners = np.argmax(scores, axis=2)  # (rows, draws)
        for j in range(k):
            out[start:stop, j] = (winners == j).sum(axis=1) / draws
    return np.where(allowed.any(axis=1, keepdims=True), out, 0.0)


def _budget(probs: np.ndarray, greedy: np.ndarray, max_exploration: float) -> np.ndarray:
    """Cap the strategy's mass on non-greedy actions at ``max_exploration``."""
    n, k = probs.shape
    rows = np.nonzero(greedy >= 0)[0]
    if rows.size == 0:
        return probs
    p_greedy = probs[rows, greedy[rows]]
    explore = 1.0 - p_greedy
    over = explore > max_exploration + 1e-15
    if not over.any():
        return probs
    out = probs.copy()
    r = rows[over]
    factor = max_exploration / explore[over]
    out[r] *= factor[:, None]
    out[r, greedy[r]] = 1.0 - max_exploration
    return out


def _floor(probs: np.ndarray, allowed: np.ndarray, floor: float) -> np.ndarray:
    count = allowed.sum(axis=1, keepdims=True)
    uniform = np.divide(allowed.astype(float), count, out=np.zeros(probs.shape), where=count > 0)
    return (1.0 - floor) * probs + floor * uniform


def action_probabilities(
    means: np.ndarray,
    widths: np.ndarray,
    allowed: np.ndarray,
    params: ExplorationParams,
    *,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """Exact probability of every action (0 for blocked ones), rows summing to 1 (0 if nothing allowed).

    ``means``: expected reward per action; ``widths``: posterior standard deviation of that mean
    (used by ``thompson`` and ``linucb``). The strategy's distribution is first capped so at most
    ``max_exploration`` goes to non-greedy actions, then mixed with the uniform floor:
    ``p = (1 - floor) · p_strategy + floor / k_allowed``; finally, when the non-greedy actions together
    hold more than ``max_exploration_rate``, they are scaled down (keeping their proportions) to exactly
    that share and the greedy action gets the rest.
    """
    means = np.asarray(means, dtype=np.float64)
    widths = np.asarray(widths, dtype=np.float64)
    allowed = np.asarray(allowed, dtype=bool)
    k = means.shape[1]
    greedy = greedy_indices(means, allowed)
    if params.strategy == "epsilon_greedy":
        base = _one_hot(greedy, k)
    elif params.strategy == "linucb":
        base = _one_hot(greedy_indices(means + params.scale * widths, allowed), k)
    elif params.strategy == "softmax":
        base = _softmax(means, allowed, params.temperature)
    else:
        if noise is None:
            noise = thompson_noise(params.draws, k, params.seed)
        base = _thompson(means, widths, allowed, params.scale, noise)
    base = _budget(base, greedy, params.max_exploration)
    probs = _floor(base, allowed, params.floor)
    probs = np.where(allowed, probs, 0.0)
    total = probs.sum(axis=1, keepdims=True)
    probs = np.divide(probs, total, out=np.zeros_like(probs), where=total > 0)
    return _budget(probs, greedy, params.max_exploration_rate)
