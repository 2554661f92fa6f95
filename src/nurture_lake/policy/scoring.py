"""One scoring path for every policy: numpy in the driver, a pandas UDF on Spark.

A decision needs the context vector, the actions the guardrails allow, and the decision id (the
seed of its deterministic draw). It yields the full ``action_probs`` map over allowed actions,
``expected_rewards`` (null for the logging policy), the chosen ``action_id``, its exact
``propensity``, and ``explored`` (the chosen action is not the greedy one).

Example::

    scored = score_decisions(requests, policy, seed=7)   # adds action_probs, ..., explored
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import BooleanType, DoubleType, MapType, StringType, StructField, StructType

from nurture_lake.policy.bandit import LinearBandit
from nurture_lake.policy.exploration import decision_uniforms, greedy_indices, sample_actions
from nurture_lake.policy.logging_policy import LoggingPolicy

DECISION_FIELDS = StructType([
    StructField("action_probs", MapType(StringType(), DoubleType()), True),
    StructField("expected_rewards", MapType(StringType(), DoubleType()), True),
    StructField("action_id", StringType(), True),
    StructField("propensity", DoubleType(), True),
    StructField("explored", BooleanType(), True),
])
"""Columns :func:`score_decisions` adds (``action_id`` is null when no action is allowed)."""


class Policy(Protocol):
    """What scoring needs from a policy (learned bandit or logging policy)."""

    action_ids: tuple[str, ...]
    policy_kind: str

    def probabilities(
        self, contexts: np.ndarray, allowed: np.ndarray, *, recent_touch: np.ndarray | None = None,
    ) -> np.ndarray: ...

    def expected_rewards(self, contexts: np.ndarray) -> np.ndarray | None: ...

    def to_dict(self) -> dict[str, Any]: ...


def policy_from_dict(raw: dict[str, Any]) -> LinearBandit | LoggingPolicy:
    """Rebuild a policy from its ``to_dict()`` form."""
    if raw.get("kind") == "linear_bandit":
        return LinearBandit.from_dict(raw)
    if raw.get("kind") == "logging_policy":
        return LoggingPolicy.from_dict(raw)
    raise ValueError(f"unknown policy kind {raw.get('kind')!r}")


@dataclass(frozen=True)
class Decisions:
    """Arrays of one scored batch (rows aligned with the input)."""

    probs: np.ndarray                 # (n, k)
    expected: np.ndarray | None       # (n, k) or None
    chosen: np.ndarray                # (n,) index into action_ids, -1 if nothing allowed
    propensity: np.ndarray            # (n,)
    explored: np.ndarray              # (n,) bool


def allowed_mask(action_ids: Sequence[str], allowed: Sequence[Sequence[str] | None]) -> np.ndarray:
    """Boolean ``(n, k)`` mask; ``None`` means every action is allowed; unknown ids are ignored."""
    index = {a: i for i, a in enumerate(action_ids)}
    mask = np.zeros((len(allowed), len(action_ids)), dtype=bool)
    for row, actions in enumerate(allowed):
        if actions is None:
            mask[row] = True
            continue
        for action in actions:
            j = index.get(action)
            if j is not None:
                mask[row, j] = True
    return mask


def stack_contexts(values: Sequence[Any], dim: int | None = None) -> np.ndarray:
    """A column of arrays → ``(n, d)`` float matrix."""
    if len(values) == 0:
        return np.zeros((0, dim or 0))
    return np.stack([np.asarray(v, dtype=np.float64) for v in values])


def decide(
    policy: Policy,
    contexts: np.ndarray,
    allowed: np.ndarray,
    decision_ids: Sequence[str],
    *,
    seed: int,
    recent_touch: np.ndarray | None = None,
) -> Decisions:
    """Probabilities, expected rewards and the deterministic draw for each decision."""
    probs = policy.probabilities(contexts, allowed, recent_touch=recent_touch)
    expected = policy.expected_rewards(contexts)
    chosen = sample_actions(probs, decision_uniforms(decision_ids, seed))
    rows = np.arange(len(chosen))
    propensity = np.where(chosen >= 0, probs[rows, np.maximum(chosen, 0)], np.nan)
    # The greedy action: best expected reward, or the most likely action for the logging policy.
    greedy = greedy_indices(expected if expected is not None else probs, allowed)
    explored = (chosen >= 0) & (chosen != greedy)
    return Decisions(probs, expected, chosen, propensity, explored)


def decisions_frame(policy: Policy, decisions: Decisions, allowed: np.ndarray) -> pd.DataFrame:
    """The scored batch as the columns of :data:`DECISION_FIELDS` (maps as dicts)."""
    ids = policy.action_ids
    probs_maps = [
        {ids[j]: float(decisions.probs[i, j]) for j in np.nonzero(allowed[i])[0]} for i in range(len(allowed))
    ]
    if decisions.expected is None:
        expected_maps: list[dict[str, float] | None] = [None] * len(allowed)
    else:
        expected_maps = [
            {ids[j]: float(decisions.expected[i, j]) for j in np.nonzero(allowed[i])[0]} for i in range(len(allowed))
        ]
    return pd.DataFrame({
        "action_probs": probs_maps,
        "expected_rewards": expected_maps,
        "action_id": [ids[c] if c >= 0 else None for c in decisions.chosen],
        "propensity": decisions.propensity,
        "explored": decisions.explored.astype(bool),
    })


def score_pandas(
    policy: Policy,
    pdf: pd.DataFrame,
    *,
    seed: int,
    context_col: str = "context",
    allowed_col: str = "allowed_actions",
    id_col: str = "decision_id",
    recent_col: str | None = None,
) -> pd.DataFrame:
    """Score a pandas frame of decisions (the MLflow pyfunc and tests use this)."""
    dim = getattr(policy, "dim", None)
    contexts = stack_contexts(list(pdf[context_col]), dim) if context_col in pdf else np.zeros((len(pdf), 0))
    allowed_values = list(pdf[allowed_col]) if allowed_col in pdf else [None] * len(pdf)
    mask = allowed_mask(policy.action_ids, allowed_values)
    recent = pdf[recent_col].to_numpy(np.float64) if recent_col and recent_col in pdf else None
    ids = [str(v) for v in pdf[id_col]]
    return decisions_frame(policy, decide(policy, contexts, mask, ids, seed=seed, recent_touch=recent), mask)


def score_decisions(
    df: DataFrame,
    policy: Policy,
    *,
    seed: int,
    context_col: str = "context",
    allowed_col: str = "allowed_actions",
    id_col: str = "decision_id",
    recent_col: str | None = None,
    prefix: str = "",
) -> DataFrame:
    """Add the :data:`DECISION_FIELDS` columns (each name prefixed by ``prefix``) with a pandas UDF.

    ``df`` keeps every column; the policy is shipped to the executors with the UDF.
    A null ``allowed_col`` value means every action is allowed.
    """
    ids = policy.action_ids

    @pandas_udf(DECISION_FIELDS)  # type: ignore[call-overload]
    def _score(contexts: pd.Series, allowed: pd.Series, decision_ids: pd.Series, recent: pd.Series) -> pd.DataFrame:
        mask = allowed_mask(ids, [None if a is None else list(a) for a in allowed])
        x = stack_contexts(list(contexts), getattr(policy, "dim", None))
        touch = recent.to_numpy(np.float64) if recent_col else None
        decided = decide(policy, x, mask, [str(v) for v in decision_ids], seed=seed, recent_touch=touch)
        return decisions_frame(policy, decided, mask)

    recent: Column = F.col(recent_col).cast("double") if recent_col else F.lit(None).cast("double")
    packed = "__nl_decision"
    out = df.withColumn(packed, _score(F.col(context_col), F.col(allowed_col), F.col(id_col).cast("string"), recent))
    return out.select(
        *[F.col(c) for c in df.columns],
        *[F.col(f"{packed}.{f.name}").alias(prefix + f.name) for f in DECISION_FIELDS.fields],
    )
