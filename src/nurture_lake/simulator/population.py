"""The simulated population: leads with identifiers and hidden truths, drawn deterministically from the seed.

The truths (channel affinity, preferred hours, fatigue sensitivity, conversion propensity, lifecycle,
consent) are what the learner has to discover; the response model reads them, the lake never sees them.

Example::

    pops = build_population(cfg, sim)
    pops["us"].sim_lead_id(0)     # 'us-000000'
    pops["us"].affinity[0]        # array([email, push, chat, sms])
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import phonenumbers

from nurture_lake.config import NurtureConfig
from nurture_lake.simulator.config import SimulatorConfig

SIM_CHANNELS: tuple[str, ...] = ("email", "push", "chat", "sms")
"""Channels the world can be touched on (column order of ``affinity`` and the consent arrays)."""

LIFECYCLE_STAGES: tuple[str, ...] = ("new", "engaged", "mql", "sql", "dormant")
_STAGE_PROBS = np.array([0.35, 0.25, 0.15, 0.10, 0.15])
STAGE_ENGAGEMENT: tuple[float, ...] = (0.9, 1.2, 1.1, 1.3, 0.35)
"""Multiplier of the response probability per lifecycle stage."""
STAGE_CONVERSION: tuple[float, ...] = (0.6, 1.0, 1.4, 2.0, 0.3)
"""Multiplier of the conversion propensity per lifecycle stage."""

_AFFINITY_BETA = {"email": (2.0, 5.0), "push": (1.5, 6.0), "chat": (1.2, 7.0), "sms": (1.5, 7.0)}
_PEAK_CENTRES = np.array([9.0, 13.0, 20.0])
_PEAK_PROBS = np.array([0.4, 0.25, 0.35])
_HOUR_FLOOR = 0.15
_FIRST = ("ada", "alan", "grace", "linus", "marie", "nikola", "rosalind", "tim", "barbara", "edsger", "hedy", "john")
_LAST = ("lovelace", "turing", "hopper", "torvalds", "curie", "tesla", "franklin", "lee", "liskov", "dijkstra")
_HARD_BOUNCE_SHARE = 0.02
_PHONE_SHARE = 0.7


def region_seed(seed: int, region: str, stream: int) -> np.random.SeedSequence:
    """An independent, stable random stream per (seed, region, purpose)."""
    return np.random.SeedSequence([seed, zlib.crc32(region.encode("utf-8")), stream])


@dataclass
class RegionPopulation:
    """One region's leads as parallel arrays (index ``i`` is lead ``sim_lead_id(i)``)."""

    region: str
    zones: tuple[str, ...]
    zone_idx: np.ndarray          # int, index into ``zones``
    created_at: np.ndarray        # int64 epoch seconds (UTC)
    email: list[str]
    phone: list[str | None]       # as the lead writes it (national or international format)
    crm_id: list[str]
    device_id: list[str]
    cookies: list[tuple[str, ...]]  # one or two cookie ids
    anonymous: np.ndarray         # bool: web identifiers never appear with the e-mail
    affinity: np.ndarray          # (n, 4) float in (0, 1), columns SIM_CHANNELS
    hour_profile: np.ndarray      # (n, 24) float in [floor, 1]: response multiplier by local hour
    fatigue_sensitivity: np.ndarray
    conversion: np.ndarray        # P(meeting | reply) before the lifecycle multiplier
    lifecycle: np.ndarray         # int index into LIFECYCLE_STAGES
    activity: np.ndarray          # organic activity multiplier (mean 1)
    hard_bounce: np.ndarray       # bool: the e-mail address bounces
    consent_grant_at: np.ndarray  # (n, 4) epoch seconds; -inf: implied (opt_out); inf: never
    consent_revoke_at: np.ndarray  # (n, 4) epoch seconds; inf: never

    @property
    def size(self) -> int:
        return int(self.zone_idx.shape[0])

    def sim_lead_id(self, index: int) -> str:
        """The world's id of a lead, e.g. ``us-000042``."""
        return f"{self.region}-{index:06d}"

    def zone(self, index: int) -> str:
        return self.zones[int(self.zone_idx[index])]

    def identifiers(self, index: int) -> dict[str, str]:
        """Every raw identifier of a lead (first cookie as ``cookie_id``)."""
        ids = {
            "email": self.email[index], "crm_id": self.crm_id[index],
            "device_id": self.device_id[index], "cookie_id": self.cookies[index][0],
        }
        phone = self.phone[index]
        if phone is not None:
            ids["phone"] = phone
        return ids


def horizon(sim: SimulatorConfig) -> tuple[int, int]:
    """``(start, end)`` of organic traffic as epoch seconds (UTC midnight of ``start`` + ``days``)."""
    start = int(datetime(sim.start.year, sim.start.month, sim.start.day, tzinfo=UTC).timestamp())
    return start, start + sim.days * 86400


def lead_counts(cfg: NurtureConfig, sim: SimulatorConfig) -> dict[str, int]:
    """Leads per region: ``sim.leads`` split by ``region_shares`` (largest remainders, deterministic)."""
    regions = list(cfg.regions)
    weights = np.array([float(sim.region_shares.get(r, 1.0)) for r in regions])
    if weights.sum() <= 0:
        weights = np.ones(len(regions))
    exact = weights / weights.sum() * sim.leads
    counts = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - counts), kind="stable")[: sim.leads - counts.sum()]:
        counts[k] += 1
    return {r: int(c) for r, c in zip(regions, counts, strict=True)}


def build_population(cfg: NurtureConfig, sim: SimulatorConfig) -> dict[str, RegionPopulation]:
    """Every region's population, deterministic in ``sim.seed``."""
    return {
        region: _build_region(cfg, sim, region, n)
        for region, n in lead_counts(cfg, sim).items()
    }


def _hex_ids(rng: np.random.Generator, n: int, prefix: str) -> list[str]:
    words = rng.integers(0, 2**63 - 1, size=(n, 2), dtype=np.int64)
    return [f"{prefix}{a:016x}{b:012x}" for a, b in words.tolist()]


def _phones(rng: np.random.Generator, n: int, phone_region: str) -> list[str | None]:
    example = phonenumbers.example_number_for_type(phone_region, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        example = phonenumbers.example_number(phone_region)
    has = rng.random(n) < _PHONE_SHARE
    styles = rng.integers(0, 3, size=n)
    digits = rng.integers(0, 10**6, size=(n, 4))
    out: list[str | None] = []
    if example is None:
        return [None] * n
    base = str(example.national_number)
    keep = max(len(base) - 6, 2)
    styles_fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL,
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.E164,
    )
    for i in range(n):
        if not has[i]:
            out.append(None)
            continue
        number = example
        for attempt in range(4):  # random tail; keep the first valid candidate
            tail = f"{digits[i, attempt]:06d}"[-(len(base) - keep):]
            candidate = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=int(base[:keep] + tail))
            if phonenumbers.is_valid_number(candidate):
                number = candidate
                break
        out.append(phonenumbers.format_number(number, styles_fmt[styles[i]]))
    return out


def _hour_profiles(rng: np.random.Generator, n: int) -> np.ndarray:
    centre = _PEAK_CENTRES[rng.choice(len(_PEAK_CENTRES), size=n, p=_PEAK_PROBS)] + rng.normal(0, 1.0, n)
    width = rng.uniform(1.5, 3.0, n)
    hours = np.arange(24)[None, :] + 0.5
    dist = np.abs(hours - centre[:, None]) % 24
    dist = np.minimum(dist, 24 - dist)
    return _HOUR_FLOOR + (1 - _HOUR_FLOOR) * np.exp(-(dist**2) / (2 * width[:, None] ** 2))


def _consent(
    rng: np.random.Generator, sim: SimulatorConfig, created: np.ndarray, end: int, opt_in: bool
) -> tuple[np.ndarray, np.ndarray]:
    n = created.shape[0]
    k = len(SIM_CHANNELS)
    grant = np.full((n, k), -np.inf)
    revoke = np.full((n, k), np.inf)
    u_grant, u_revoke = rng.random((n, k)), rng.random((n, k))
    grant_delay = rng.uniform(60, 4 * 3600, (n, k))
    revoke_frac = rng.random((n, k))
    if opt_in:
        probs = np.array([sim.consent_grant_prob.get(c, 0.0) for c in SIM_CHANNELS])
        granted = u_grant < probs[None, :]
        grant = np.where(granted, created[:, None] + np.floor(grant_delay), np.inf)
        revokes = granted & (u_revoke < sim.consent_revoke_prob)
        earliest = grant + 86400
        at = np.floor(earliest + revoke_frac * np.maximum(end - earliest, 0))
        revoke = np.where(revokes & (at < end), at, np.inf)
    else:
        revokes = u_revoke < sim.opt_out_revoke_prob
        earliest = created[:, None] + 3600.0
        at = np.floor(earliest + revoke_frac * np.maximum(end - earliest, 0))
        revoke = np.where(revokes & (at < end), at, np.inf)
    return grant, revoke


def _build_region(cfg: NurtureConfig, sim: SimulatorConfig, region: str, n: int) -> RegionPopulation:
    rng = np.random.default_rng(region_seed(sim.seed, region, 0))
    start, end = horizon(sim)
    zones = sim.zones_for(region, cfg)
    for zone in zones:
        ZoneInfo(zone)
    zone_idx = rng.integers(0, len(zones), size=n)
    existing = rng.random(n) < 0.6
    created = np.where(
        existing,
        start + rng.uniform(0, 6 * 3600, n),
        start + rng.uniform(0, max(end - start - 86400, 3600), n),
    ).astype(np.int64)
    first = rng.integers(0, len(_FIRST), n)
    last = rng.integers(0, len(_LAST), n)
    domains = ("example.com", "mail.example.org", "corp.example.net") if region == "us" else (
        f"example-{region}.com", f"{region}.example.org", f"firma-{region}.example.net")
    dom = rng.integers(0, len(domains), n)
    email = [f"{_FIRST[a]}.{_LAST[b]}.{region}{i:06d}@{domains[d]}"
             for i, (a, b, d) in enumerate(zip(first.tolist(), last.tolist(), dom.tolist(), strict=True))]
    phone = _phones(rng, n, cfg.regions[region].phone_region)
    crm_id = [f"CRM-{region.upper()}-{i:07d}" for i in range(n)]
    device_id = _hex_ids(rng, n, "dev-")
    cookie_a = _hex_ids(rng, n, "ck-")
    cookie_b = _hex_ids(rng, n, "ck-")
    two = rng.random(n) < sim.two_cookie_share
    cookies = [(a, b) if t else (a,) for a, b, t in zip(cookie_a, cookie_b, two.tolist(), strict=True)]
    anonymous = rng.random(n) < sim.anonymous_share
    affinity = np.column_stack([rng.beta(*_AFFINITY_BETA[c], n) for c in SIM_CHANNELS])
    hour_profile = _hour_profiles(rng, n)
    sensitivity = rng.gamma(2.0, 0.15, n)
    conversion = rng.beta(2.0, 8.0, n)
    lifecycle = rng.choice(len(LIFECYCLE_STAGES), size=n, p=_STAGE_PROBS)
    activity = rng.lognormal(0.0, 0.6, n)
    activity = activity / activity.mean() if n else activity
    hard_bounce = rng.random(n) < _HARD_BOUNCE_SHARE
    opt_in = cfg.regions[region].consent_mode == "opt_in"
    grant, revoke = _consent(rng, sim, created.astype(float), end, opt_in)
    return RegionPopulation(
        region=region, zones=zones, zone_idx=zone_idx, created_at=created, email=email, phone=phone,
        crm_id=crm_id, device_id=device_id, cookies=cookies, anonymous=anonymous, affinity=affinity,
        hour_profile=hour_profile, fatigue_sensitivity=sensitivity, conversion=conversion,
        lifecycle=lifecycle, activity=activity, hard_bounce=hard_bounce,
        consent_grant_at=grant, consent_revoke_at=revoke,
    )
