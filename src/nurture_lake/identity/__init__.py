"""The identity graph: identifiers seen together → one lead with a stable id, per region and across regions.

Example::

    from nurture_lake.identity import run_region, attach_lead_id
    summary = run_region(spark, lake, "us")
    events_with_leads = attach_lead_id(events_df, lake.table("us", "silver", "identity_graph").read(spark))
"""

from nurture_lake.identity.components import ComponentsDidNotConverge, ComponentsResult, connected_components
from nurture_lake.identity.config import IdentityConfig, identity_config
from nurture_lake.identity.edges import event_edges
from nurture_lake.identity.global_view import build_global_leads
from nurture_lake.identity.graph import GraphUpdate, lead_id_for, update_graph
from nurture_lake.identity.lookup import attach_lead_id, resolve_merges
from nurture_lake.identity.pipeline import (
    GlobalSummary,
    IdentityTables,
    RegionSummary,
    global_leads_table,
    identity_tables,
    run_global,
    run_region,
)
from nurture_lake.identity.schemas import GLOBAL_LEADS, IDENTITY_EDGES, IDENTITY_GRAPH, IDENTITY_STATE, LEAD_MERGES

__all__ = [
    "GLOBAL_LEADS",
    "IDENTITY_EDGES",
    "IDENTITY_GRAPH",
    "IDENTITY_STATE",
    "LEAD_MERGES",
    "ComponentsDidNotConverge",
    "ComponentsResult",
    "GlobalSummary",
    "GraphUpdate",
    "IdentityConfig",
    "IdentityTables",
    "RegionSummary",
    "attach_lead_id",
    "build_global_leads",
    "connected_components",
    "event_edges",
    "global_leads_table",
    "identity_config",
    "identity_tables",
    "lead_id_for",
    "resolve_merges",
    "run_global",
    "run_region",
    "update_graph",
]
