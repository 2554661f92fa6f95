"""Organic landing traffic of one region, vectorised with numpy, as ready-to-write JSON lines.

Pure generation (no I/O): :func:`generate_region` returns the files' lines and the region's manifest;
:class:`~nurture_lake.simulator.world.World` writes them. Files are named ``events-<yyyymmdd>-<seq>.jsonl``
so that lexical order is time order; an event lands in the file of its *arrival* slot, so late events
(occurred days earlier) sit in later files, and lines inside a file are only roughly time-ordered.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from nurture_lake.config import NurtureConfig
from nurture_lake.schemas import SCHEMA_VERSION, QuarantineReason
from nurture_lake.simulator.bad_records import corrupt
from nurture_lake.simulator.config import SimulatorConfig
from nurture_lake.simulator.manifest import RegionManifest
from nurture_lake.simulator.population import (
    LIFECYCLE_STAGES,
    SIM_CHANNELS,
    RegionPopulation,
    horizon,
    region_seed,
)
from nurture_lake.simulator.timefmt import OffsetTable, iso_strings

ORGANIC_TYPES: tuple[str, ...] = ("web_visit", "form_submit", "email_delivered", "email_open", "email_click")
_BASE_WEIGHTS = np.array([0.66, 0.07, 0.12, 0.10, 0.05])
_LEAD_CREATED, _GRANTED, _REVOKED = 5, 6, 7
TYPE_NAMES: tuple[str, ...] = (*ORGANIC_TYPES, "lead_created", "consent_granted", "consent_revoked")
_TYPE_CHANNEL = ('"web"', '"web"', '"email"', '"email"', '"email"', '"crm"')
_FORMAT_PROBS = np.array([0.35, 0.25, 0.40])  # Z, +00:00, local offset
_PAGES = ("/", "/pricing", "/product", "/blog/nurture-cadence", "/docs", "/customers", "/contact")
_REFERRERS = ("direct", "search", "social", "newsletter")
_WEB_PROPS = tuple(f'{{"page":"{p}","referrer":"{r}"}}' for p in _PAGES for r in _REFERRERS)
_FORM_PROPS = tuple(f'{{"form":"{f}"}}' for f in ("demo_request", "whitepaper", "newsletter_signup", "contact"))
_EMAIL_PROPS = tuple(
    f'{{"campaign":"{c}","source_system":"marketing_automation"}}' for c in ("newsletter", "product_update", "event_invite")
)
_CONSENT_PROPS = '{"purpose":"marketing","source":"preference_center"}'
_SOURCES = ("webinar", "inbound", "trade_show", "referral", "paid_search")
# identifier-set kinds, columns of the per-lead fragment table
_ID_WEB, _ID_WEB2, _ID_FORM, _ID_FORM_PHONE, _ID_EMAIL, _ID_CRM = range(6)


@dataclass
class RegionBatch:
    """One region's organic landing files (name → lines) and its manifest."""

    files: dict[str, list[str]]
    manifest: RegionManifest


def file_name(start_epoch: int, slot: int, files_per_day: int) -> str:
    """``events-<yyyymmdd>-<seq>.jsonl`` of a (day, slot-in-day) index: lexical order = time order."""
    day = datetime.fromtimestamp(start_epoch + (slot // files_per_day) * 86400, tz=UTC)
    return f"events-{day:%Y%m%d}-{slot % files_per_day + 1:04d}.jsonl"


def _id_fragments(pop: RegionPopulation) -> np.ndarray:
    """Per lead, the JSON ``identifiers`` object of each identifier-set kind."""
    rows = []
    for i in range(pop.size):
        email, crm, dev, cookies, phone = pop.email[i], pop.crm_id[i], pop.device_id[i], pop.cookies[i], pop.phone[i]
        written = email[:1].upper() + email[1:]  # a differently-cased copy: ingest must normalise
        crm_part = f'{{"email":"{email}","crm_id":"{crm}"' + (f',"phone":"{phone}"}}' if phone else "}")
        rows.append((
            f'{{"cookie_id":"{cookies[0]}","device_id":"{dev}"}}',
            f'{{"cookie_id":"{cookies[-1]}","device_id":"{dev}"}}',
            f'{{"cookie_id":"{cookies[0]}","email":"{written}"}}',
            f'{{"cookie_id":"{cookies[0]}","email":"{written}","phone":"{phone}"}}' if phone
            else f'{{"cookie_id":"{cookies[0]}","email":"{written}"}}',
            f'{{"email":"{email}"}}',
            crm_part,
        ))
    out = np.empty((pop.size, 6), dtype=object)
    for i, row in enumerate(rows):
        out[i, :] = row
    return out


def _organic_events(
    pop: RegionPopulation, sim: SimulatorConfig, rng: np.random.Generator, table: OffsetTable, end: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lead, type code, epoch) of organic events, each lead active from creation to the horizon's end."""
    span = np.maximum(end - pop.created_at, 0).astype(float)
    counts = rng.poisson(sim.events_per_lead_day * pop.activity * span / 86400)
    lead = np.repeat(np.arange(pop.size), counts)
    weights = np.tile(_BASE_WEIGHTS, (pop.size, 1))
    email_mod = 0.3 + 2.0 * pop.affinity[:, 0]
    weights[:, 2:5] *= email_mod[:, None]
    weights[pop.anonymous, 0] += weights[pop.anonymous, 1]
    weights[pop.anonymous, 1] = 0.0
    cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    code = (rng.random(lead.shape[0])[:, None] > cdf[lead, :-1]).sum(axis=1)
    # time: a random day in the lead's active span, at a local hour drawn from its preferred-hour profile
    t0 = pop.created_at[lead] + (rng.random(lead.shape[0]) * span[lead]).astype(np.int64)
    zone = pop.zone_idx[lead]
    offset = table.lookup(zone, t0)
    local_day = (t0 + offset) // 86400
    hour_cdf = np.cumsum(pop.hour_profile / pop.hour_profile.sum(axis=1, keepdims=True), axis=1)
    hour = (rng.random(lead.shape[0])[:, None] > hour_cdf[lead, :-1]).sum(axis=1)
    t = local_day * 86400 + hour * 3600 + rng.integers(0, 3600, lead.shape[0]) - offset
    created = pop.created_at[lead]
    t = np.where(t < created, created + rng.integers(60, 3600, lead.shape[0]), t)
    t = np.where(t >= end, t - 86400, t)
    t = np.clip(t, created + 1, end - 1)
    return lead, code, t


def _lifecycle_events(pop: RegionPopulation, start: int, end: int) -> tuple[np.ndarray, ...]:
    """lead_created for every lead, consent grants/revocations inside the horizon (lead, code, epoch, channel)."""
    leads = [np.arange(pop.size)]
    codes = [np.full(pop.size, _LEAD_CREATED)]
    times = [pop.created_at.astype(np.int64)]
    chans = [np.full(pop.size, -1)]
    for code, at in ((_GRANTED, pop.consent_grant_at), (_REVOKED, pop.consent_revoke_at)):
        inside = np.isfinite(at) & (at >= start) & (at < end)
        lead_idx, chan_idx = np.nonzero(inside)
        leads.append(lead_idx)
        codes.append(np.full(lead_idx.shape[0], code))
        times.append(at[lead_idx, chan_idx].astype(np.int64))
        chans.append(chan_idx)
    return tuple(np.concatenate(part) for part in (leads, codes, times, chans))


def generate_region(
    cfg: NurtureConfig, sim: SimulatorConfig, pop: RegionPopulation, *, table: OffsetTable
) -> RegionBatch:
    """All organic landing lines of ``pop.region`` (deterministic in ``sim.seed``)."""
    region = pop.region
    rng = np.random.default_rng(region_seed(sim.seed, region, 1))
    start, end = horizon(sim)
    o_lead, o_code, o_time = _organic_events(pop, sim, rng, table, end)
    l_lead, l_code, l_time, l_chan = _lifecycle_events(pop, start, end)
    lead = np.concatenate([o_lead, l_lead])
    code = np.concatenate([o_code, l_code])
    epoch = np.concatenate([o_time, l_time])
    chan = np.concatenate([np.full(o_lead.shape[0], -1), l_chan])
    total = lead.shape[0]

    # late arrivals (valid) and bad records (organic types only: consent and creation stay truthful)
    late = rng.random(total) < sim.late_event_rate
    lag = rng.integers(1, 6, total) * 86400 + rng.integers(0, 3600, total)
    late &= epoch + lag < end
    arrival = np.where(late, epoch + lag, epoch)
    weights = sim.bad_weights()
    kinds = tuple(weights)
    bad = (code < _LEAD_CREATED) & (rng.random(total) < sim.bad_record_rate) if kinds else np.zeros(total, bool)
    kind = np.full(total, -1)
    if kinds:
        kind[bad] = rng.choice(len(kinds), size=int(bad.sum()), p=np.array([weights[k] for k in kinds]))

    slots = sim.days * sim.files_per_day
    slot = np.clip((arrival - start) * sim.files_per_day // 86400, 0, slots - 1)
    jitter = rng.integers(-1800, 1800, total)
    order = np.lexsort((arrival + jitter, slot))
    lead, code, epoch, chan, late, bad, kind, slot = (
        a[order] for a in (lead, code, epoch, chan, late, bad, kind, slot)
    )

    lines = _format_lines(pop, sim, rng, table, lead=lead, code=code, epoch=epoch, chan=chan)
    counts = _apply_bad_records(
        cfg, rng, lines, kinds=kinds, bad=bad, kind=kind, slot=slot, epoch=epoch, region=region
    )
    good = ~bad
    manifest = RegionManifest(region=region, leads=pop.size)
    manifest.good_events = int(good.sum())
    manifest.bad_events = {k: counts.get(k, 0) for k in QuarantineReason.ALL if counts.get(k, 0)}
    manifest.late_events = int((late & good).sum())
    g_epoch, g_slot = epoch[good], slot[good]
    manifest.out_of_order_lines = int(((g_epoch[1:] < g_epoch[:-1]) & (g_slot[1:] == g_slot[:-1])).sum())
    manifest.event_types = {TYPE_NAMES[c]: n for c, n in sorted(Counter(code[good].tolist()).items())}

    files: dict[str, list[str]] = {}
    bounds = np.searchsorted(slot, np.arange(slots + 1))
    for s in range(slots):
        lo, hi = int(bounds[s]), int(bounds[s + 1])
        if hi > lo:
            files[file_name(start, s, sim.files_per_day)] = lines[lo:hi]
    manifest.files = list(files)
    return RegionBatch(files=files, manifest=manifest)


def _format_lines(
    pop: RegionPopulation,
    sim: SimulatorConfig,
    rng: np.random.Generator,
    table: OffsetTable,
    *,
    lead: np.ndarray,
    code: np.ndarray,
    epoch: np.ndarray,
    chan: np.ndarray,
) -> list[str]:
    """The valid JSON line of every event (bad ones are derived from these afterwards)."""
    total = lead.shape[0]
    region = pop.region
    frags = _id_fragments(pop)
    two = np.array([len(c) > 1 for c in pop.cookies], dtype=bool)
    has_phone = np.array([p is not None for p in pop.phone], dtype=bool)
    u = rng.random(total)
    id_kind = np.full(total, _ID_EMAIL)
    id_kind[code == 0] = np.where(two[lead[code == 0]] & (u[code == 0] < 0.4), _ID_WEB2, _ID_WEB)
    id_kind[code == 1] = np.where(has_phone[lead[code == 1]] & (u[code == 1] < 0.5), _ID_FORM_PHONE, _ID_FORM)
    id_kind[code >= _LEAD_CREATED] = _ID_CRM
    identifiers = frags[lead, id_kind].tolist()

    chan_frag = np.array([*_TYPE_CHANNEL, *(f'"{c}"' for c in SIM_CHANNELS)], dtype=object)
    chan_code = np.where(code <= _LEAD_CREATED, np.minimum(code, _LEAD_CREATED), len(_TYPE_CHANNEL) + chan)
    channels = chan_frag[chan_code].tolist()

    lead_props = np.array([
        f'{{"timezone":"{pop.zone(i)}","lifecycle_stage":"{LIFECYCLE_STAGES[int(pop.lifecycle[i])]}",'
        f'"source":"{_SOURCES[i % len(_SOURCES)]}"}}'
        for i in range(pop.size)
    ], dtype=object)
    pick = rng.integers(0, 1 << 30, total)
    props = np.empty(total, dtype=object)
    web_props, form_props, email_props = (np.array(p, dtype=object) for p in (_WEB_PROPS, _FORM_PROPS, _EMAIL_PROPS))
    for mask, choices in ((code == 0, web_props), (code == 1, form_props), ((code >= 2) & (code <= 4), email_props)):
        props[mask] = choices[pick[mask] % len(choices)]
    props[code == _LEAD_CREATED] = lead_props[lead[code == _LEAD_CREATED]]
    props[code > _LEAD_CREATED] = _CONSENT_PROPS

    fmt = rng.choice(3, size=total, p=_FORMAT_PROBS)
    stamps = iso_strings(epoch, table.lookup(pop.zone_idx[lead], epoch), fmt)
    names = np.array(TYPE_NAMES, dtype=object)[code].tolist()
    prefix = f"{region}-s{sim.seed}-"
    head, tail = f'","region":"{region}","identifiers":', f',"schema_version":"{SCHEMA_VERSION}"}}'
    return [  # one f-string per line: the generator's hot loop
        f'{{"event_id":"{prefix}{k:08d}","event_type":"{name}","occurred_at":"{stamp}{head}{ids}'
        f',"channel":{ch},"decision_id":null,"properties":{pr}{tail}'
        for k, (name, stamp, ids, ch, pr) in enumerate(
            zip(names, stamps, identifiers, channels, props.tolist(), strict=True)
        )
    ]


def _apply_bad_records(
    cfg: NurtureConfig,
    rng: np.random.Generator,
    lines: list[str],
    *,
    kinds: tuple[str, ...],
    bad: np.ndarray,
    kind: np.ndarray,
    slot: np.ndarray,
    epoch: np.ndarray,
    region: str,
) -> Counter[str]:
    """Replace the lines of bad events in place; duplicates copy a good line of an earlier file."""
    others = tuple(r for r in cfg.regions if r != region)
    good_pos = np.flatnonzero(~bad)
    first_of_slot = np.searchsorted(slot, slot, side="left")
    counts: Counter[str] = Counter()
    for pos in np.flatnonzero(bad).tolist():
        reason = kinds[int(kind[pos])]
        if reason == QuarantineReason.DUPLICATE_EVENT_ID:
            earlier = int(np.searchsorted(good_pos, first_of_slot[pos]))
            if earlier:
                lines[pos] = lines[int(good_pos[int(rng.integers(earlier))])]
                counts[reason] += 1
                continue
            reason = QuarantineReason.MISSING_REQUIRED_FIELD  # nothing earlier to re-send yet
        lines[pos] = corrupt(lines[pos], reason, rng, epoch=int(epoch[pos]), other_regions=others)
        counts[reason] += 1
    return counts

