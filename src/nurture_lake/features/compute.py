"""Point-in-time correct lead features: ONE definition for training and scoring.

:func:`compute_features` answers "what did we know about lead L at time T": it reads only events
with ``occurred_at <= T`` **and** ``ingested_at <= T``. Training calls it as of each decision's
``decided_at``; scoring calls it as of now — either straight from lead events, or through
:func:`features_from_table` over the compact per-lead history kept in ``gold.lead_features``.
Both paths run the same private core, so their values are identical.

Example::

    requests = decisions.select("lead_id", F.col("decided_at").alias("as_of"))
    feats = compute_features(lead_events, requests, regions=cfg.regions)

Definitions (``w`` a window in days, ``age = as_of - occurred_at``):

* a window covers ``0 <= age < w days``; the lookback (profile, fatigue, recency, ``last_*_at``)
  covers ``age < lookback_days``;
* the lead's time zone is the ``timezone`` property of its latest known ``lead_created`` event
  (a valid IANA name), else its region's configured zone, else UTC; the lead's current zone is used
  for every local-time feature (engagement day-parts and the local hour at ``as_of``);
* lifecycle stage (from every known event, no lookback): ``customer`` (deal_won) before
  ``unsubscribed`` (unsubscribe/complaint) before ``opportunity`` before ``meeting`` before
  ``engaged`` (any engagement) before ``new``;
* fatigue = sum over touches inside the lookback that came strictly after the last engagement
  inside the lookback of ``0.5 ** (age_hours / half_life)``;
* CRM stage: the ``lifecycle_stage`` property (one of ``CRM_STAGES``) of the latest known ``lead_created``;
* channel share: a channel's open/click/reply events among all engagements inside the lookback;
* hour match at offset ``o``: the send hour is the local hour of ``as_of + o`` (deferred to the end of
  ``quiet_hours`` when inside them); every engagement inside the lookback adds a Gaussian kernel of the
  circular distance between its local hour and the send hour; the smoothed sum is divided by what a
  uniform profile would give, so 1.0 means "an average hour" for this lead;
* engage index = the channel's first engagement rate over the longest window × hour match (the
  simulator-free intuition: P(response) ≈ channel affinity × time-of-day fit).
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from nurture_lake.config import RegionConfig
from nurture_lake.features.columns import feature_columns
from nurture_lake.features.settings import (
    CRM_STAGES,
    DAYPARTS,
    LIFECYCLE_STAGES,
    UNSUBSCRIBE_TYPES,
    FeatureSettings,
)
from nurture_lake.sqltext import sql_string

_SLIM_COLUMNS = ("lead_id", "event_type", "occurred_at", "ingested_at", "region", "tz_prop", "stage_prop")
_HISTORY_FIELDS = ("occurred_at", "ingested_at", "event_type", "tz_prop", "stage_prop")
_DAY_S = 86_400.0


@lru_cache(maxsize=1)
def _known_zones() -> tuple[str, ...]:
    # IANA region names only; Java's tzdb knows all of these (no "Factory"/"localtime" pseudo zones).
    return tuple(sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC"))


@lru_cache(maxsize=1)
def _zone_list_sql() -> str:
    # One SQL literal list: ~600 names parsed once instead of one py4j call per name.
    return ", ".join("'" + z.replace("'", "''") + "'" for z in _known_zones())


def valid_zone(column: str) -> Column:
    """True when the string column ``column`` holds a known IANA time-zone name (native, no UDF)."""
    return F.expr(f"`{column}` IS NOT NULL AND `{column}` IN ({_zone_list_sql()})")


def _slim_events(lead_events: DataFrame, settings: FeatureSettings) -> DataFrame:
    """Only the columns and event types any feature reads; ``tz_prop`` from ``lead_created`` properties."""
    def prop(name: str) -> Column:
        if "properties" not in lead_events.columns:
            return F.lit(None).cast("string")
        return F.when(F.col("event_type") == "lead_created", F.col("properties").getItem(name))

    relevant = F.col("event_type").isin(*settings.relevant_types) & F.col("lead_id").isNotNull()
    return lead_events.where(relevant).select(
        "lead_id", "event_type", "occurred_at", "ingested_at", "region", prop("timezone").alias("tz_prop"),
        prop("lifecycle_stage").alias("stage_prop"),
    )


def _region_zone_map(regions: Mapping[str, RegionConfig]) -> Column:
    pairs: list[Column] = []
    for code, region in regions.items():
        pairs += [F.lit(code), F.lit(region.timezone)]
    return F.create_map(*pairs) if pairs else F.create_map().cast("map<string,string>")


def _circular_kernel(sd: float) -> float:
    """Σ over the 24 local hours of the Gaussian kernel of their circular distance to any one hour."""
    return sum(math.exp(-(min(h, 24 - h) ** 2) / (2 * sd * sd)) for h in range(24))


def _send_hour(as_of: Column, timezone: Column, offset_hours: int, quiet: tuple[int, int] | None) -> Column:
    """Local hour of ``as_of + offset``, deferred to the end of the quiet hours when it falls inside them."""
    hour = F.hour(F.from_utc_timestamp(as_of + F.expr(f"INTERVAL {int(offset_hours)} HOURS"), timezone))
    if quiet is None or quiet[0] == quiet[1]:
        return hour
    start, end = quiet
    inside = (hour >= start) | (hour < end) if start > end else (hour >= start) & (hour < end)
    return F.when(inside, F.lit(end)).otherwise(hour)


def _hour_kernel(hour: Column, target: Column, sd: float) -> Column:
    """Gaussian kernel of the circular distance (hours, mod 24) between two local hours."""
    diff = F.abs(hour - target) % 24
    dist = F.least(diff, F.lit(24) - diff).cast("double")
    return F.exp(-(dist * dist) / F.lit(2 * sd * sd))


def _count(cond: Column) -> Column:
    return F.count(F.when(cond, F.lit(1)))


def _capped_hours(as_of: Column, last: Column, cap: float) -> Column:
    hours = (F.unix_micros(as_of) - F.unix_micros(last)) / F.lit(3.6e9)
    return F.least(F.coalesce(hours, F.lit(cap)), F.lit(cap)).cast("double")


def _features_core(
    slim: DataFrame,
    requests: DataFrame,
    *,
    settings: FeatureSettings,
    regions: Mapping[str, RegionConfig],
) -> DataFrame:
    """Features per (lead_id, as_of) from slim events; the single implementation behind every path."""
    s = settings
    req_region = F.col("region") if "region" in requests.columns else F.lit(None).cast("string")
    known_at = F.col("known_at") if "known_at" in requests.columns else F.lit(None).cast("timestamp")
    req = requests.groupBy("lead_id", F.col("as_of").cast("timestamp").alias("as_of")).agg(
        F.max(req_region).alias("_req_region"), F.max(known_at.cast("timestamp")).alias("_known_at"),
    ).withColumn("_known_at", F.coalesce(F.col("_known_at"), F.col("as_of")))
    ev = slim.select(
        F.col("lead_id").alias("_ev_lead"),
        *(F.col(c).alias(c if c != "region" else "_ev_region") for c in _SLIM_COLUMNS[1:]),
    )
    known = (
        (F.col("_ev_lead") == F.col("lead_id"))
        & (F.col("occurred_at") <= F.col("as_of"))
        & (F.col("ingested_at") <= F.col("_known_at"))
    )
    joined = req.join(ev, known, "left").drop("_ev_lead", "_known_at")

    age_s = (F.unix_micros(F.col("as_of")) - F.unix_micros(F.col("occurred_at"))) / F.lit(1e6)
    et = F.col("event_type")
    in_lb = age_s < F.lit(s.lookback_days * _DAY_S)
    is_touch = et.isin(*s.touch_types)
    is_eng = et.isin(*s.engagement_types)

    w = Window.partitionBy("lead_id", "as_of")
    zone_evt = F.max(F.when(
        (et == "lead_created") & valid_zone("tz_prop"), F.struct("occurred_at", "tz_prop"),
    )).over(w).getField("tz_prop")
    crm_evt = F.max(F.when(
        (et == "lead_created") & F.col("stage_prop").isin(*CRM_STAGES), F.struct("occurred_at", "stage_prop"),
    )).over(w).getField("stage_prop")
    # One Window operator: the three window aggregates are independent of each other.
    staged = (
        joined.select(
            "*", age_s.alias("_age_s"), F.min("_ev_region").over(w).alias("_w_region"),
            zone_evt.alias("_w_zone"), crm_evt.alias("crm_stage"),
            F.max(F.when(is_eng & in_lb, F.col("occurred_at"))).over(w).alias("_last_eng_lb"),
        )
        .withColumn("region", F.coalesce(F.col("_w_region"), F.col("_req_region")))
        .withColumn("timezone", F.coalesce(
            F.col("_w_zone"), F.try_element_at(_region_zone_map(regions), F.col("region")), F.lit("UTC"),
        ))
    )
    staged = staged.select("*", *(
        _send_hour(F.col("as_of"), F.col("timezone"), o, s.quiet_hours).alias(f"_send_hour_{o}")
        for o in s.send_offsets_hours
    ))
    age = F.col("_age_s")
    in_lb = age < F.lit(s.lookback_days * _DAY_S)
    local = F.from_utc_timestamp(F.col("occurred_at"), F.col("timezone"))
    weekend = F.dayofweek(local).isin(1, 7)
    hour = F.hour(local)
    daypart = (
        F.when(weekend, "weekend")
        .when(hour < 6, "weekday_night").when(hour < 12, "weekday_morning")
        .when(hour < 18, "weekday_afternoon").otherwise("weekday_evening")
    )

    # Level 1: per (lead, as_of, event_type) a handful of statistics; level 2: one map per request.
    # (About ten aggregates over events and one collect over types instead of ~100 wide aggregates,
    # whose generated code grows too large for the JIT.)
    in_w = {wd: age < F.lit(wd * _DAY_S) for wd in s.windows_days}
    unanswered = is_touch & in_lb & (F.col("_last_eng_lb").isNull() | (F.col("occurred_at") > F.col("_last_eng_lb")))
    decay = F.pow(F.lit(0.5), age / F.lit(3600.0 * s.fatigue_half_life_hours))
    stats = [
        *(_count(in_w[wd]).alias(f"n_{wd}") for wd in s.windows_days),
        F.max("occurred_at").alias("last_at"),
        F.max(F.when(in_lb, F.col("occurred_at"))).alias("last_lb"),
        *(_count(in_lb & (daypart == part)).alias(f"p_{part}") for part in DAYPARTS),
        F.sum(F.when(unanswered, decay)).alias("fatigue"),
        *(F.sum(F.when(in_lb, _hour_kernel(hour, F.col(f"_send_hour_{o}"), s.hour_kernel_hours))).alias(f"k_{o}")
          for o in s.send_offsets_hours),
    ]
    # region and timezone are constant per request: grouping by them keeps every buffer fixed-width
    # (hash aggregation with generated code instead of a sort-based fallback).
    keys = ["lead_id", "as_of", "region", "timezone", "crm_stage"]
    per_type = staged.groupBy(*keys, "event_type").agg(*stats)
    fields = [f"n_{wd}" for wd in s.windows_days] + ["last_at", "last_lb", *(f"p_{p}" for p in DAYPARTS), "fatigue"]
    fields += [f"k_{o}" for o in s.send_offsets_hours]
    agg = per_type.groupBy(*keys).agg(
        F.map_from_entries(F.collect_list(F.when(
            F.col("event_type").isNotNull(), F.struct("event_type", F.struct(*fields)),
        ))).alias("_m"),
    )

    # Each column built from Python costs several JVM calls (about 4.5 s of driver time per call of this
    # function when the sums were built term by term). A sum is one SQL expression instead (one call),
    # built once per (types, field): the same sums recur across feature families.
    sums: dict[tuple[tuple[str, ...], str], Column] = {}

    def stat(types: tuple[str, ...] | list[str], field: str) -> list[Column]:
        return [F.col("_m").getItem(t).getField(field) for t in types]

    def total(types: tuple[str, ...] | list[str], field: str) -> Column:
        key = (tuple(types), field)
        if key not in sums:
            terms = " + ".join(f"coalesce(_m[{sql_string(t)}].`{field}`, 0)" for t in key[0])
            sums[key] = F.expr(f"CAST(({terms}) AS DOUBLE)")
        return sums[key]

    def in_lookback(types: tuple[str, ...] | list[str]) -> Column:
        """Events of ``types`` inside the lookback (the sum of their day-part buckets)."""
        acc = total(types, f"p_{DAYPARTS[0]}")
        for part in DAYPARTS[1:]:
            acc = acc + total(types, f"p_{part}")
        return acc

    def latest(types: tuple[str, ...] | list[str], field: str) -> Column:
        cols = stat(types, field)
        return cols[0] if len(cols) == 1 else F.greatest(*cols)

    def exists(types: tuple[str, ...]) -> Column:
        return F.arrays_overlap(F.map_keys(F.col("_m")), F.array(*(F.lit(x) for x in types)))

    stage = (
        F.when(exists(("deal_won",)), "customer").when(exists(UNSUBSCRIBE_TYPES), "unsubscribed")
        .when(exists(("opportunity_created",)), "opportunity").when(exists(("meeting_booked",)), "meeting")
        .when(exists(s.engagement_types), "engaged").otherwise("new")
    )
    local_asof = F.from_utc_timestamp(F.col("as_of"), F.col("timezone"))
    cap = s.recency_cap_hours
    eng = list(s.engagement_types)
    out: dict[str, Column] = {}
    for wd in s.windows_days:
        for channel in s.channels:
            for kind in ("sent", *s.kinds(channel)):
                out[f"n_{channel}_{kind}_{wd}d"] = total([f"{channel}_{kind}"], f"n_{wd}")
    for wd in s.windows_days:
        for channel in s.channels:
            for kind in s.kinds(channel):
                out[f"{channel}_{kind}_rate_{wd}d"] = (
                    (total([f"{channel}_{kind}"], f"n_{wd}") + F.lit(s.rate_prior_engagements))
                    / (total([f"{channel}_sent"], f"n_{wd}") + F.lit(s.rate_prior_touches))
                )
    for wd in s.windows_days:
        out[f"touches_{wd}d"] = total(s.touch_types, f"n_{wd}")
        out[f"engagements_{wd}d"] = total(eng, f"n_{wd}")
    for channel in s.channels:
        out[f"hours_since_{channel}_touch"] = _capped_hours(
            F.col("as_of"), latest([f"{channel}_sent"], "last_at"), cap)
        out[f"hours_since_{channel}_engagement"] = _capped_hours(
            F.col("as_of"), latest([f"{channel}_{k}" for k in s.kinds(channel)], "last_at"), cap)
    out["hours_since_touch"] = _capped_hours(F.col("as_of"), F.col("last_touch_at"), cap)
    out["hours_since_engagement"] = _capped_hours(F.col("as_of"), F.col("last_engagement_at"), cap)
    for part in DAYPARTS:
        out[f"engagement_share_{part}"] = (
            (total(eng, f"p_{part}") + F.lit(s.profile_prior))
            / (F.col("_profile_total") + F.lit(len(DAYPARTS) * s.profile_prior))
        )
    out["fatigue"] = total(s.touch_types, "fatigue")
    for name in LIFECYCLE_STAGES:
        out[f"stage_{name}"] = F.when(F.col("lifecycle_stage") == name, 1.0).otherwise(0.0)
    out["local_hour_sin"] = F.sin(F.col("local_hour") * F.lit(2 * math.pi / 24))
    out["local_hour_cos"] = F.cos(F.col("local_hour") * F.lit(2 * math.pi / 24))
    out["local_is_weekend"] = F.when(F.dayofweek(local_asof).isin(1, 7), 1.0).otherwise(0.0)
    for name in CRM_STAGES:
        out[f"crm_stage_{name}"] = F.when(F.col("crm_stage") == name, 1.0).otherwise(0.0)

    n_share = len(s.channels) + 1
    for channel in s.channels:
        out[f"channel_share_{channel}"] = (
            (in_lookback([f"{channel}_{k}" for k in s.kinds(channel)]) + F.lit(s.profile_prior))
            / (F.col("_profile_total") + F.lit(n_share * s.profile_prior))
        )
    kernel_sum = _circular_kernel(s.hour_kernel_hours)
    for o in s.send_offsets_hours:
        out[f"hour_match_{o}h"] = (
            (total(eng, f"k_{o}") + F.lit(s.hour_prior * kernel_sum))
            / ((F.col("_profile_total") + F.lit(24 * s.hour_prior)) * F.lit(kernel_sum / 24))
        )
    longest = max(s.windows_days)
    for channel in s.channels:
        rate = out[f"{channel}_{s.kinds(channel)[0]}_rate_{longest}d"]
        for o in s.send_offsets_hours:
            out[f"{channel}_engage_index_{o}h"] = rate * out[f"hour_match_{o}h"]

    names = feature_columns(s)
    assert list(out) == names, "feature expressions out of step with describe_features()"
    return (
        agg.withColumn("lifecycle_stage", stage)
        .withColumn("local_hour", F.hour(local_asof))
        .withColumn("last_touch_at", latest(s.touch_types, "last_lb"))
        .withColumn("last_engagement_at", latest(eng, "last_lb"))
        .withColumn("_profile_total", in_lookback(eng))
        .select(
            "lead_id", "as_of", "region", "timezone", "local_hour", "lifecycle_stage",
            "last_touch_at", "last_engagement_at",
            *(out[n].cast("double").alias(n) for n in names),
            F.lit(s.feature_version).alias("feature_version"),
        )
    )


def compute_features(
    lead_events: DataFrame,
    requests: DataFrame,
    *,
    regions: Mapping[str, RegionConfig],
    settings: FeatureSettings | None = None,
) -> DataFrame:
    """Features of each ``(lead_id, as_of)`` request from what was known at ``as_of``.

    ``lead_events``: ``silver.events`` rows plus ``lead_id``. ``requests``: ``lead_id``, ``as_of``
    (timestamp) and optionally ``region`` (used when the lead has no known event) and ``known_at``
    (the ingestion horizon when it differs from ``as_of``, e.g. a scorer whose decision time runs on
    another clock). An event counts only when ``occurred_at <= as_of`` and
    ``ingested_at <= known_at`` (default: ``as_of``) — what was known then. One row per distinct request:
    ``lead_id, as_of, region, timezone, local_hour, lifecycle_stage, last_touch_at,
    last_engagement_at``, the :data:`FEATURE_COLUMNS` (doubles) and ``feature_version``.
    """
    s = settings or FeatureSettings()
    return _features_core(_slim_events(lead_events, s), requests, settings=s, regions=regions)


# Compact history: what gold.lead_features keeps so that scoring later reproduces compute_features exactly.

def lead_history(lead_events: DataFrame, *, as_of: datetime, settings: FeatureSettings | None = None) -> DataFrame:
    """Per lead: ``region`` and ``history`` — the events needed for features at any time ``>= as_of``.

    Kept (from events ingested by ``as_of``): every relevant event inside the lookback of ``as_of``
    (and any that occurred later), every ``lead_created`` (time zone), and per stage event type the
    earliest-known event (``greatest(occurred_at, ingested_at)`` smallest) — enough to decide whether
    such an event was known at a later time. Older events cannot reach any window, the lookback or,
    beyond the cap, recency.
    """
    s = settings or FeatureSettings()
    slim = _slim_events(lead_events, s).where(F.col("ingested_at") <= F.lit(as_of))
    age_s = (F.unix_micros(F.lit(as_of).cast("timestamp")) - F.unix_micros(F.col("occurred_at"))) / F.lit(1e6)
    first_known = Window.partitionBy("lead_id", "event_type").orderBy(
        F.greatest("occurred_at", "ingested_at"), "occurred_at", "ingested_at",
    )
    keep = (
        (age_s < F.lit(s.lookback_days * _DAY_S))
        | (F.col("event_type") == "lead_created")
        | (F.col("event_type").isin(*s.stage_types) & (F.row_number().over(first_known) == 1))
    )
    kept = slim.withColumn("_keep", keep).where("_keep")
    return kept.groupBy("lead_id").agg(
        F.min("region").alias("region"),
        F.array_sort(F.collect_list(F.struct(*_HISTORY_FIELDS))).alias("history"),
    )


def history_events(lead_features: DataFrame) -> DataFrame:
    """The compact history of ``gold.lead_features`` rows as slim lead events (one row per event)."""
    exploded = lead_features.select("lead_id", "region", F.explode("history").alias("_e"))
    return exploded.select(
        "lead_id", "_e.event_type", "_e.occurred_at", "_e.ingested_at", "region", "_e.tz_prop", "_e.stage_prop",
    )


def features_from_table(
    lead_features: DataFrame,
    requests: DataFrame,
    *,
    regions: Mapping[str, RegionConfig],
    settings: FeatureSettings | None = None,
) -> DataFrame:
    """Features as of each request's ``as_of`` from ``gold.lead_features`` rows (scoring path).

    Equal to :func:`compute_features` over the full event history for any ``as_of`` at or after the
    row's ``as_of``, provided no event was ingested after the row's ``events_hwm`` (refresh the table
    first). Requests without a ``region`` take the row's region.
    """
    s = settings or FeatureSettings()
    req = requests
    if "region" not in requests.columns:
        req = requests.join(lead_features.select("lead_id", "region"), "lead_id", "left")
    return _features_core(history_events(lead_features), req, settings=s, regions=regions)
