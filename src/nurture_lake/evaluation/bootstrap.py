"""Poisson bootstrap as a Spark aggregation.

Each row gets, in every resample ``b``, an independent Poisson(1) count ``c_ib`` that depends only
on the seed, the row's key and ``b`` — not on partitioning, batch or chunk boundaries. A resample's
estimator value is then a function of the sums ``Σ_i c_ib t_i`` of a few per-row terms, so the whole
bootstrap is one pass: each partition turns its rows into a ``(resamples × terms)`` matrix of partial
sums with NumPy (``counts.T @ terms`` per chunk, memory bounded by :data:`CHUNK_ELEMENTS`), and Spark
sums the partials by resample.

The counts come from a counter-based generator: row ``i`` owns a SplitMix64 stream seeded with
``mix(key_i + mix(seed))``; resample ``b`` uses the stream's ``b``-th output ``u``, and the count is
the Poisson(1) inverse CDF at ``u`` (top 53 bits). A 2¹⁶-cell lookup table answers most draws; the
few cells that straddle a CDF step are resolved exactly.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StructField, StructType

CHUNK_ELEMENTS = 1 << 21
"""Rows × resamples handled at once per worker (three 8-byte buffers and one 1-byte buffer, ~52 MB)."""

_U64 = np.uint64
_GAMMA = _U64(0x9E3779B97F4A7C15)
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_TABLE_BITS = 16
_MAX_COUNT = 24


def _mix(x: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, in place on ``x`` (``tmp``: scratch of the same shape). Wraps mod 2⁶⁴."""
    np.right_shift(x, _U64(30), out=tmp)
    x ^= tmp
    x *= _MIX1
    np.right_shift(x, _U64(27), out=tmp)
    x ^= tmp
    x *= _MIX2
    np.right_shift(x, _U64(31), out=tmp)
    x ^= tmp
    return x


def _poisson1_cdf() -> np.ndarray:
    """``P(K ≤ k)`` for ``K ~ Poisson(1)``, ``k = 0 .. _MAX_COUNT``."""
    pmf = [math.exp(-1.0) / math.factorial(k) for k in range(_MAX_COUNT + 1)]
    return np.minimum(np.cumsum(pmf), 1.0)


_CDF = _poisson1_cdf()


_STRADDLED = np.uint8(255)


def _lookup_table() -> np.ndarray:
    """Count per top-16-bit cell of ``u`` (uint8, fits in L2); 255 where a CDF step falls inside the cell."""
    cells = 1 << _TABLE_BITS
    low = np.arange(cells, dtype=np.float64) / cells
    high = (np.arange(cells, dtype=np.float64) + 1) / cells
    table = np.searchsorted(_CDF, low, side="right").astype(np.uint8)
    for step in _CDF:
        table[(low < step) & (step < high)] = _STRADDLED
    return table


_TABLE = _lookup_table()


class PoissonCounts:
    """Deterministic Poisson(1) bootstrap counts for rows identified by 64-bit keys.

    ``PoissonCounts(seed, 1000)(keys)`` returns a ``(len(keys), 1000)`` float64 array; entry
    ``[i, b]`` depends only on ``seed``, ``keys[i]`` and ``b``. The returned array is a reused
    buffer: use it before the next call.
    """

    def __init__(self, seed: int, n_resamples: int) -> None:
        self.n_resamples = n_resamples
        seed_state = np.array([_U64(seed % (1 << 64))], dtype=np.uint64)
        seed_state += _GAMMA
        self._seed_mixed = _mix(seed_state, np.empty(1, dtype=np.uint64))[0]
        self._offsets = np.arange(1, n_resamples + 1, dtype=np.uint64) * _GAMMA
        self._buffers: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def _buffers_for(self, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._buffers is None or self._buffers[0].shape[0] != rows:
            shape = (rows, self.n_resamples)
            self._buffers = (
                np.empty(shape, dtype=np.uint64),
                np.empty(shape, dtype=np.uint64),
                np.empty(shape, dtype=np.uint8),
                np.empty(shape, dtype=np.float64),
            )
        return self._buffers

    def __call__(self, keys: np.ndarray) -> np.ndarray:
        keys = np.ascontiguousarray(keys)
        if keys.dtype != np.uint64:
            keys = keys.astype(np.int64, copy=False).view(np.uint64)
        state, tmp, small, counts = self._buffers_for(len(keys))
        row_state = keys + self._seed_mixed
        row_state = _mix(row_state, np.empty_like(row_state))
        np.add(row_state[:, None], self._offsets[None, :], out=state)
        _mix(state, tmp)
        np.right_shift(state, _U64(64 - _TABLE_BITS), out=tmp)
        np.take(_TABLE, tmp, out=small)
        flat = np.flatnonzero(small == _STRADDLED)
        if flat.size:
            u = (state.ravel()[flat] >> _U64(11)).astype(np.float64) * 2.0**-53
            small.ravel()[flat] = np.searchsorted(_CDF, u, side="right")
        np.copyto(counts, small)
        return counts


def partial_sums(
    batches: Iterator[pd.DataFrame],
    *,
    terms: Sequence[str],
    seed: int,
    n_resamples: int,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> Iterator[pd.DataFrame]:
    """One partition's per-resample sums: ``resample`` (1-based), ``n`` = Σc and ``Σ c·t_<term>``.

    ``batches`` carry ``key`` (int64) and ``t_<term>`` columns. Yields one frame with ``n_resamples``
    rows, or nothing for an empty partition.
    """
    with _single_threaded_blas():
        yield from _partial_sums(batches, terms=terms, seed=seed, n_resamples=n_resamples, chunk_elements=chunk_elements)


def _single_threaded_blas() -> contextlib.AbstractContextManager[object]:
    """Limit BLAS to one thread: Spark already runs one task per core, and nested threads thrash."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS keeps its default threading
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _partial_sums(
    batches: Iterator[pd.DataFrame],
    *,
    terms: Sequence[str],
    seed: int,
    n_resamples: int,
    chunk_elements: int,
) -> Iterator[pd.DataFrame]:
    counts_of = PoissonCounts(seed, n_resamples)
    chunk = max(1, chunk_elements // max(1, n_resamples))
    totals = np.zeros((n_resamples, 1 + len(terms)))
    seen = False
    for pdf in batches:
        if pdf.empty:
            continue
        seen = True
        keys = pdf["key"].to_numpy(dtype=np.int64)
        matrix = np.empty((len(pdf), 1 + len(terms)))
        matrix[:, 0] = 1.0
        for j, term in enumerate(terms, start=1):
            matrix[:, j] = pdf[f"t_{term}"].to_numpy(dtype=np.float64)
        for start in range(0, len(pdf), chunk):
            stop = min(start + chunk, len(pdf))
            totals += counts_of(keys[start:stop]).T @ matrix[start:stop]
    if seen:
        out = pd.DataFrame(totals, columns=["n", *terms])
        out.insert(0, "resample", np.arange(1, n_resamples + 1, dtype=np.int32))
        yield out


def bootstrap_sums(
    terms_df: DataFrame,
    *,
    key: str | None,
    terms: Sequence[str],
    seed: int,
    n_resamples: int,
) -> dict[str, np.ndarray]:
    """Run the Poisson bootstrap over ``terms_df`` (with ``t_<term>`` columns); sums per resample.

    ``key`` names a column identifying rows (hashed with ``xxhash64``); ``None`` uses the row's
    position (``monotonically_increasing_id``), which is reproducible for the same input and
    partitioning. Returns ``{"n": array, term: array, ...}``, each of length ``n_resamples``.
    """
    wanted = [t for t in dict.fromkeys(terms) if t != "n"]
    key_col = F.xxhash64(F.col(key)) if key is not None else F.monotonically_increasing_id()
    source = terms_df.select(key_col.alias("key"), *(F.col(f"t_{t}") for t in wanted))
    schema = StructType(
        [StructField("resample", IntegerType(), False)]
        + [StructField(name, DoubleType(), False) for name in ("n", *wanted)]
    )

    def _fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return partial_sums(batches, terms=wanted, seed=seed, n_resamples=n_resamples)

    summed = (
        source.mapInPandas(_fn, schema)
        .groupBy("resample")
        .agg(*(F.sum(name).alias(name) for name in ("n", *wanted)))
        .toPandas()
        .sort_values("resample")
    )
    if len(summed) != n_resamples:
        raise RuntimeError(f"bootstrap returned {len(summed)} resamples, expected {n_resamples}")
    return {name: summed[name].to_numpy(dtype=np.float64) for name in ("n", *wanted)}
