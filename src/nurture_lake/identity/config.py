"""Settings of the identity graph, read from the ``identity`` section of the configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from nurture_lake.config import NurtureConfig


class IdentityConfig(BaseModel):
    """``identity:`` section (all fields optional)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    max_iterations: int = Field(100, ge=1)
    """Upper bound on connected-components iterations; a run that needs more fails instead of looping."""
    local_components_max_edges: int = Field(50_000, ge=0)
    """An incremental run whose graph delta has at most this many edges solves connected components on
    the driver (union-find, one collect) instead of iterating Spark jobs; 0 always uses Spark."""
    lead_id_prefix: str = Field("L", min_length=1)
    """Prefix of regional lead ids (``L`` + the first hex characters of sha256 of the anchor id_key)."""
    global_id_prefix: str = Field("G", min_length=1)
    """Prefix of cross-region ids in ``global.silver.global_leads``."""
    id_hex_chars: int = Field(20, ge=16, le=64)
    """How many hex characters of the sha256 digest make up a lead id / global lead id."""


def identity_config(cfg: NurtureConfig) -> IdentityConfig:
    """The validated ``identity`` section of ``cfg`` (defaults when absent)."""
    return IdentityConfig(**cfg.section("identity"))
