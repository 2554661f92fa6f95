"""Typed configuration, one YAML file per environment (``conf/<env>.yaml``).

Every model is frozen; every field carries a docstring so ``nurture-lake config --explain``
and the README can list them. Invalid configuration fails fast with a message that names
the field, e.g. ``regions.eu.timezone: unknown time zone 'Europe/Berln'``.

Example::

    cfg = load_config("local", overrides={"storage.lake_root": "/tmp/lake"})
    cfg.storage.lake_root
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The checkout root (``src/nurture_lake/config.py`` → two levels up)."""

CONF_DIR = PROJECT_ROOT / "conf"
INSTALLED_CONF_DIR = Path(sys.prefix) / "share" / "nurture_lake" / "conf"
"""Where the wheel installs the configs (used on clusters, where there is no checkout)."""


class ConfigError(ValueError):
    """Raised when a configuration file is missing or invalid; the message names the field."""


_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``'30m'``, ``'4h'``, ``'7d'`` → :class:`timedelta`."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"duration {text!r} must look like 30m, 4h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class RegionConfig(_Frozen):
    timezone: str
    """Default IANA time zone of leads in this region when an event carries none."""
    phone_region: str = "US"
    """ISO country code used to parse phone numbers written without a country prefix."""
    consent_mode: Literal["opt_in", "opt_out"] = "opt_out"
    """``opt_in``: no touch without an explicit grant (e.g. EU); ``opt_out``: allowed until revoked."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class StorageConfig(_Frozen):
    kind: Literal["path", "catalog"] = "path"
    """``path``: Delta tables under ``lake_root``; ``catalog``: ``<catalog>.<schema>.<table>`` names."""
    lake_root: str = ".lake/lake"
    """Root of path-based tables: ``<lake_root>/<region>/<layer>/<table>``. Relative to the project root."""
    checkpoint_root: str = ".lake/checkpoints"
    """Root of streaming checkpoints: ``<checkpoint_root>/<region>/<job>``."""
    landing_root: str = ".lake/landing"
    """Root of landing files: ``<landing_root>/<region>/events/*.jsonl``."""
    report_root: str = ".lake/reports"
    """Where jobs write human-readable reports (HTML, PNG)."""
    catalog: str | None = None
    """Unity Catalog name (``kind: catalog`` only)."""
    schema_pattern: str = "{region}_{layer}"
    """Schema name per region and layer (``kind: catalog`` only)."""

    @model_validator(mode="after")
    def _catalog_needs_name(self) -> StorageConfig:
        if self.kind == "catalog" and not self.catalog:
            raise ValueError("storage.catalog is required when storage.kind is 'catalog'")
        return self


class PrivacyConfig(_Frozen):
    hmac_key_env: str = "NURTURE_LAKE_HMAC_KEY"
    """Environment variable holding the HMAC-SHA256 key for pseudonyms."""
    dev_hmac_key: str | None = None
    """DEVELOPMENT ONLY fallback key used when the variable is unset. Must be null in production."""


class SparkConfig(_Frozen):
    master: str = "local[2]"
    """Master URL used when no session is active (``local[*]``, ``spark://host:7077``)."""
    shuffle_partitions: int = Field(4, ge=1)
    """``spark.sql.shuffle.partitions``: small for 2-core local runs, larger on clusters."""
    driver_memory: str = "4g"
    """``spark.driver.memory`` for local sessions."""
    extra_conf: dict[str, str] = Field(default_factory=dict)
    """Further Spark settings applied verbatim."""


class IngestConfig(_Frozen):
    max_files_per_trigger: int = Field(1000, ge=1)
    """Landing files per micro-batch."""
    processing_time: str = "10 seconds"
    """Trigger interval of the continuous mode."""
    max_future_skew_hours: float = Field(24.0, ge=0)
    """An event more than this far in the future of its ingest time is quarantined (``bad_timestamp``)."""
    supported_schema_versions: tuple[str, ...] = ("1",)
    """Landing contract versions accepted; others are quarantined."""
    dedup_lookback: str | None = None
    """How far back, by ingestion time, an event id is looked up in silver to find an earlier copy.

    ``null`` (default): the whole table, so deduplication is exact, but every micro-batch reads every
    event id silver holds and its cost grows with the table. A window such as ``30d`` makes that cost
    follow the window instead (silver's files each hold one micro-batch, and Delta's file statistics
    on ``ingested_at`` skip the older ones unread); a copy arriving longer than the window after its
    original is then kept as a new event. Like Spark's ``dropDuplicatesWithinWatermark``, choose it
    longer than any producer retries or replays."""

    @field_validator("dedup_lookback")
    @classmethod
    def _positive_window(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= timedelta(0):
            raise ValueError(f"dedup_lookback {value!r} must be longer than zero")
        return value

    def dedup_since(self, ingested_at: datetime) -> datetime | None:
        """The earliest ``ingested_at`` a batch ingested at ``ingested_at`` checks; ``None``: no bound."""
        return None if self.dedup_lookback is None else ingested_at - parse_duration(self.dedup_lookback)


class KafkaConfig(_Frozen):
    bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka bootstrap servers (``host:port,host:port``)."""
    topic_pattern: str = "nurture.{region}.events"
    """Topic per region; ``{region}`` is replaced by the region code."""
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    """Where a new query (no checkpoint yet) starts; afterwards the checkpoint decides."""
    max_offsets_per_trigger: int | None = None
    """Upper bound on records per micro-batch (``None``: everything available)."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """``kafka.security.protocol``."""
    sasl_mechanism: str | None = None
    """``kafka.sasl.mechanism`` (e.g. ``PLAIN``, ``SCRAM-SHA-512``) for SASL protocols."""
    sasl_jaas_config_env: str | None = None
    """Environment variable holding ``kafka.sasl.jaas.config`` (secrets never live in YAML)."""
    options: dict[str, str] = Field(default_factory=dict)
    """Further ``kafka.*`` source options, passed verbatim."""


class MlflowConfig(_Frozen):
    tracking_uri: str = "sqlite:///.lake/mlflow/mlflow.db"
    """MLflow tracking URI; relative sqlite paths are resolved against the project root."""
    registry_uri: str | None = None
    """Model registry URI; defaults to the tracking URI."""
    artifact_root: str = ".lake/mlflow/artifacts"
    """Artifact location for new experiments (local store)."""
    experiment: str = "nurture_lake"
    """Experiment name."""
    model_name: str = "nurture_lake_cadence_policy"
    """Registered model name of the cadence policy."""


class NurtureConfig(_Frozen):
    env: str
    """Environment name, e.g. ``local`` or ``databricks``."""
    regions: dict[str, RegionConfig]
    """Regions by code (``us``, ``eu``, ...). Personal data stays under its region's root."""
    storage: StorageConfig = StorageConfig()
    """Where the tables live: paths under a lake root, or catalog names."""
    privacy: PrivacyConfig = PrivacyConfig()
    """The pseudonym key's environment variable and its labelled development default."""
    spark: SparkConfig = SparkConfig()
    """The session ``get_spark()`` builds when none is active."""
    ingest: IngestConfig = IngestConfig()
    """Ingestion: files per batch, trigger interval, timestamp skew, schema versions, duplicate lookback."""
    kafka: KafkaConfig = KafkaConfig()
    """The Kafka source of ``ingest --source kafka``."""
    mlflow: MlflowConfig = MlflowConfig()
    """Tracking and registry: a local store by default, any MLflow server or Databricks by URI."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Sections owned by later modules (simulator, policy, guardrails, ...), validated by them."""

    @field_validator("regions")
    @classmethod
    def _region_codes(cls, value: dict[str, RegionConfig]) -> dict[str, RegionConfig]:
        if not value:
            raise ValueError("at least one region is required")
        for code in value:
            if not code.isidentifier() or code != code.lower() or code == "global":
                raise ValueError(f"region code {code!r} must be a lower-case identifier other than 'global'")
        return value

    def section(self, name: str) -> dict[str, Any]:
        """The raw mapping of an extra section (``simulator``, ``policy``, ...), empty when absent."""
        return dict(self.extra.get(name) or {})

    def resolve(self, path: str) -> Path:
        """A configured path made absolute: relative paths hang off the project root."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else PROJECT_ROOT / candidate

    def hmac_key(self) -> bytes:
        """The pseudonym key from the environment, else the labelled development default."""
        key = os.environ.get(self.privacy.hmac_key_env) or self.privacy.dev_hmac_key
        if not key:
            raise ConfigError(
                f"privacy: set the environment variable {self.privacy.hmac_key_env} "
                "(no development default is configured for this environment)"
            )
        return key.encode("utf-8")

    def config_hash(self) -> str:
        """A stable short hash of the whole configuration (recorded in audit and decisions)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


_KNOWN_SECTIONS = set(NurtureConfig.model_fields) - {"extra"}


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: cannot set below a non-mapping value")
    node[parts[-1]] = value


def _config_path(env_or_path: str | os.PathLike[str]) -> Path:
    text = str(env_or_path)
    path = Path(text)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        return path
    checkout = CONF_DIR / f"{text}.yaml"
    installed = INSTALLED_CONF_DIR / f"{text}.yaml"
    return checkout if checkout.exists() or not installed.exists() else installed


def parse_config(raw: dict[str, Any], *, source: str = "<dict>") -> NurtureConfig:
    """Validate a mapping into a :class:`NurtureConfig`; unknown top-level sections go to ``extra``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping")
    known = {k: v for k, v in raw.items() if k in _KNOWN_SECTIONS}
    extra = {k: v for k, v in raw.items() if k not in _KNOWN_SECTIONS}
    try:
        return NurtureConfig(**known, extra=extra)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: invalid configuration: {problems}") from None


def load_config(
    env_or_path: str | os.PathLike[str] = "local",
    *,
    overrides: dict[str, Any] | None = None,
) -> NurtureConfig:
    """Load ``conf/<env>.yaml`` (or a YAML path) and apply dotted overrides.

    Example: ``load_config("local", overrides={"storage.lake_root": "/tmp/x"})``.
    The environment variable ``NURTURE_LAKE_CONF`` names a file to use when ``env_or_path`` is ``None``.
    """
    path = _config_path(env_or_path)
    if not path.exists():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return parse_config(raw, source=str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a ``--set key.path=value`` argument; the value is read as YAML (numbers, lists, ...)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)
