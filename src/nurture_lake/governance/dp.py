"""Differential-privacy noise for aggregates exported to BI (Laplace mechanism).

Adding Laplace noise of scale ``b = sensitivity / epsilon`` to a numeric aggregate makes the
released value ε-differentially private with respect to one lead (when one lead changes the cell
by at most ``sensitivity``). The noise has mean 0 and variance ``2 b²``.

Noise is drawn natively in Spark by the inverse CDF of a seeded uniform: with ``u ~ U(-½, ½)``,
``-b · sign(u) · ln(1 - 2|u|)`` is Laplace(0, b). A fixed ``seed`` gives the same noise on the same
data and partitioning; use ``seed=None`` for a fresh draw per export.

Example::

    export = laplace_noise(counts_df, columns=["leads", "clicks"], epsilon=1.0, sensitivity=1.0, seed=7)
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def laplace_scale(*, epsilon: float, sensitivity: float) -> float:
    """``b = sensitivity / epsilon``; both must be positive."""
    if epsilon <= 0 or sensitivity <= 0:
        raise ValueError("epsilon and sensitivity must be positive")
    return sensitivity / epsilon


def _laplace(scale: float, seed: int | None) -> Column:
    u = F.rand(seed) - F.lit(0.5)
    # 1 - 2|u| lies in (0, 1]; rand() is in [0, 1), so the log argument is never 0.
    return F.lit(-scale) * F.signum(u) * F.log(F.lit(1.0) - F.lit(2.0) * F.abs(u))


def laplace_noise(
    df: DataFrame,
    *,
    columns: list[str],
    epsilon: float,
    sensitivity: float,
    seed: int | None = None,
) -> DataFrame:
    """``df`` with Laplace(0, sensitivity/epsilon) noise added to each of ``columns`` (as doubles).

    Each column gets its own noise stream (seed + column position). Other columns are unchanged.
    """
    scale = laplace_scale(epsilon=epsilon, sensitivity=sensitivity)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"laplace_noise: unknown column(s) {', '.join(missing)}")
    noisy = {
        c: F.col(c).cast("double") + _laplace(scale, None if seed is None else seed + i)
        for i, c in enumerate(columns)
    }
    return df.select(*[noisy[c].alias(c) if c in noisy else F.col(c) for c in df.columns])


__all__ = ["laplace_noise", "laplace_scale"]
