"""The feature layer: point-in-time correct lead features, one definition for training and scoring.

* :func:`compute_features` — features of ``(lead_id, as_of)`` requests from what was known then.
* :data:`FEATURE_COLUMNS`, :func:`context_vector` — the documented, fixed-length numeric context.
* :func:`update_lead_features` — incremental ``gold.lead_features`` per region (MERGE by lead);
  :func:`features_from_table` refreshes its rows as of now with the same code.
* :func:`consent_and_suppression` — per-lead, per-channel consent and suppression flags.
"""

from nurture_lake.features.columns import (
    CONTEXT_COLUMNS,
    FEATURE_COLUMNS,
    FeatureColumn,
    context_column,
    context_columns,
    context_features,
    context_vector,
    describe_features,
    describe_features_markdown,
    feature_columns,
)
from nurture_lake.features.compute import compute_features, features_from_table, history_events, lead_history
from nurture_lake.features.consent import consent_and_suppression
from nurture_lake.features.settings import LIFECYCLE_STAGES, FeatureSettings
from nurture_lake.features.store import (
    FeatureUpdate,
    build_feature_rows,
    latest_features_version,
    lead_features_schema,
    lead_features_table,
    read_lead_features,
    update_lead_features,
)

__all__ = [
    "CONTEXT_COLUMNS",
    "FEATURE_COLUMNS",
    "LIFECYCLE_STAGES",
    "FeatureColumn",
    "FeatureSettings",
    "FeatureUpdate",
    "build_feature_rows",
    "compute_features",
    "consent_and_suppression",
    "context_column",
    "context_columns",
    "context_features",
    "context_vector",
    "describe_features",
    "describe_features_markdown",
    "feature_columns",
    "features_from_table",
    "history_events",
    "latest_features_version",
    "lead_features_schema",
    "lead_features_table",
    "lead_history",
    "read_lead_features",
    "update_lead_features",
]
