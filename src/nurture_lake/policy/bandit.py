"""The learned policy: per-action Bayesian linear (ridge) regression fitted from Spark aggregates.

Training is distributed: every partition turns its logged decisions into per-action partial sums
(``XᵀWX``, ``XᵀWr``, ``Σw r²``, counts) with numpy inside ``mapInArrow`` (zero-copy context matrices); Spark adds the partials
(each action's vector cut into blocks of ``_BLOCK`` values, summed element-wise per block by a ``groupBy``, so
the reduce is a cluster aggregation too and moves a few rows per action, not one per number) and only the
``k × (d² + d + 3)`` totals reach the driver, where each action's system is solved:

    A_a = λI + Σ w x xᵀ,   b_a = λ μ0_a + Σ w r x,   θ_a = A_a⁻¹ b_a,   Cov(θ_a) = σ² A_a⁻¹

``μ0`` is the cold-start prior mean (zero without one). ``w`` is 1, or the clipped 1/propensity.
With ``auto_lambda`` each action gets its own λ_a, the one that maximises the marginal likelihood
(evidence) of its data under that prior (:func:`evidence_lambda`) — computed from the same totals, so
the regularisation follows how much signal an action's data actually holds instead of a fixed λ that
is far too weak for noisy rewards (or too strong for clean ones).

Example::

    stats = sufficient_statistics(training_df, action_ids=space.action_ids)
    policy = fit_linear_bandit(stats, ridge_lambda=1.0, exploration=ExplorationParams("softmax"))
    probs = policy.probabilities(contexts, allowed_mask)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, IntegerType, StringType, StructField, StructType

from nurture_lake.policy.exploration import ExplorationParams, action_probabilities, thompson_noise

_PARTIAL_SCHEMA = StructType([
    StructField("action", StringType(), False),
    StructField("block", IntegerType(), False),
    StructField("values", ArrayType(DoubleType(), False), False),
])
# Layout of a partial-sum vector: [count, weight_sum, Σ w r², XᵀWr (d), XᵀWX (d², row-major)].
_HEAD = 3
# Values per shuffled row of partial sums: 127 context slots make 16,259 values an action, four rows.
_BLOCK = 4096


@dataclass(frozen=True)
class SufficientStats:
    """Per-action totals of the logged data (arrays indexed like ``action_ids``)."""

    action_ids: tuple[str, ...]
    xtx: np.ndarray      # (k, d, d)  Σ w x xᵀ
    xtr: np.ndarray      # (k, d)     Σ w r x
    r2: np.ndarray       # (k,)       Σ w r²
    counts: np.ndarray   # (k,)       examples
    weights: np.ndarray  # (k,)       Σ w

    @property
    def dim(self) -> int:
        return int(self.xtr.shape[1])

    @property
    def total(self) -> int:
        return int(self.counts.sum())


def _weights(propensity: np.ndarray, importance_weighting: bool, max_weight: float) -> np.ndarray:
    if not importance_weighting:
        return np.ones_like(propensity)
    return np.minimum(1.0 / np.maximum(propensity, 1e-12), max_weight)


def partial_statistics(
    contexts: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    weights: np.ndarray,
) -> dict[str, np.ndarray]:
    """The partial-sum vector of each action present in one chunk (numpy, no Spark)."""
    out: dict[str, np.ndarray] = {}
    for action in np.unique(actions):
        sel = actions == action
        x = contexts[sel]
        w = weights[sel]
        r = rewards[sel]
        xw = x * w[:, None]
        out[str(action)] = np.concatenate([
            [float(sel.sum()), float(w.sum()), float(np.dot(w, r * r))],
            xw.T @ r,
            (xw.T @ x).ravel(),
        ])
    return out


def sufficient_statistics(
    df: DataFrame,
    *,
    action_ids: Sequence[str],
    context_col: str = "context",
    action_col: str = "action",
    reward_col: str = "reward",
    propensity_col: str = "propensity",
    importance_weighting: bool = False,
    max_importance_weight: float = 20.0,
) -> SufficientStats:
    """Aggregate per-action sufficient statistics over the cluster and return the totals.

    Actions outside ``action_ids`` are ignored. This runs a Spark job and collects ``O(k·d²)`` numbers.
    """
    known = list(action_ids)
    cols = [F.col(context_col).alias("x"), F.col(action_col).alias("a"), F.col(reward_col).cast("double").alias("r")]
    cols.append(F.col(propensity_col).cast("double").alias("p") if importance_weighting else F.lit(1.0).alias("p"))
    usable = F.col("a").isin(known) & F.col("x").isNotNull() & F.col("r").isNotNull() & F.col("p").isNotNull()
    source = df.select(*cols).where(usable)

    def _partials(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        totals: dict[str, np.ndarray] = {}
        for batch in batches:
            if batch.num_rows == 0:
                continue
            x = _context_matrix(batch.column("x"))
            w = _weights(batch.column("p").to_numpy(zero_copy_only=False).astype(np.float64),
                         importance_weighting, max_importance_weight)
            acts = np.asarray(batch.column("a").to_numpy(zero_copy_only=False))
            rewards = batch.column("r").to_numpy(zero_copy_only=False).astype(np.float64)
            for action, vec in partial_statistics(x, acts, rewards, w).items():
                totals[action] = totals[action] + vec if action in totals else vec
        if totals:
            yield _blocks_batch(totals)

    partials = source.mapInArrow(_partials, _PARTIAL_SCHEMA)
    rest = F.slice("parts", F.lit(2), F.size("parts") - 1)
    summed = (
        partials.groupBy("action", "block")
        .agg(F.collect_list("values").alias("parts"))
        .select("action", "block", F.aggregate(rest, F.col("parts")[0],
                                               lambda acc, v: F.zip_with(acc, v, lambda a, b: a + b)).alias("values"))
        .collect()
    )
    blocks: dict[str, dict[int, list[float]]] = {}
    for row in summed:
        blocks.setdefault(row["action"], {})[int(row["block"])] = row["values"]
    vectors = {a: np.concatenate([np.asarray(parts[b], dtype=np.float64) for b in sorted(parts)])
               for a, parts in blocks.items()}
    return _assemble(known, vectors)


def _blocks_batch(totals: dict[str, np.ndarray]) -> pa.RecordBatch:
    """One row per ``_BLOCK`` values of each action's partial-sum vector (``_PARTIAL_SCHEMA``)."""
    actions, blocks, chunks = [], [], []
    for action, vec in totals.items():
        for block, start in enumerate(range(0, len(vec), _BLOCK)):
            actions.append(action)
            blocks.append(block)
            chunks.append(vec[start:start + _BLOCK])
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int32)
    values = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(chunks), pa.float64()))
    return pa.RecordBatch.from_arrays(
        [pa.array(actions, pa.string()), pa.array(blocks, pa.int32()), values], names=["action", "block", "values"]
    )


def _context_matrix(column: pa.Array) -> np.ndarray:
    """An Arrow ``list<double>`` column as an ``(n, d)`` matrix without a per-row Python loop."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if lengths.size and (lengths != lengths[0]).any():
        raise ValueError("context vectors of different lengths in the training data")
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    return values.reshape(len(column), int(lengths[0]) if lengths.size else 0)


def _assemble(action_ids: list[str], vectors: dict[str, np.ndarray], dim: int | None = None) -> SufficientStats:
    """Totals from each action's summed partial-sum vector (actions without one get zeros; ``dim`` is
    needed only when no action has one)."""
    lengths = {len(v) for v in vectors.values()}
    if len(lengths) > 1:
        raise ValueError("context vectors of different lengths in the training data")
    if lengths:
        length = lengths.pop()
        dim = int(round((-1 + np.sqrt(1 + 4 * (length - _HEAD))) / 2))
        if _HEAD + dim + dim * dim != length:
            raise ValueError("malformed sufficient statistics")
    dim = dim or 1
    k = len(action_ids)
    vec = np.zeros((k, _HEAD + dim + dim * dim))
    for i, action in enumerate(action_ids):
        if action in vectors:
            vec[i] = vectors[action]
    return SufficientStats(
        action_ids=tuple(action_ids),
        counts=vec[:, 0].round().astype(np.int64),
        weights=vec[:, 1],
        r2=vec[:, 2],
        xtr=vec[:, _HEAD:_HEAD + dim],
        xtx=vec[:, _HEAD + dim:].reshape(k, dim, dim),
    )


def statistics_from_arrays(
    contexts: np.ndarray,
    actions: Sequence[str],
    rewards: np.ndarray,
    *,
    action_ids: Sequence[str],
    propensities: np.ndarray | None = None,
    importance_weighting: bool = False,
    max_importance_weight: float = 20.0,
) -> SufficientStats:
    """The same statistics computed in memory (small data, tests, benchmarks' reference)."""
    contexts = np.asarray(contexts, dtype=np.float64)
    props = np.ones(len(rewards)) if propensities is None else np.asarray(propensities, dtype=np.float64)
    w = _weights(props, importance_weighting, max_importance_weight)
    partial = partial_statistics(contexts, np.asarray(actions), np.asarray(rewards, dtype=np.float64), w)
    known = list(action_ids)
    return _assemble(known, {a: v for a, v in partial.items() if a in known}, dim=contexts.shape[1])


@dataclass
class LinearBandit:
    """A fitted per-action linear reward model with an exploration strategy."""

    action_ids: tuple[str, ...]
    theta: np.ndarray        # (k, d) posterior means
    a_inv: np.ndarray        # (k, d, d) inverse precision (unscaled posterior covariance)
    noise_sd: float
    counts: np.ndarray       # (k,) training examples per action
    exploration: ExplorationParams = field(default_factory=ExplorationParams)
    hyperparams: dict[str, Any] = field(default_factory=dict)

    policy_kind: str = "learned"

    @property
    def dim(self) -> int:
        return int(self.theta.shape[1])

    def _contexts(self, contexts: np.ndarray) -> np.ndarray:
        x = np.asarray(contexts, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"contexts must have shape (n, {self.dim}), got {x.shape}")
        return x

    def expected_rewards(self, contexts: np.ndarray) -> np.ndarray:
        """Posterior mean reward of every action, shape ``(n, k)``."""
        return self._contexts(contexts) @ self.theta.T

    def widths(self, contexts: np.ndarray) -> np.ndarray:
        """Posterior standard deviation of each action's mean reward: ``σ · sqrt(xᵀ A⁻¹ x)``."""
        x = self._contexts(contexts)
        quad = np.einsum("nd,kde,ne->nk", x, self.a_inv, x)
        return self.noise_sd * np.sqrt(np.maximum(quad, 0.0))

    def probabilities(
        self, contexts: np.ndarray, allowed: np.ndarray, *, recent_touch: np.ndarray | None = None,
    ) -> np.ndarray:
        """Exact probability of every action given the allowed mask (``recent_touch`` is ignored)."""
        x = self._contexts(contexts)
        noise = self._noise() if self.exploration.strategy == "thompson" else None
        return action_probabilities(self.expected_rewards(x), self.widths(x), allowed, self.exploration, noise=noise)

    def _noise(self) -> np.ndarray:
        cache = self.__dict__.setdefault("_noise_cache", {})
        key = (self.exploration.draws, len(self.action_ids), self.exploration.seed)
        if key not in cache:
            cache.clear()
            cache[key] = thompson_noise(*key)
        return cache[key]

    def with_exploration(self, params: ExplorationParams) -> LinearBandit:
        """The same fitted model with another exploration strategy."""
        return LinearBandit(
            self.action_ids, self.theta, self.a_inv, self.noise_sd, self.counts, params, dict(self.hyperparams),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (the MLflow artifact)."""
        return {
            "kind": "linear_bandit",
            "action_ids": list(self.action_ids),
            "theta": self.theta.tolist(),
            "a_inv": self.a_inv.tolist(),
            "noise_sd": self.noise_sd,
            "counts": self.counts.tolist(),
            "exploration": self.exploration.to_dict(),
            "hyperparams": self.hyperparams,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LinearBandit:
        return cls(
            action_ids=tuple(raw["action_ids"]),
            theta=np.asarray(raw["theta"], dtype=np.float64),
            a_inv=np.asarray(raw["a_inv"], dtype=np.float64),
            noise_sd=float(raw["noise_sd"]),
            counts=np.asarray(raw["counts"], dtype=np.int64),
            exploration=ExplorationParams(**raw["exploration"]),
            hyperparams=dict(raw.get("hyperparams", {})),
        )


def evidence_lambda(
    xtx: np.ndarray,
    xtr: np.ndarray,
    r2: float,
    n: float,
    *,
    prior_mean: np.ndarray | None = None,
    start: float = 1.0,
    iterations: int = 100,
    bounds: tuple[float, float] = (1e-6, 1e8),
) -> float:
    """The ridge λ that maximises the evidence of one action's data (MacKay's fixed point).

    Model: ``r = θᵀx + ε``, ``ε ~ N(0, 1/β)``, prior ``θ ~ N(μ0, I/α)``; λ = α/β. With the eigenvalues
    ``e`` of ``XᵀWX``, the posterior mean ``m`` and ``γ = Σ e/(e + λ)`` well-determined parameters, the
    fixed point is ``λ = γ · SSE / (|m − μ0|² · (n − γ))``. Everything comes from the sufficient
    statistics (``n`` is the weight sum); returns ``start`` when there is too little data.

    Example: ``evidence_lambda(stats.xtx[a], stats.xtr[a], stats.r2[a], stats.weights[a])``.
    """
    d = xtr.shape[0]
    mu0 = np.zeros(d) if prior_mean is None else np.asarray(prior_mean, dtype=np.float64)
    b = xtr - xtx @ mu0                                  # Xᵀ(r − Xμ0)
    r2s = r2 - 2.0 * mu0 @ xtr + mu0 @ xtx @ mu0          # |r − Xμ0|²
    eig, vec = np.linalg.eigh((xtx + xtx.T) / 2.0)
    eig = np.maximum(eig, 0.0)
    proj = vec.T @ b
    lo, hi = bounds
    lam = float(min(max(start, lo), hi))
    if n <= 2.0 or not np.isfinite(r2s):
        return lam
    for _ in range(iterations):
        m = proj / (eig + lam)                           # posterior mean − μ0, in the eigenbasis
        gamma = float(np.sum(eig / (eig + lam)))
        if n - gamma <= 1.0:
            return lam
        sse = max(r2s - 2.0 * m @ proj + float(np.sum(eig * m * m)), 1e-12)
        mm = float(m @ m)
        new = hi if mm <= 1e-300 else min(max(gamma * sse / (mm * (n - gamma)), lo), hi)
        if abs(np.log(new / lam)) < 1e-6:
            return new
        lam = new
    return lam


def fit_linear_bandit(
    stats: SufficientStats,
    *,
    ridge_lambda: float = 1.0,
    exploration: ExplorationParams | None = None,
    prior_mean: np.ndarray | None = None,
    prior_strength: float | None = None,
    auto_lambda: bool = False,
) -> LinearBandit:
    """Solve every action's ridge / Bayesian linear regression on the driver.

    With ``prior_mean`` (shape ``(k, d)``) the weights shrink towards it with precision
    ``prior_strength`` (default ``ridge_lambda``) instead of towards zero. With ``auto_lambda`` each
    action with data uses :func:`evidence_lambda` (started from that precision) instead.
    """
    k, d = len(stats.action_ids), stats.dim
    lam = float(prior_strength if prior_mean is not None and prior_strength is not None else ridge_lambda)
    mu0 = np.zeros((k, d)) if prior_mean is None else np.asarray(prior_mean, dtype=np.float64)
    if mu0.shape != (k, d):
        raise ValueError(f"prior_mean must have shape {(k, d)}, got {mu0.shape}")
    eye = np.eye(d)
    theta = np.zeros((k, d))
    a_inv = np.zeros((k, d, d))
    sse = 0.0
    lambdas = np.full(k, lam)
    for i in range(k):
        if auto_lambda and stats.counts[i] > 0:
            lambdas[i] = evidence_lambda(stats.xtx[i], stats.xtr[i], float(stats.r2[i]), float(stats.weights[i]),
                                         prior_mean=mu0[i], start=lam)
        precision = lambdas[i] * eye + stats.xtx[i]
        theta[i] = np.linalg.solve(precision, lambdas[i] * mu0[i] + stats.xtr[i])
        a_inv[i] = np.linalg.inv(precision)
        t = theta[i]
        sse += max(stats.r2[i] - 2.0 * t @ stats.xtr[i] + t @ stats.xtx[i] @ t, 0.0)
    dof = float(stats.weights.sum()) - k * d
    noise_sd = float(np.sqrt(sse / dof)) if dof >= 1.0 and sse > 0 else 1.0
    return LinearBandit(
        action_ids=stats.action_ids,
        theta=theta,
        a_inv=a_inv,
        noise_sd=noise_sd,
        counts=stats.counts.copy(),
        exploration=exploration or ExplorationParams(),
        hyperparams={"ridge_lambda": ridge_lambda, "prior": prior_mean is not None, "prior_strength": lam,
                     "auto_lambda": auto_lambda, "lambdas": lambdas.tolist()},
    )
