"""The closed loop on a simulated clock, and its report."""

from nurture_lake.loop.closed_loop import ClosedLoop, LoopResult, TickStats, attribute_region, outcomes_table, upsert_outcomes
from nurture_lake.loop.report import Report, build_report

__all__ = [
    "ClosedLoop",
    "LoopResult",
    "Report",
    "TickStats",
    "attribute_region",
    "build_report",
    "outcomes_table",
    "upsert_outcomes",
]
