"""Identifier normalisation and keyed pseudonyms (HMAC-SHA256).

A pseudonym is ``"<type>:<hex HMAC-SHA256(key, '<type>:<normalised value>')>"``; the type prefix
keeps an e-mail and a CRM id with the same text apart. The same function exists twice, for Python
values and as a native Spark column expression (no Python UDF); tests prove they agree.

Example::

    pseudonym(b"key", "email", "ada@example.com")  # 'email:5d1c...'
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

import pandas as pd
import phonenumbers
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import StringType

_BLOCK = 64  # SHA-256 block size in bytes


def normalise_email(value: str | None) -> str | None:
    """Lower-case and trim an e-mail address; ``None`` when empty or without '@'."""
    if value is None:
        return None
    text = value.strip().lower()
    return text if "@" in text and len(text) > 2 else None


def normalise_phone(value: str | None, default_region: str) -> str | None:
    """E.164 form (``+14155550123``) using ``phonenumbers``; ``None`` when not a valid number."""
    if value is None or not value.strip():
        return None
    try:
        parsed = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_identifier(id_type: str, value: str | None, *, phone_region: str = "US") -> str | None:
    """Normalise one identifier of a known type."""
    if id_type == "email":
        return normalise_email(value)
    if id_type == "phone":
        return normalise_phone(value, phone_region)
    if value is None:
        return None
    text = value.strip()
    return text or None


def pseudonym(key: bytes, id_type: str, normalised: str) -> str:
    """The keyed pseudonym of a normalised identifier."""
    digest = hmac.new(key, f"{id_type}:{normalised}".encode(), hashlib.sha256).hexdigest()
    return f"{id_type}:{digest}"


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_sha256_hex(key: bytes, message: Column) -> Column:
    """HMAC-SHA256 of a string column as a native Spark expression (RFC 2104 with constant pads)."""
    inner_pad, outer_pad = _pads(key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), F.encode(message, "UTF-8")), 256))
    return F.sha2(F.concat(F.lit(outer_pad), inner), 256)


def pseudonym_col(key: bytes, id_type: str, normalised: Column) -> Column:
    """Spark twin of :func:`pseudonym`; null in, null out."""
    message = F.concat(F.lit(f"{id_type}:"), normalised)
    return F.when(normalised.isNull(), F.lit(None)).otherwise(
        F.concat(F.lit(f"{id_type}:"), hmac_sha256_hex(key, message))
    )


def normalise_email_col(value: Column) -> Column:
    """Spark twin of :func:`normalise_email`."""
    text = F.lower(F.trim(value))
    return F.when(text.contains("@") & (F.length(text) > 2), text)


def normalise_phone_col(value: Column, default_region: Column) -> Column:
    """E.164 phone numbers via ``phonenumbers`` in a vectorised pandas UDF."""
    return _phone_udf(value, default_region)


@lru_cache(maxsize=1 << 16)
def _normalise_phone_cached(value: str, default_region: str) -> str | None:
    """:func:`normalise_phone` remembered per Python worker: a lead's number recurs in many events."""
    return normalise_phone(value, default_region)


@pandas_udf(StringType())  # type: ignore[call-overload]
def _phone_udf(values: pd.Series, regions: pd.Series) -> pd.Series:
    # Most events carry no phone: those rows cost a null check, not a parse.
    return pd.Series(
        [_normalise_phone_cached(v, r) if isinstance(v, str) else None for v, r in zip(values, regions, strict=True)],
        dtype="object",
    )


def normalise_identifier_col(id_type: str, value: Column, *, phone_region: Column | None = None) -> Column:
    """Spark twin of :func:`normalise_identifier`."""
    if id_type == "email":
        return normalise_email_col(value)
    if id_type == "phone":
        return normalise_phone_col(value, phone_region if phone_region is not None else F.lit("US"))
    text = F.trim(value)
    return F.when(F.length(text) > 0, text)
