"""Off-policy estimators as ratios of sums of per-row terms.

Notation, for logged row ``i`` (of ``n``) with logged action ``a_i``, reward ``r_i`` and logging
propensity ``p_i = μ(a_i | x_i)``:

* ``π(a | x_i)``: the evaluated (target) policy's probability of action ``a`` (``target_probs``;
  an action missing from the map has probability 0),
* ``w_i = π(a_i | x_i) / p_i``: the importance weight of the logged action,
* ``q̂_i(a)``: the reward model's prediction for action ``a`` (``expected_rewards``), ``q̂_i = q̂_i(a_i)``,
* ``v̂_i = Σ_a π(a | x_i) q̂_i(a)``: the reward model's value of the target policy on row ``i``.

Every estimator is a function of a handful of sums ``S[t] = Σ_i c_i t_i`` of per-row terms
``t_i`` (``c_i = 1`` for the point estimate, a Poisson(1) count in a bootstrap resample, so that
``S["n"] = Σ_i c_i`` is the resample's size). :func:`row_terms` computes the terms as Spark
columns; :func:`estimate` turns sums into values, vectorised over resamples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

Sums = Mapping[str, "np.ndarray | float"]
"""Named sums of per-row terms; values are scalars (point estimate) or arrays (one per resample)."""

TERMS: tuple[str, ...] = ("n", "w", "w2", "wr", "cw", "cw2", "cwr", "dm", "res", "sw", "sw2", "swres")
"""Every per-row term, in a fixed order. ``n``: 1; ``w``: w_i; ``w2``: w_i²; ``wr``: w_i r_i;
``cw``/``cw2``/``cwr``: the same with the clipped weight min(w_i, M); ``dm``: v̂_i;
``res``: w_i (r_i − q̂_i); ``sw``/``sw2``/``swres``: with the switched weight w_i 1{w_i ≤ τ}."""

PROB_SUM_TOLERANCE = 1e-6
"""How far a row's ``target_probs`` may sum from 1 before it is rejected."""

MODEL_TERMS: frozenset[str] = frozenset({"dm", "res", "swres"})
"""Terms that need the ``expected_rewards`` column."""


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """``num / den`` with NaN where the denominator is zero (an empty resample or all-zero weights)."""
    num_a = np.asarray(num, dtype=np.float64)
    den_a = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num_a, den_a).shape, np.nan)
    np.divide(num_a, den_a, out=out, where=den_a != 0)
    return out


def ips(s: Sums) -> np.ndarray:
    """Inverse propensity scoring: ``V = (1/n) Σ_i w_i r_i``."""
    return _ratio(s["wr"], s["n"])


def snips(s: Sums) -> np.ndarray:
    """Self-normalised IPS (Swaminathan & Joachims 2015): ``V = Σ_i w_i r_i / Σ_i w_i``."""
    return _ratio(s["wr"], s["w"])


def clipped_ips(s: Sums) -> np.ndarray:
    """IPS with weights clipped at ``M``: ``V = (1/n) Σ_i min(w_i, M) r_i``."""
    return _ratio(s["cwr"], s["n"])


def dm(s: Sums) -> np.ndarray:
    """Direct method (Dudík, Langford & Li 2011): ``V = (1/n) Σ_i Σ_a π(a|x_i) q̂_i(a) = (1/n) Σ_i v̂_i``."""
    return _ratio(s["dm"], s["n"])


def dr(s: Sums) -> np.ndarray:
    """Doubly robust (Dudík, Langford & Li 2011): ``V = (1/n) Σ_i [v̂_i + w_i (r_i − q̂_i)]``."""
    return _ratio(np.add(s["dm"], s["res"]), s["n"])


def sndr(s: Sums) -> np.ndarray:
    """Self-normalised DR: ``V = (1/n) Σ_i v̂_i + Σ_i w_i (r_i − q̂_i) / Σ_i w_i``.

    The correction term is normalised by the weight sum instead of ``n``, as SNIPS does for IPS.
    """
    return dm(s) + _ratio(s["res"], s["w"])


def switch_dr(s: Sums) -> np.ndarray:
    """Switch-DR (Wang, Agarwal & Dudík 2017): ``V = (1/n) Σ_i [v̂_i + 1{w_i ≤ τ} w_i (r_i − q̂_i)]``.

    Where the weight exceeds ``τ`` the row keeps only the model's value (DM); elsewhere it gets the DR
    correction. Only the logged action's propensity is known, so the switch is made on the logged
    weight; in expectation over the logging policy this equals the paper's per-action form
    ``Σ_a π(a|x) [1{ρ(x,a) ≤ τ} r(x,a) + 1{ρ(x,a) > τ} q̂(x,a)]`` (with ``ρ = π/μ``).
    """
    return _ratio(np.add(s["dm"], s["swres"]), s["n"])


@dataclass(frozen=True)
class EstimatorSpec:
    """One estimator: its value as a function of sums, the sums it needs, and its ESS weights."""

    name: str
    value: Callable[[Sums], np.ndarray]
    terms: tuple[str, ...]
    """Sums the value needs (resampled by the bootstrap)."""
    ess_terms: tuple[str, str] | None
    """``(Σv, Σv²)`` of the weights the estimator puts on observed rewards; ``None``: ESS is ``n``."""

    @property
    def model_based(self) -> bool:
        """Whether the estimator needs ``expected_rewards``."""
        return bool(MODEL_TERMS.intersection(self.terms))


ESTIMATORS: dict[str, EstimatorSpec] = {
    spec.name: spec
    for spec in (
        EstimatorSpec("ips", ips, ("n", "wr"), ("w", "w2")),
        EstimatorSpec("snips", snips, ("w", "wr"), ("w", "w2")),
        EstimatorSpec("clipped_ips", clipped_ips, ("n", "cwr"), ("cw", "cw2")),
        EstimatorSpec("dm", dm, ("n", "dm"), None),
        EstimatorSpec("dr", dr, ("n", "dm", "res"), ("w", "w2")),
        EstimatorSpec("sndr", sndr, ("n", "w", "dm", "res"), ("w", "w2")),
        EstimatorSpec("switch_dr", switch_dr, ("n", "dm", "swres"), ("sw", "sw2")),
    )
}
"""Every estimator by name, in reporting order."""

WEIGHT_ONLY = tuple(name for name, spec in ESTIMATORS.items() if not spec.model_based)
"""Estimators that need no reward model: ``ips``, ``snips``, ``clipped_ips``."""


def kish_ess(total: float, total_sq: float) -> float:
    """Kish effective sample size ``(Σ v)² / Σ v²`` (0 when every weight is 0)."""
    return float(total) ** 2 / float(total_sq) if total_sq > 0 else 0.0


def effective_sample_size(name: str, sums: Mapping[str, float]) -> float:
    """The estimator's ESS: Kish's formula on the weights it applies to observed rewards (DM: ``n``)."""
    spec = ESTIMATORS[name]
    if spec.ess_terms is None:
        return float(sums["n"])
    total, total_sq = spec.ess_terms
    return kish_ess(sums[total], sums[total_sq])


def estimate(name: str, sums: Sums) -> np.ndarray:
    """Estimator ``name``'s value from sums (a scalar array, or one value per resample)."""
    return ESTIMATORS[name].value(sums)


def row_terms(
    logged: DataFrame,
    *,
    clip: float,
    switch_tau: float,
    model_based: bool,
) -> DataFrame:
    """Add the per-row terms of :data:`TERMS` (as ``t_<term>`` columns) and validity flags.

    Pure transform. The weight is ``w = π(a|x) / propensity`` with ``π(a|x) = 0`` where the logged
    action is not a key of ``target_probs``; division uses ``try_divide`` so bad propensities give
    nulls (and a flag) rather than an ANSI error. Flags (``bad_<what>`` booleans) mark rows the
    caller must reject before trusting the sums. Model terms are added only when ``model_based``.
    """
    tp = F.col("target_probs")
    reward = F.col("reward").cast("double")
    propensity = F.col("propensity").cast("double")
    pi_logged = F.coalesce(F.try_element_at(tp, F.col("action")), F.lit(0.0))
    w = F.try_divide(pi_logged, propensity)
    clipped = F.least(w, F.lit(float(clip)))
    switched = F.when(w <= F.lit(float(switch_tau)), w).otherwise(F.lit(0.0))
    columns: dict[str, Column] = {
        "t_n": F.lit(1.0),
        "t_w": w,
        "t_w2": w * w,
        "t_wr": w * reward,
        "t_cw": clipped,
        "t_cw2": clipped * clipped,
        "t_cwr": clipped * reward,
        "t_sw": switched,
        "t_sw2": switched * switched,
    }
    # One interpreted pass over the map each: an invalid probability turns the sum into NaN.
    checked_sum = F.aggregate(
        F.map_values(tp),
        F.lit(0.0),
        lambda acc, v: acc + F.when(v.isNull() | F.isnan(v) | (v < 0) | (v > 1), F.lit(float("nan"))).otherwise(v),
    )
    flags: dict[str, Column] = {
        "bad_action": F.col("action").isNull(),
        "bad_reward": reward.isNull() | F.isnan(reward) | (F.abs(reward) == F.lit(float("inf"))),
        "bad_propensity": propensity.isNull() | F.isnan(propensity) | (propensity <= 0) | (propensity > 1),
        "bad_target": checked_sum.isNull()  # isnan(null) is false, so test null first
        | F.isnan(checked_sum)
        | (F.abs(checked_sum - F.lit(1.0)) > F.lit(PROB_SUM_TOLERANCE)),
    }
    if model_based:
        er = F.col("expected_rewards")
        q_logged = F.coalesce(F.try_element_at(er, F.col("action")), F.lit(0.0))
        # π(a)·q̂(a) per action of either map (map_zip_with merges by key in one pass); a missing or
        # non-finite prediction for an action with π(a) > 0 gives NaN, which then marks the row.
        products = F.map_zip_with(
            tp,
            er,
            lambda _k, p, q: F.when(F.coalesce(p, F.lit(0.0)) == 0, F.lit(0.0))
            .when(q.isNull() | F.isnan(q) | (F.abs(q) == F.lit(float("inf"))), F.lit(float("nan")))
            .otherwise(p * q),
        )
        v_hat = F.aggregate(F.map_values(products), F.lit(0.0), lambda acc, x: acc + x)
        residual = reward - q_logged
        columns.update({"t_dm": v_hat, "t_res": w * residual, "t_swres": switched * residual})
        flags["bad_model"] = v_hat.isNull() | F.isnan(v_hat)
    return logged.select("*", *(col.alias(name) for name, col in {**columns, **flags}.items()))
