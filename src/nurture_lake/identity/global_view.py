"""The cross-region view: regional leads linked through shared pseudonyms.

The same e-mail address seen in ``us`` and ``eu`` has the same keyed pseudonym in both regions, so
the two regional leads holding it belong to one global lead. Only pseudonyms are compared, and the
output holds lead ids only (``region``, ``lead_id``, ``global_lead_id``): no id_key leaves a region's
tables except as a transient join key in memory.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from nurture_lake.identity.components import connected_components
from nurture_lake.identity.graph import lead_id_col

_LEAD_NODE = "lead|"


def build_global_leads(
    graphs: dict[str, DataFrame],
    *,
    global_prefix: str = "G",
    hex_chars: int = 20,
    max_iterations: int = 100,
) -> tuple[DataFrame, int]:
    """``region``, ``lead_id``, ``global_lead_id`` for every regional lead, and the CC iterations.

    ``graphs`` maps region → its ``silver.identity_graph`` (``id_key``, ``lead_id``). A global lead
    id is ``prefix + sha256("<region>|<lead_id>" of its smallest member lead)[:n]``: a lead linked to
    no other region keeps the same global id as long as its regional id lives.
    """
    if not graphs:
        raise ValueError("build_global_leads needs at least one region's graph")
    node = lambda region: F.concat(F.lit(f"{_LEAD_NODE}{region}|"), F.col("lead_id"))  # noqa: E731
    links = reduce(
        DataFrame.union,
        [g.select(node(region).alias("src"), F.col("id_key").alias("dst")) for region, g in graphs.items()],
    )
    cc = connected_components(links, max_iterations=max_iterations)
    leads = cc.components.where(F.col("vertex").startswith(_LEAD_NODE)).select(
        "component", F.expr(f"substring(vertex, {len(_LEAD_NODE) + 1})").alias("member")
    )
    anchors = leads.groupBy("component").agg(F.min("member").alias("anchor"))
    result = leads.join(anchors, "component").select(
        F.split("member", r"\|").getItem(0).alias("region"),
        F.split("member", r"\|").getItem(1).alias("lead_id"),
        lead_id_col(F.col("anchor"), prefix=global_prefix, hex_chars=hex_chars).alias("global_lead_id"),
    )
    return result, cc.iterations


__all__ = ["build_global_leads"]
