"""Privacy and governance: erasure across regions, retention, access audit, decision lineage, DP noise.

Example::

    from nurture_lake.governance import resolve_subject, subject_pseudonyms, submit_request, process_pending
    request_id = submit_request(spark, lake, subject_type="email",
                                pseudonyms=subject_pseudonyms(cfg, "email", "ada@example.com"), reason="art. 17")
    process_pending(spark, lake)
"""

from nurture_lake.governance.access import (
    ACCESS_LOG,
    MissingReason,
    access_log_table,
    lookup_subject,
    record_access,
    require_reason,
)
from nurture_lake.governance.dp import laplace_noise, laplace_scale
from nurture_lake.governance.erasure import (
    ERASURE_REQUESTS,
    ErasureReport,
    erase_landing,
    erase_subject,
    erasure_requests_table,
    erasure_tables,
    pending_requests,
    process_pending,
    raw_readings,
    request_summary,
    submit_request,
)
from nurture_lake.governance.explain import DecisionNotFound, explain_decision, render_explanation
from nurture_lake.governance.purge import PurgeResult, purge_table, purge_tables
from nurture_lake.governance.retention import RetentionResult, apply_retention
from nurture_lake.governance.settings import GovernanceSettings, governance_settings, parse_window
from nurture_lake.governance.subject import Subject, resolve_subject, subject_pseudonyms, subject_token

__all__ = [
    "ACCESS_LOG",
    "ERASURE_REQUESTS",
    "DecisionNotFound",
    "ErasureReport",
    "GovernanceSettings",
    "MissingReason",
    "PurgeResult",
    "RetentionResult",
    "Subject",
    "access_log_table",
    "apply_retention",
    "erase_landing",
    "erase_subject",
    "erasure_requests_table",
    "erasure_tables",
    "explain_decision",
    "governance_settings",
    "laplace_noise",
    "laplace_scale",
    "lookup_subject",
    "parse_window",
    "pending_requests",
    "process_pending",
    "purge_table",
    "purge_tables",
    "raw_readings",
    "record_access",
    "render_explanation",
    "request_summary",
    "require_reason",
    "resolve_subject",
    "subject_pseudonyms",
    "subject_token",
]
