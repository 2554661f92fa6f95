"""Guardrails, the policy engine: hard constraints evaluated for every candidate action before sampling.

Public API:

- :class:`GuardrailConfig` — declarative rules from ``cfg.section("guardrails")`` with per-region overrides.
- :func:`apply_guardrails` — Spark: allowed actions, rule results and send times for every candidate lead.
- :func:`evaluate_lead` — the same evaluation in plain Python for one lead (the twin the tests compare).
- :func:`gate_budgets` / :func:`enforce_budgets` — daily budgets across the leads of one batch.
- :func:`check_decisions` — replay a decision table against the history and report every violation.
"""

from nurture_lake.guardrails.budgets import enforce_budgets, gate_budgets
from nurture_lake.guardrails.checker import VIOLATIONS, check_decisions
from nurture_lake.guardrails.config import GuardrailConfig, GuardrailRules
from nurture_lake.guardrails.engine import apply_guardrails
from nurture_lake.guardrails.rules import GuardrailResult, LeadContext, LeadEvaluation, Touch, evaluate_lead

__all__ = [
    "VIOLATIONS",
    "GuardrailConfig",
    "GuardrailResult",
    "GuardrailRules",
    "LeadContext",
    "LeadEvaluation",
    "Touch",
    "apply_guardrails",
    "check_decisions",
    "enforce_budgets",
    "evaluate_lead",
    "gate_budgets",
]
