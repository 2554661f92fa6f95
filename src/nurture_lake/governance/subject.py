"""Who a data subject is across the lake: pseudonyms, regional lead ids, global lead ids, raw values.

Starting from one identifier's pseudonym, :func:`resolve_subject` follows the identity graph of every
region to the lead(s) holding it, takes all their id_keys, follows lead merges (old lead ids are the
same person) and the cross-region view (``global.silver.global_leads``), and repeats until nothing
new is found. Raw identifier values come from each region's own vault (``silver.identifiers``) and
stay in the driver's memory only.

Example::

    subject = resolve_subject(spark, lake, [pseudonym(cfg.hmac_key(), "email", "ada@example.com")])
    subject.lead_ids("us")
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from nurture_lake.config import NurtureConfig
from nurture_lake.privacy import normalise_identifier, pseudonym
from nurture_lake.schemas import IDENTIFIER_TYPES
from nurture_lake.tables import GLOBAL_REGION, Lake


@dataclass(frozen=True)
class Subject:
    """Everything that identifies one person in the lake (small: collected to the driver)."""

    id_keys: frozenset[str]
    leads: frozenset[tuple[str, str]] = frozenset()
    global_leads: frozenset[str] = frozenset()
    raw_values: dict[str, frozenset[tuple[str, str]]] = field(default_factory=dict)

    def lead_ids(self, region: str) -> list[str]:
        """The subject's lead ids in ``region`` (current and merged-away), sorted."""
        return sorted(lead for r, lead in self.leads if r == region)

    def values(self, region: str) -> list[tuple[str, str]]:
        """``(id_type, normalised raw value)`` pairs known in ``region``'s vault (plus the one given)."""
        return sorted(self.raw_values.get(region, frozenset()))

    @property
    def is_empty(self) -> bool:
        """True when no lead was found (only the starting pseudonyms are known)."""
        return not self.leads


def subject_pseudonyms(cfg: NurtureConfig, id_type: str, value: str) -> list[str]:
    """Normalise a raw identifier and pseudonymise it; a phone without country prefix is read with the
    default country of every region (one pseudonym per distinct reading), other types give one."""
    if id_type not in IDENTIFIER_TYPES:
        raise ValueError(f"unknown identifier type {id_type!r}; one of {', '.join(IDENTIFIER_TYPES)}")
    readings = {
        normalise_identifier(id_type, value, phone_region=region.phone_region) for region in cfg.regions.values()
    } - {None}
    if not readings:
        raise ValueError(f"the given value is not a valid {id_type}")
    return sorted(pseudonym(cfg.hmac_key(), id_type, text) for text in readings if text)


def subject_token(pseudonym_: str) -> str:
    """A one-way token of a pseudonym (SHA-256 hex) kept in erasure and access records.

    It differs from every value stored in data tables, so erasure leaves no pseudonym behind, yet a
    holder of the key and the raw identifier can recompute it to prove the erasure happened.
    """
    return "subject:" + hashlib.sha256(pseudonym_.encode("utf-8")).hexdigest()


def _in(column: str, values: Iterable[str]) -> F.Column:
    items = sorted(set(values))
    return F.col(column).isin(items) if items else F.lit(False)


def resolve_subject(
    spark: SparkSession,
    lake: Lake,
    pseudonyms: Iterable[str],
    *,
    raw: Iterable[tuple[str, str]] = (),
    max_rounds: int = 8,
) -> Subject:
    """Close ``pseudonyms`` over identity graphs, merges and the global view (see module doc).

    ``raw`` (``(id_type, normalised value)`` pairs) is added to every region's raw values, so payloads
    holding the identifier are found even where the vault never saw it.
    """
    keys = set(pseudonyms)
    leads: set[tuple[str, str]] = set()
    global_ids: set[str] = set()
    graphs = {r: lake.table(r, "silver", "identity_graph") for r in lake.regions}
    merges = {r: lake.table(r, "silver", "lead_merges") for r in lake.regions}
    global_leads = lake.table(GLOBAL_REGION, "silver", "global_leads")
    for _ in range(max_rounds):
        before = (len(keys), len(leads), len(global_ids))
        for region, graph in graphs.items():
            if not graph.exists(spark):
                continue
            mine = [lead for r, lead in leads if r == region]
            rows = graph.read(spark).where(_in("id_key", keys) | _in("lead_id", mine)).select("id_key", "lead_id")
            for row in rows.collect():
                keys.add(row["id_key"])
                leads.add((region, row["lead_id"]))
            if merges[region].exists(spark):
                mine = [lead for r, lead in leads if r == region]
                linked = merges[region].read(spark).where(
                    _in("merged_lead_id", mine) | _in("surviving_lead_id", mine)
                )
                for row in linked.select("merged_lead_id", "surviving_lead_id").collect():
                    leads.update({(region, row["merged_lead_id"]), (region, row["surviving_lead_id"])})
        if global_leads.exists(spark):
            by_lead = F.lit(False)
            for region in lake.regions:
                by_lead = by_lead | ((F.col("region") == region) & _in("lead_id", [x for r, x in leads if r == region]))
            rows = global_leads.read(spark).where(by_lead | _in("global_lead_id", global_ids)).collect()
            for row in rows:
                global_ids.add(row["global_lead_id"])
                leads.add((row["region"], row["lead_id"]))
        if (len(keys), len(leads), len(global_ids)) == before:
            break
    raw_values: dict[str, frozenset[tuple[str, str]]] = {}
    given = set(raw)
    for region in lake.regions:
        vault = lake.table(region, "silver", "identifiers")
        found = set(given)
        if vault.exists(spark):
            rows = vault.read(spark).where(_in("id_key", keys)).select("id_type", "value").collect()
            found.update((row["id_type"], row["value"]) for row in rows)
        raw_values[region] = frozenset(found)
    return Subject(
        id_keys=frozenset(keys), leads=frozenset(leads), global_leads=frozenset(global_ids), raw_values=raw_values,
    )


__all__ = ["Subject", "resolve_subject", "subject_pseudonyms", "subject_token"]
