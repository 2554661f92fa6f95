"""The numeric context block: one ordered, documented list of feature columns and the bandit's vector.

Every feature column is a ``double`` in the feature DataFrame (raw, human-readable units); the
context vector applies a fixed transform per column (``log1p`` for counts, ``/ cap`` for recency)
and puts a bias term first, so the bandit always gets ``1 + len(FEATURE_COLUMNS)`` numbers.

Example::

    scored = context_vector(features)              # adds ``context: array<double>``
    CONTEXT_COLUMNS[:3]                            # ['bias', 'n_email_sent_1d', 'n_email_open_1d']
    print(describe_features_markdown())            # the table of every column and its meaning
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from nurture_lake.features.settings import CRM_STAGES, DAYPARTS, LIFECYCLE_STAGES, FeatureSettings
from nurture_lake.sqltext import sql_double, sql_string

Transform = Literal["identity", "log1p", "recency"]


@dataclass(frozen=True)
class FeatureColumn:
    """One numeric feature: its column name, family, the vector transform and what it means."""

    name: str
    family: str
    transform: Transform
    doc: str


def describe_features(settings: FeatureSettings | None = None) -> list[FeatureColumn]:
    """Every numeric feature column, in vector order, for ``settings`` (defaults when ``None``)."""
    s = settings or FeatureSettings()
    cols: list[FeatureColumn] = []
    for w in s.windows_days:
        for channel in s.channels:
            for kind in ("sent", *s.kinds(channel)):
                cols.append(FeatureColumn(
                    f"n_{channel}_{kind}_{w}d", "count", "log1p",
                    f"number of {channel}_{kind} events in ({w}d before as_of, as_of]",
                ))
    for w in s.windows_days:
        for channel in s.channels:
            for kind in s.kinds(channel):
                cols.append(FeatureColumn(
                    f"{channel}_{kind}_rate_{w}d", "rate", "identity",
                    f"({channel}_{kind} + {s.rate_prior_engagements:g}) / ({channel}_sent + "
                    f"{s.rate_prior_touches:g}) in the {w}d window (Beta prior; 0/0 reads as the prior mean)",
                ))
    for w in s.windows_days:
        cols.append(FeatureColumn(f"touches_{w}d", "touches", "log1p",
                                  f"touches (any <channel>_sent) received in the last {w}d"))
        cols.append(FeatureColumn(f"engagements_{w}d", "touches", "log1p",
                                  f"engagement events (opens, clicks, replies, organic) in the last {w}d"))
    for channel in s.channels:
        cols.append(FeatureColumn(f"hours_since_{channel}_touch", "recency", "recency",
                                  f"hours since the last {channel}_sent, capped at {s.recency_cap_hours:g} (never = cap)"))
        cols.append(FeatureColumn(f"hours_since_{channel}_engagement", "recency", "recency",
                                  f"hours since the last {channel} open/click/reply, capped (never = cap)"))
    cols.append(FeatureColumn("hours_since_touch", "recency", "recency",
                              "hours since the last touch on any channel, capped (never = cap)"))
    cols.append(FeatureColumn("hours_since_engagement", "recency", "recency",
                              "hours since the last engagement of any kind, capped (never = cap)"))
    for part in DAYPARTS:
        cols.append(FeatureColumn(
            f"engagement_share_{part}", "profile", "identity",
            f"share of the lookback's engagements that fell in the lead's local {part} "
            f"((n + {s.profile_prior:g}) / (N + {len(DAYPARTS)} x {s.profile_prior:g}))",
        ))
    cols.append(FeatureColumn(
        "fatigue", "fatigue", "log1p",
        f"sum over touches after the last engagement (within lookback) of 0.5^(age_h / "
        f"{s.fatigue_half_life_hours:g})",
    ))
    for stage in LIFECYCLE_STAGES:
        cols.append(FeatureColumn(f"stage_{stage}", "lifecycle", "identity",
                                  f"1.0 when lifecycle_stage is '{stage}', else 0.0"))
    cols.append(FeatureColumn("local_hour_sin", "local_time", "identity",
                              "sin(2 pi local_hour / 24) at as_of in the lead's time zone"))
    cols.append(FeatureColumn("local_hour_cos", "local_time", "identity",
                              "cos(2 pi local_hour / 24) at as_of in the lead's time zone"))
    cols.append(FeatureColumn("local_is_weekend", "local_time", "identity",
                              "1.0 when as_of falls on a local Saturday or Sunday"))
    for stage in CRM_STAGES:
        cols.append(FeatureColumn(f"crm_stage_{stage}", "crm_stage", "identity",
                                  f"1.0 when the latest known lead_created's lifecycle_stage property (CRM) is "
                                  f"'{stage}', else 0.0"))
    n_share = len(s.channels) + 1
    for channel in s.channels:
        cols.append(FeatureColumn(
            f"channel_share_{channel}", "affinity", "identity",
            f"share of the lookback's engagements that were {channel} open/click/reply "
            f"((n + {s.profile_prior:g}) / (N + {n_share} x {s.profile_prior:g}))",
        ))
    quiet = (f", deferred to {s.quiet_hours[1]}:00 when it falls in the quiet hours "
             f"[{s.quiet_hours[0]}:00, {s.quiet_hours[1]}:00)" if s.quiet_hours else "")
    for offset in s.send_offsets_hours:
        cols.append(FeatureColumn(
            f"hour_match_{offset}h", "profile", "identity",
            f"hour-of-day engagement profile at the local send hour of as_of + {offset}h{quiet}: lookback "
            f"engagements weighted by a Gaussian kernel (sd {s.hour_kernel_hours:g} h) of their local hour's "
            f"distance to it, relative to a uniform profile (1.0 = average; prior {s.hour_prior:g} per hour)",
        ))
    longest = max(s.windows_days)
    for channel in s.channels:
        kind = s.kinds(channel)[0]
        for offset in s.send_offsets_hours:
            cols.append(FeatureColumn(
                f"{channel}_engage_index_{offset}h", "affinity", "identity",
                f"{channel}_{kind}_rate_{longest}d x hour_match_{offset}h (expected response to a {channel} "
                f"touch sent at as_of + {offset}h, up to scale)",
            ))
    return cols


def feature_columns(settings: FeatureSettings | None = None) -> list[str]:
    """Names of the numeric feature columns, in vector order."""
    return [c.name for c in describe_features(settings)]


FEATURE_COLUMNS: list[str] = feature_columns()
"""The numeric feature columns for the default settings, in vector order (see :func:`describe_features`)."""


def context_features(settings: FeatureSettings | None = None) -> list[FeatureColumn]:
    """The feature columns the context vector holds: those of ``settings.context_families`` (all when unset)."""
    s = settings or FeatureSettings()
    families = s.context_families
    return [c for c in describe_features(s) if families is None or c.family in families]


CONTEXT_COLUMNS: list[str] = ["bias", *(c.name for c in context_features())]
"""What each slot of the default context vector holds: the bias term first, then the context features."""


def context_columns(settings: FeatureSettings | None = None, *, regions: Sequence[str] = ()) -> list[str]:
    """Slot names of the context vector: ``bias``, the context features, then ``region_<r>`` one-hots if asked."""
    return ["bias", *(c.name for c in context_features(settings)), *(f"region_{r}" for r in regions)]


def _transformed(col: FeatureColumn, settings: FeatureSettings) -> str:
    """SQL for one context slot: the feature as a double, null as 0, then its transform."""
    value = f"coalesce(CAST(`{col.name}` AS DOUBLE), CAST(0 AS DOUBLE))"
    if col.transform == "log1p":
        return f"log1p(greatest({value}, CAST(0 AS DOUBLE)))"
    if col.transform == "recency":
        return f"({value} / {sql_double(settings.recency_cap_hours)})"
    return value


def context_column(settings: FeatureSettings | None = None, *, regions: Sequence[str] = ()) -> Column:
    """The ``array<double>`` context expression over the feature columns (see :func:`context_columns`).

    ``regions`` adds one-hot slots ``region_<r>`` for models shared across regions; a per-region
    policy leaves it empty (the slot would equal the bias).

    One SQL expression: built slot by slot from Python it cost several JVM calls per slot (about a
    second per call with the default 127 slots).
    """
    s = settings or FeatureSettings()
    one, zero = "CAST(1 AS DOUBLE)", "CAST(0 AS DOUBLE)"
    parts = [one, *(_transformed(c, s) for c in context_features(s))]
    parts += [f"CASE WHEN region = {sql_string(r)} THEN {one} ELSE {zero} END" for r in regions]
    return F.expr(f"array({', '.join(parts)})")


def context_vector(
    df: DataFrame,
    *,
    settings: FeatureSettings | None = None,
    regions: Sequence[str] = (),
    output_col: str = "context",
) -> DataFrame:
    """``df`` with ``output_col`` = the fixed-length context vector (bias first).

    Example: ``context_vector(compute_features(events, requests, regions=cfg.regions))``.
    """
    return df.withColumn(output_col, context_column(settings, regions=regions))


def describe_features_markdown(settings: FeatureSettings | None = None) -> str:
    """A Markdown table of every feature column (name, family, vector transform, meaning)."""
    lines = ["| column | family | vector transform | meaning |", "| --- | --- | --- | --- |"]
    lines += [f"| `{c.name}` | {c.family} | {c.transform} | {c.doc} |" for c in describe_features(settings)]
    return "\n".join(lines)
