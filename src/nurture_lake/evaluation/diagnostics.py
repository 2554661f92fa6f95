"""Input validation and the one-pass summary behind point estimates and diagnostics.

:func:`check_schema` rejects a frame that lacks a column or has the wrong type before any Spark job
runs. :func:`summarise` is the single aggregation over the logged data: per-row term sums, the
largest weight, counts of invalid rows, and per-action logged counts and target mass (for the
share of target mass on actions the logger never took). :func:`raise_for_invalid_rows` turns the
invalid-row counts into a :class:`ValueError` that names the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, MapType, NumericType, StringType

from nurture_lake.evaluation.estimators import PROB_SUM_TOLERANCE, TERMS, kish_ess, row_terms

REQUIRED_COLUMNS: tuple[str, ...] = ("action", "reward", "propensity", "target_probs")
"""Columns every estimator needs; model-based estimators also need ``expected_rewards``."""

_FLAGS: dict[str, str] = {
    "bad_action": "action must not be null",
    "bad_reward": "reward must be a finite number (not null, NaN or infinite)",
    "bad_propensity": "propensity must be in (0, 1] (not null or NaN)",
    "bad_target": (
        "target_probs must be a probability distribution (not null; every value in [0, 1]; "
        f"values summing to 1 within {PROB_SUM_TOLERANCE:g})"
    ),
    "bad_model": "expected_rewards must give a finite value for every action with positive target probability",
}


@dataclass(frozen=True)
class Diagnostics:
    """How trustworthy importance weighting is on this data.

    ``ess`` is Kish's ``(Σ w)² / Σ w²`` of the unclipped weights ``w = π(a|x) / propensity``;
    ``unsupported_mass`` is ``(1/n) Σ_i Σ_{a ∉ A} π(a | x_i)`` where ``A`` is the set of actions
    that occur in the logged data: target probability no logged row can ever vouch for.
    """

    n: int
    """Logged rows."""
    ess: float
    """Effective sample size of the importance weights."""
    max_weight: float
    """Largest importance weight."""
    mean_weight: float
    """Mean importance weight (≈ 1 when propensities are right and the target is supported)."""
    unsupported_mass: float
    """Share of the target policy's probability on actions never logged in the data."""
    logged_counts: dict[str, int] = field(default_factory=dict)
    """Rows per logged action."""
    target_mass: dict[str, float] = field(default_factory=dict)
    """Mean target probability per action (keys of ``target_probs`` and logged actions)."""

    def to_dict(self) -> dict[str, float]:
        """The scalar diagnostics (for tables and MLflow metrics)."""
        return {
            "n": float(self.n),
            "ess": self.ess,
            "max_weight": self.max_weight,
            "mean_weight": self.mean_weight,
            "unsupported_mass": self.unsupported_mass,
        }


@dataclass(frozen=True)
class Summary:
    """What :func:`summarise` collects: term sums, diagnostics and invalid-row counts."""

    sums: dict[str, float]
    diagnostics: Diagnostics
    invalid: dict[str, int]
    propensity_range: tuple[float | None, float | None]


def _type_problem(name: str, dtype: DataType) -> str | None:
    if name == "action":
        ok = isinstance(dtype, StringType)
        want = "string"
    elif name in ("reward", "propensity"):
        ok = isinstance(dtype, NumericType)
        want = "numeric (double)"
    else:
        ok = (
            isinstance(dtype, MapType)
            and isinstance(dtype.keyType, StringType)
            and isinstance(dtype.valueType, NumericType)
        )
        want = "map<string,double>"
    return None if ok else f"column {name!r} must be {want}, got {dtype.simpleString()}"


def check_schema(logged: DataFrame, *, model_based: bool) -> None:
    """Raise :class:`ValueError` naming missing or mistyped columns (no Spark job runs)."""
    fields = {f.name: f.dataType for f in logged.schema.fields}
    required = [*REQUIRED_COLUMNS, *(["expected_rewards"] if model_based else [])]
    missing = [name for name in required if name not in fields]
    if missing:
        hint = " (needed by the model-based estimators dm, dr, sndr, switch_dr)" if "expected_rewards" in missing else ""
        raise ValueError(
            f"logged data is missing column(s) {', '.join(repr(m) for m in missing)}{hint}; "
            f"it has {', '.join(fields) or 'no columns'}"
        )
    problems = [p for name in required if (p := _type_problem(name, fields[name])) is not None]
    if problems:
        raise ValueError("logged data has mistyped column(s): " + "; ".join(problems))


def _cast_inputs(logged: DataFrame, *, model_based: bool) -> DataFrame:
    """Cast numeric columns and map values to double so every term is computed in double."""
    casts = {
        "reward": F.col("reward").cast("double"),
        "propensity": F.col("propensity").cast("double"),
        "target_probs": F.col("target_probs").cast("map<string,double>"),
    }
    if model_based:
        casts["expected_rewards"] = F.col("expected_rewards").cast("map<string,double>")
    return logged.withColumns(casts)


def prepare(logged: DataFrame, *, clip: float, switch_tau: float, model_based: bool) -> DataFrame:
    """Schema check, casts and per-row terms (see :func:`~.estimators.row_terms`)."""
    check_schema(logged, model_based=model_based)
    return row_terms(
        _cast_inputs(logged, model_based=model_based),
        clip=clip,
        switch_tau=switch_tau,
        model_based=model_based,
    )


def summarise(terms_df: DataFrame, *, model_based: bool) -> Summary:
    """Sums, diagnostics and invalid-row counts of ``terms_df`` (from :func:`prepare`).

    Two aggregations, each one scan: the row totals (term sums, largest weight, flag counts), and
    per action the logged count and target mass. For the latter each row is exploded into its
    ``target_probs`` entries plus one entry for its logged action, and entries are grouped by
    action, so an action the target policy can take but no row logged shows up with count 0.
    """
    terms = [t for t in TERMS if model_based or t not in ("dm", "res", "swres")]
    flags = [f for f in _FLAGS if model_based or f != "bad_model"]
    totals = terms_df.agg(
        *(F.sum(f"t_{t}").alias(t) for t in terms),
        F.max("t_w").alias("max_w"),
        F.min("propensity").alias("min_p"),
        F.max("propensity").alias("max_p"),
        *(F.sum(F.col(f).cast("long")).alias(f) for f in flags),
    ).first()
    assert totals is not None  # a global aggregate always returns one row
    entry = "struct<key:string,value:double,own:boolean>"
    target_entries = F.transform(
        F.coalesce(F.map_entries(F.col("target_probs")), F.array().cast("array<struct<key:string,value:double>>")),
        lambda e: F.struct(e["key"].alias("key"), e["value"].alias("value"), F.lit(False).alias("own")),
    )
    own_entry = F.struct(F.col("action").alias("key"), F.lit(0.0).alias("value"), F.lit(True).alias("own"))
    entries = F.concat(target_entries.cast(f"array<{entry}>"), F.array(own_entry).cast(f"array<{entry}>"))
    per_action = (
        terms_df.select(F.explode(entries).alias("e"))
        .groupBy(F.col("e.key").alias("key"))
        .agg(F.sum(F.col("e.own").cast("long")).alias("logged"), F.sum("e.value").alias("mass"))
        .collect()
    )
    return _summary_from_rows(totals.asDict(), [r.asDict() for r in per_action], terms=terms, flags=flags)


def _summary_from_rows(
    totals: dict[str, Any], per_action: list[dict[str, Any]], *, terms: list[str], flags: list[str]
) -> Summary:
    sums = {t: float(totals[t] or 0.0) for t in terms}
    n = int(sums["n"])
    counts = {str(r["key"]): int(r["logged"]) for r in per_action if r["key"] is not None and r["logged"]}
    mass = {str(r["key"]): float(r["mass"] or 0.0) / n for r in per_action if r["key"] is not None and n}
    unsupported = sum(m for key, m in mass.items() if key not in counts)
    max_w = totals["max_w"]
    diagnostics = Diagnostics(
        n=n,
        ess=kish_ess(sums["w"], sums["w2"]),
        max_weight=float(max_w) if max_w is not None else float("nan"),
        mean_weight=sums["w"] / n if n else float("nan"),
        unsupported_mass=float(unsupported),
        logged_counts=dict(sorted(counts.items())),
        target_mass=dict(sorted(mass.items())),
    )
    invalid = {f: int(totals[f] or 0) for f in flags}
    return Summary(sums=sums, diagnostics=diagnostics, invalid=invalid, propensity_range=(totals["min_p"], totals["max_p"]))


def raise_for_invalid_rows(summary: Summary) -> None:
    """Raise :class:`ValueError` listing each kind of invalid row and how many there are."""
    n = summary.diagnostics.n
    if n == 0:
        raise ValueError("logged data has no rows: nothing to evaluate")
    problems = []
    for flag, count in summary.invalid.items():
        if count:
            detail = _FLAGS[flag]
            if flag == "bad_propensity":
                low, high = summary.propensity_range
                detail += f"; observed range [{low}, {high}]"
            problems.append(f"{count} of {n} rows: {detail}")
    if problems:
        raise ValueError("invalid logged data: " + "; ".join(problems))
