"""Scoring: due leads → guardrails → policy → ``gold.cadence_decisions`` with full lineage."""

from nurture_lake.scoring.decide import Lineage, ScoringSettings, decide, decision_id_col, guardrail_candidates, holdout_col
from nurture_lake.scoring.due import due_leads, touch_history

__all__ = [
    "Lineage",
    "ScoringSettings",
    "decide",
    "decision_id_col",
    "due_leads",
    "guardrail_candidates",
    "holdout_col",
    "touch_history",
]
