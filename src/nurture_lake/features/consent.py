"""Consent and suppression per lead and channel, for scoring and guardrails.

Consent (from ``silver.consent_current``, keyed by identifier pseudonyms, mapped to leads): for
each lead and channel the latest record across the lead's identifiers decides (at the same
instant a revoke beats a grant). A current revoke on channel ``all`` blocks every channel; a
grant on ``all`` counts for channels without their own record. With no record the region's
``consent_mode`` decides: ``opt_out`` allows, ``opt_in`` does not (an unknown region is treated
as ``opt_in``).

Suppression (from the lead's events): ``<channel>_unsubscribe`` suppresses that channel, a hard
``email_bounce`` suppresses email (``properties.bounce_type`` absent or not soft/transient), and
an ``email_complaint`` suppresses every channel (``suppressed``).

Example::

    flags = consent_and_suppression(current, graph.select("id_key", "lead_id"), lead_events,
                                    regions_cfg=cfg.regions)
    flags.where("allowed_email")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from nurture_lake.config import RegionConfig
from nurture_lake.schemas import EVENT_TYPES

ALL_CHANNELS = "all"
DEFAULT_CHANNELS: tuple[str, ...] = ("email", "push", "chat", "sms")
SOFT_BOUNCE_TYPES: tuple[str, ...] = ("soft", "transient", "temporary")
"""``properties.bounce_type`` values that do not suppress; anything else (or none) is a hard bounce."""


def _opt_in_map(regions_cfg: Mapping[str, RegionConfig]) -> Column:
    pairs: list[Column] = []
    for code, region in regions_cfg.items():
        pairs += [F.lit(code), F.lit(region.consent_mode == "opt_in")]
    return F.create_map(*pairs) if pairs else F.create_map().cast("map<string,boolean>")


def _with_lead_id(events: DataFrame, id_to_lead: DataFrame) -> DataFrame:
    if "lead_id" in events.columns:
        return events
    keyed = events.select("*", F.explode(F.map_values("identifiers")).alias("id_key"))
    return keyed.join(id_to_lead.select("id_key", "lead_id"), "id_key").drop("id_key").dropDuplicates(["event_id"])


def _suppression_reasons(
    channels: Sequence[str], *, has_properties: bool,
) -> list[tuple[str, Column, tuple[str, ...]]]:
    """(reason, condition on an event row, channels it suppresses; empty = every channel)."""
    et = F.col("event_type")
    bounce_type = (
        F.lower(F.col("properties").getItem("bounce_type")) if has_properties else F.lit(None).cast("string")
    )
    hard = bounce_type.isNull() | ~bounce_type.isin(*SOFT_BOUNCE_TYPES)
    reasons: list[tuple[str, Column, tuple[str, ...]]] = []
    for channel in channels:
        if f"{channel}_unsubscribe" in EVENT_TYPES:
            reasons.append((f"{channel}_unsubscribe", et == f"{channel}_unsubscribe", (channel,)))
    if "email" in channels:
        reasons.append(("email_hard_bounce", (et == "email_bounce") & hard, ("email",)))
    reasons.append(("complaint", et == "email_complaint", ()))
    return reasons


def consent_and_suppression(
    consent_current: DataFrame,
    id_to_lead: DataFrame,
    events: DataFrame,
    *,
    regions_cfg: Mapping[str, RegionConfig],
    channels: Sequence[str] = DEFAULT_CHANNELS,
    purpose: str | None = "marketing",
    as_of: datetime | None = None,
) -> DataFrame:
    """Per lead: ``region``, ``consent_<c>``, ``suppressed_<c>``, ``allowed_<c>`` for each channel ``c``,
    ``suppressed`` (every channel) and ``suppression_reasons``.

    ``consent_current``: :data:`~nurture_lake.schemas.SILVER_CONSENT_CURRENT`; ``id_to_lead``:
    ``(id_key, lead_id)``; ``events``: lead events (with ``lead_id``) or silver events (mapped through
    ``id_to_lead``). Leads are those of ``events`` and ``id_to_lead``. ``purpose=None`` uses every
    purpose; ``as_of`` keeps only what was known then (events by occurred and ingested time, consent
    by occurred time).
    """
    links = id_to_lead.select("id_key", "lead_id").dropDuplicates()
    cc = consent_current
    ev = _with_lead_id(events, links)
    if purpose is not None:
        cc = cc.where(F.col("purpose") == purpose)
    if as_of is not None:
        cc = cc.where(F.col("occurred_at") <= F.lit(as_of))
        ev = ev.where((F.col("occurred_at") <= F.lit(as_of)) & (F.col("ingested_at") <= F.lit(as_of)))

    records = cc.join(links, "id_key").select(
        "lead_id", "channel", "region",
        # Ordering key: latest first; at the same instant the revoke (revoked=True) wins, then event_id.
        F.struct("occurred_at", (~F.col("granted")).alias("revoked"), "event_id").alias("_rec"),
    )
    states = records.groupBy("lead_id").agg(
        F.min("region").alias("_consent_region"),
        *(F.max(F.when(F.col("channel") == c, F.col("_rec"))).alias(f"_rec_{c}") for c in (*channels, ALL_CHANNELS)),
    )

    reasons = _suppression_reasons(channels, has_properties="properties" in ev.columns)
    ev_flags = ev.groupBy("lead_id").agg(
        F.min("region").alias("_event_region"),
        *((F.count(F.when(cond, F.lit(1))) > 0).alias(f"_why_{name}") for name, cond, _ in reasons),
    )

    leads = ev.select("lead_id").union(links.select("lead_id")).distinct()
    base = leads.join(ev_flags, "lead_id", "left").join(states, "lead_id", "left")
    region = F.coalesce(F.col("_event_region"), F.col("_consent_region"))
    opt_in = F.coalesce(F.try_element_at(_opt_in_map(regions_cfg), region), F.lit(True))
    all_rec = F.col(f"_rec_{ALL_CHANNELS}")

    def why(name: str) -> Column:
        return F.coalesce(F.col(f"_why_{name}"), F.lit(False))

    out: list[Column] = [F.col("lead_id"), region.alias("region")]
    for c in channels:
        rec = F.col(f"_rec_{c}")
        consent = (
            F.when(all_rec.isNotNull() & all_rec.getField("revoked"), F.lit(False))
            .when(rec.isNotNull(), ~rec.getField("revoked"))
            .when(all_rec.isNotNull(), F.lit(True))
            .otherwise(~opt_in)
        )
        out.append(consent.alias(f"consent_{c}"))
    everything = why("complaint")
    for c in channels:
        hit = [why(name) for name, _, chans in reasons if c in chans]
        flag = everything
        for h in hit:
            flag = flag | h
        out.append(flag.alias(f"suppressed_{c}"))
    out.append(everything.alias("suppressed"))
    out.append(F.array_compact(F.array(*(F.when(why(name), F.lit(name)) for name, _, _ in reasons)))
               .alias("suppression_reasons"))
    flagged = base.select(*out)
    return flagged.select(
        "*", *((F.col(f"consent_{c}") & ~F.col(f"suppressed_{c}")).alias(f"allowed_{c}") for c in channels),
    )
