"""The data contracts: landing events and the schemas of the shared bronze/silver tables.

These are the product (see ``shared/DESIGN.md`` §3). Change them only with a migration.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

SCHEMA_VERSION = "1"

EVENT_TYPES: tuple[str, ...] = (
    "lead_created", "web_visit", "form_submit",
    "email_sent", "email_delivered", "email_open", "email_click", "email_reply",
    "email_bounce", "email_unsubscribe", "email_complaint",
    "push_sent", "push_open",
    "chat_sent", "chat_reply",
    "sms_sent", "sms_delivered", "sms_click", "sms_reply", "sms_unsubscribe",
    "meeting_booked", "opportunity_created", "deal_won",
    "consent_granted", "consent_revoked",
)
"""Every event type the landing contract accepts; anything else is quarantined (``unknown_event_type``)."""

CHANNELS: tuple[str, ...] = ("email", "push", "chat", "sms", "web", "crm")
"""Channels an event may name (``channel`` is optional for organic events)."""

IDENTIFIER_TYPES: tuple[str, ...] = ("email", "phone", "crm_id", "device_id", "cookie_id")
"""Identifier kinds of the ``identifiers`` object; at least one is required."""

REQUIRED_FIELDS: tuple[str, ...] = ("event_id", "event_type", "occurred_at", "region", "identifiers", "schema_version")

LANDING_FIELDS: tuple[str, ...] = (
    "event_id", "event_type", "occurred_at", "region", "identifiers", "channel",
    "decision_id", "properties", "schema_version",
)

CONSENT_EVENT_TYPES: tuple[str, ...] = ("consent_granted", "consent_revoked")
SUPPRESSION_EVENT_TYPES: tuple[str, ...] = (
    "email_unsubscribe", "email_complaint", "email_bounce", "sms_unsubscribe",
)


class QuarantineReason:
    """Machine-readable quarantine reason codes, one per failure kind."""

    MALFORMED_JSON = "malformed_json"
    MISSING_REQUIRED_FIELD = "missing_required_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNKNOWN_CHANNEL = "unknown_channel"
    BAD_TIMESTAMP = "bad_timestamp"
    NO_IDENTIFIERS = "no_identifiers"
    REGION_MISMATCH = "region_mismatch"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    DUPLICATE_EVENT_ID = "duplicate_event_id"

    ALL: tuple[str, ...] = (
        MALFORMED_JSON, MISSING_REQUIRED_FIELD, WRONG_TYPE, UNKNOWN_EVENT_TYPE, UNKNOWN_CHANNEL,
        BAD_TIMESTAMP, NO_IDENTIFIERS, REGION_MISMATCH, UNSUPPORTED_SCHEMA_VERSION, DUPLICATE_EVENT_ID,
    )


_STR_MAP = MapType(StringType(), StringType())

BRONZE_EVENTS_RAW = StructType([
    StructField("value", StringType(), True),            # the raw line / message, untouched
    StructField("source_file", StringType(), True),      # landing file (file source)
    StructField("kafka_topic", StringType(), True),      # Kafka lineage (Kafka source)
    StructField("kafka_partition", LongType(), True),
    StructField("kafka_offset", LongType(), True),
    StructField("kafka_key", StringType(), True),
    StructField("region", StringType(), False),          # the region whose landing it came from
    StructField("ingested_at", TimestampType(), False),
    StructField("batch_id", LongType(), False),
])

SILVER_EVENTS = StructType([
    StructField("event_id", StringType(), False),
    StructField("event_type", StringType(), False),
    StructField("occurred_at", TimestampType(), False),  # UTC
    StructField("region", StringType(), False),
    StructField("identifiers", _STR_MAP, False),          # identifier type -> keyed pseudonym ("email:<hmac>")
    StructField("channel", StringType(), True),
    StructField("decision_id", StringType(), True),
    StructField("properties", _STR_MAP, True),
    StructField("schema_version", StringType(), False),
    StructField("source_file", StringType(), True),
    StructField("ingested_at", TimestampType(), False),
    StructField("batch_id", LongType(), False),
])
"""``silver.events``: typed, deduplicated by ``event_id``; identifiers are keyed pseudonyms only."""

SILVER_IDENTIFIERS = StructType([
    StructField("id_key", StringType(), False),           # pseudonym, "<type>:<hmac hex>"
    StructField("id_type", StringType(), False),
    StructField("value", StringType(), False),            # normalised raw identifier (personal data)
    StructField("first_seen_at", TimestampType(), False),
])
"""``silver.identifiers``: the region-local vault mapping pseudonyms back to raw identifiers."""

SILVER_EVENTS_QUARANTINE = StructType([
    StructField("event_id", StringType(), True),
    StructField("reason", StringType(), False),
    StructField("reason_detail", StringType(), True),
    StructField("payload", StringType(), True),
    StructField("source_file", StringType(), True),
    StructField("kafka_offset", LongType(), True),
    StructField("region", StringType(), False),
    StructField("ingested_at", TimestampType(), False),
    StructField("batch_id", LongType(), False),
])

SILVER_CONSENT_LEDGER = StructType([
    StructField("event_id", StringType(), False),
    StructField("id_key", StringType(), False),
    StructField("channel", StringType(), False),          # a channel, or "all"
    StructField("purpose", StringType(), False),
    StructField("granted", BooleanType(), False),
    StructField("occurred_at", TimestampType(), False),
    StructField("region", StringType(), False),
    StructField("ingested_at", TimestampType(), False),
])

SILVER_CONSENT_CURRENT = StructType([
    StructField("id_key", StringType(), False),
    StructField("channel", StringType(), False),
    StructField("purpose", StringType(), False),
    StructField("granted", BooleanType(), False),
    StructField("occurred_at", TimestampType(), False),
    StructField("event_id", StringType(), False),
    StructField("region", StringType(), False),
])


GUARDRAIL_RESULT = StructType([  # nested in an array: Delta allows no NOT NULL there
    StructField("rule", StringType(), True),              # e.g. "consent", "quiet_hours", "max_touches_7d"
    StructField("passed", BooleanType(), True),           # False when the rule removed at least one action
    StructField("blocked_actions", ArrayType(StringType()), True),
    StructField("reason", StringType(), True),            # human-readable why (counts, limits, local time)
])

GOLD_CADENCE_DECISIONS = StructType([
    StructField("decision_id", StringType(), False),      # deterministic: sha of (region, trigger event) or (lead_id, review) → idempotent
    StructField("lead_id", StringType(), False),
    StructField("region", StringType(), False),
    StructField("decided_at", TimestampType(), False),
    StructField("trigger", StringType(), False),          # triggering event id, or "review:<iso time>"
    StructField("trigger_type", StringType(), False),     # "event" | "review"
    StructField("action_id", StringType(), False),        # "hold" or "<channel>@<wait>"
    StructField("channel", StringType(), True),           # null for hold
    StructField("delay", StringType(), True),             # the wait, e.g. "1d"; null for hold
    StructField("send_at", TimestampType(), True),        # UTC, after quiet hours in the lead's time zone
    StructField("propensity", DoubleType(), False),       # exact P(chosen action) after guardrails
    StructField("action_probs", MapType(StringType(), DoubleType()), False),
    StructField("expected_rewards", MapType(StringType(), DoubleType()), True),
    StructField("explored", BooleanType(), False),
    StructField("holdout", BooleanType(), False),
    StructField("guardrails", ArrayType(GUARDRAIL_RESULT), False),
    StructField("policy_kind", StringType(), False),      # "champion" | "logging" | "holdout_baseline"
    StructField("model_name", StringType(), False),
    StructField("model_version", StringType(), False),
    StructField("mlflow_run_id", StringType(), False),
    StructField("policy_config_hash", StringType(), False),
    StructField("feature_table_version", LongType(), False),
    StructField("feature_as_of", TimestampType(), False),
    StructField("job_run_id", StringType(), False),
    StructField("batch_id", LongType(), False),
    StructField("code_version", StringType(), False),
])
"""``gold.cadence_decisions``: a row alone answers why this action, for whom, under which model, data and rules."""

GOLD_DECISION_OUTCOMES = StructType([
    StructField("decision_id", StringType(), False),
    StructField("lead_id", StringType(), False),
    StructField("region", StringType(), False),
    StructField("action_id", StringType(), False),
    StructField("channel", StringType(), True),
    StructField("propensity", DoubleType(), False),
    StructField("holdout", BooleanType(), False),
    StructField("model_version", StringType(), False),
    StructField("decided_at", TimestampType(), False),
    StructField("send_at", TimestampType(), True),
    StructField("window_end", TimestampType(), False),
    StructField("reward", DoubleType(), False),
    StructField("reward_components", MapType(StringType(), DoubleType()), False),
    StructField("attributed_event_ids", ArrayType(StringType()), False),
    StructField("harm", BooleanType(), False),            # an unsubscribe / complaint was attributed
    StructField("attributed_at", TimestampType(), False),
])
"""``gold.decision_outcomes``: one row per decision whose reward window has closed."""
