"""Feature drift: the population stability index (PSI) between a training snapshot and serving.

For each numeric feature, bin edges are the training values' quantiles ``1/B, …, (B−1)/B``
(linear interpolation, as ``numpy.quantile``); a value falls in bin ``#{edges ≤ value}``. With
training shares ``t_i`` and serving shares ``s_i`` (an empty bin's share replaced by ``epsilon``)::

    PSI = Σ_i (s_i − t_i) · ln(s_i / t_i)

Identical distributions give 0; ``≥ warn`` is a moderate and ``≥ alert`` a significant shift.
Nulls are ignored. Everything is a Spark aggregation (no collect).

Example::

    train = lake.table("us", "gold", "lead_features").read(spark, version=3)
    serve = lake.table("us", "gold", "lead_features").read(spark)
    psi(train, serve, columns=["touches_7d"], bins=10, epsilon=1e-4, warn=0.1, alert=0.25)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

from nurture_lake.tables import GLOBAL_REGION, Lake, TableRef

__all__ = ["FEATURE_DRIFT", "baseline_version", "feature_drift_table", "numeric_columns", "psi", "write_feature_drift"]

FEATURE_DRIFT = StructType([
    StructField("run_at", TimestampType(), False),          # one drift run = one run_at
    StructField("region", StringType(), False),
    StructField("feature", StringType(), False),
    StructField("psi", DoubleType(), True),                 # null when either side has no values
    StructField("status", StringType(), False),             # "ok" | "warn" | "alert" | "no_data"
    StructField("bins", IntegerType(), False),
    StructField("training_rows", LongType(), False),        # non-null values per side
    StructField("serving_rows", LongType(), False),
    StructField("training_version", LongType(), True),      # Delta versions compared (when known)
    StructField("serving_version", LongType(), True),
])
"""``global.gold.feature_drift``: PSI per feature per drift run (appended)."""


def feature_drift_table(lake: Lake) -> TableRef:
    """``global.gold.feature_drift``."""
    return lake.table(GLOBAL_REGION, "gold", "feature_drift")


def numeric_columns(df: DataFrame, *, exclude: Sequence[str] = ()) -> list[str]:
    """Names of ``df``'s numeric (int, long, float, double, decimal) columns, minus ``exclude``."""
    numeric = ("int", "bigint", "smallint", "tinyint", "float", "double")
    return [
        name for name, kind in df.dtypes
        if name not in exclude and (kind in numeric or kind.startswith("decimal"))
    ]


def _long(df: DataFrame, columns: Sequence[str]) -> DataFrame:
    """(feature, value) rows of the non-null values of ``columns``."""
    cast = df.select(*(F.col(c).cast("double").alias(c) for c in columns))
    return cast.unpivot([], list(columns), "feature", "value").where(F.col("value").isNotNull())


def _bin_counts(values: DataFrame, edges: DataFrame, name: str) -> DataFrame:
    binned = values.join(edges, "feature").select(
        "feature", F.size(F.filter("_edges", lambda e: e <= F.col("value"))).alias("bin")
    )
    return binned.groupBy("feature", "bin").agg(F.count("*").alias(name))


def psi(
    training: DataFrame,
    serving: DataFrame,
    *,
    columns: Sequence[str],
    bins: int = 10,
    epsilon: float = 1e-4,
    warn: float = 0.1,
    alert: float = 0.25,
) -> DataFrame:
    """PSI per feature: ``(feature, psi, status, bins, training_rows, serving_rows)``.

    ``training`` and ``serving`` both hold the numeric ``columns``.
    """
    if bins < 2:
        raise ValueError("bins must be at least 2")
    cols = list(columns)
    train_long, serve_long = _long(training, cols), _long(serving, cols)
    probs = [i / bins for i in range(1, bins)]
    edges = train_long.groupBy("feature").agg(F.percentile("value", probs).alias("_edges"))
    features = training.sparkSession.createDataFrame([(c,) for c in cols], "feature string")
    grid = features.crossJoin(
        training.sparkSession.range(bins).select(F.col("id").cast("int").alias("bin"))
    )
    counts = (
        grid.join(_bin_counts(train_long, edges, "_t"), ["feature", "bin"], "left")
        .join(_bin_counts(serve_long, edges, "_s"), ["feature", "bin"], "left")
        .fillna(0, ["_t", "_s"])
    )
    shares = _with_totals(counts).select(
        "feature", "bin", "_t", "_s",
        F.greatest(F.try_divide(F.col("_t"), F.col("_nt")), F.lit(epsilon)).alias("_pt"),
        F.greatest(F.try_divide(F.col("_s"), F.col("_ns")), F.lit(epsilon)).alias("_ps"),
        "_nt", "_ns",
    )
    term = (F.col("_ps") - F.col("_pt")) * F.log(F.col("_ps") / F.col("_pt"))
    out = shares.groupBy("feature").agg(
        F.sum(term).alias("_psi"), F.max("_nt").alias("training_rows"), F.max("_ns").alias("serving_rows"),
    )
    has_data = (F.col("training_rows") > 0) & (F.col("serving_rows") > 0)
    value = F.when(has_data, F.col("_psi"))
    status = (
        F.when(~has_data, "no_data").when(value >= alert, "alert").when(value >= warn, "warn").otherwise("ok")
    )
    return out.select(
        "feature", value.alias("psi"), status.alias("status"), F.lit(bins).cast("int").alias("bins"),
        F.col("training_rows").cast("long"), F.col("serving_rows").cast("long"),
    )


def _with_totals(counts: DataFrame) -> DataFrame:
    """Add per-feature totals ``_nt`` / ``_ns`` (0-safe: shares of an empty side become epsilon)."""
    totals = counts.groupBy("feature").agg(F.sum("_t").alias("_nt"), F.sum("_s").alias("_ns"))
    return counts.join(totals, "feature")


def baseline_version(spark: SparkSession, table: TableRef, *, age: timedelta, now: datetime | None = None) -> int | None:
    """The newest Delta version of ``table`` committed at least ``age`` before ``now``, else the previous version."""
    if not table.exists(spark):
        return None
    now = now or datetime.now(UTC)
    history = table.delta(spark).history().select("version", "timestamp")
    cutoff = (now - age).astimezone(UTC) if now.tzinfo else (now - age).replace(tzinfo=UTC)
    old = history.where(F.col("timestamp") <= F.lit(cutoff)).agg(F.max("version")).first()
    if old is not None and old[0] is not None:
        return int(old[0])
    latest = history.agg(F.max("version")).first()
    return max(int(latest[0]) - 1, 0) if latest is not None and latest[0] is not None else None


def write_feature_drift(
    spark: SparkSession,
    lake: Lake,
    drift: DataFrame,
    *,
    region: str,
    run_at: datetime,
    training_version: int | None,
    serving_version: int | None,
) -> TableRef:
    """Append one drift run (the rows of :func:`psi`) to ``global.gold.feature_drift``."""
    table = feature_drift_table(lake)
    table.ensure(spark, FEATURE_DRIFT)
    rows = drift.select(
        F.lit(run_at).cast("timestamp").alias("run_at"), F.lit(region).alias("region"), "feature", "psi",
        "status", "bins", "training_rows", "serving_rows",
        F.lit(training_version).cast("long").alias("training_version"),
        F.lit(serving_version).cast("long").alias("serving_version"),
    )
    table.append(rows)
    return table
