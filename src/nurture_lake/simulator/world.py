"""The world: a population with hidden truths that emits organic traffic and answers decisions.

Example::

    world = World(cfg)                       # population drawn from the simulator seed
    manifest = world.generate_organic()      # landing files for every region + manifest.json
    events = world.respond([{"decision_id": "d1", "region": "us", "id_keys": [...],
                             "action_id": "email@1d", "channel": "email", "send_at": send_at}])
    world.write_events(events, "us", "events-20260915-r0001")
    world.expected_reward("us-000001", "email@1d", decided_at)   # the oracle's yardstick
    world.save(); World.load(cfg)            # a later process continues the same world
"""

from __future__ import annotations

import bisect
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from nurture_lake.actions import ActionSpace, RewardSpec
from nurture_lake.config import NurtureConfig
from nurture_lake.privacy import normalise_identifier, pseudonym
from nurture_lake.schemas import SCHEMA_VERSION
from nurture_lake.simulator.config import SimulatorConfig
from nurture_lake.simulator.manifest import Manifest
from nurture_lake.simulator.organic import generate_region
from nurture_lake.simulator.population import (
    SIM_CHANNELS,
    STAGE_CONVERSION,
    STAGE_ENGAGEMENT,
    RegionPopulation,
    build_population,
    horizon,
)
from nurture_lake.simulator.response_model import (
    Stage,
    TouchContext,
    attributed_probs,
    clip_prob,
    expected_value,
    funnel,
    sample_stages,
)
from nurture_lake.simulator.timefmt import OffsetTable, iso_one, offset_seconds
from nurture_lake.tables import Lake

STATE_VERSION = 1
LeadRef = str | Mapping[str, str] | Sequence[str]
"""A lead as the world's ``sim_lead_id`` (``us-000042``), or its keyed pseudonyms (list or type → key map)."""

_HARD_BOUNCE_PROB, _SOFT_BOUNCE_PROB = 1.0, 0.01


def landing_root(cfg: NurtureConfig) -> Path:
    """The configured landing root (``<landing_root>/<region>/events`` holds a region's files)."""
    return cfg.resolve(cfg.storage.landing_root)


def default_state_path(cfg: NurtureConfig) -> Path:
    """Where the world state lives by default: ``<landing_root>/_world/state.json`` (no personal data)."""
    return landing_root(cfg) / "_world" / "state.json"


def _epoch(value: datetime) -> float:
    if value.tzinfo is None:
        raise ValueError(f"send/decision times must be timezone-aware, got {value!r}")
    return value.timestamp()


def _touch_tree(channel: str, ctx: TouchContext) -> tuple[Stage, ...]:
    """The response tree of one touch, rooted at ``<channel>_sent`` (always, at the send time)."""
    return (Stage(f"{channel}_sent", 1.0, (0.0, 0.0), children=funnel(channel, ctx)),)


def _write_atomic(path: Path, text: str) -> None:
    """Write via a hidden temp file and rename, so a streaming reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.replace(tmp, path)


def split_due(events: Iterable[Mapping[str, Any]], until: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split response events into those that have happened by ``until`` and those still in the future.

    :meth:`World.respond` returns a touch's whole future (a deal may close weeks later); a closed loop
    lands the due part now and keeps the rest for later.
    """
    due, later = [], []
    for event in events:
        (due if datetime.fromisoformat(str(event["occurred_at"])) <= until else later).append(dict(event))
    return due, later


class World:
    """The simulated world of one configuration and seed."""

    def __init__(self, cfg: NurtureConfig, sim: SimulatorConfig | None = None) -> None:
        self.cfg = cfg
        self.sim = sim or SimulatorConfig.from_config(cfg)
        self.lake = Lake(cfg)
        self.populations: dict[str, RegionPopulation] = build_population(cfg, self.sim)
        self._rng = np.random.default_rng(np.random.SeedSequence([self.sim.seed, 0x5EED, 2]))
        self._touches: dict[str, list[float]] = {}
        self._unsubscribed: dict[str, list[str]] = {}
        self._bounced: set[str] = set()
        self._answered: set[str] = set()
        self.counters: dict[str, int] = {"requests": 0, "unknown_leads": 0, "violations": 0, "events": 0}
        self._keys: dict[str, tuple[str, int]] | None = None

    # ------------------------------------------------------------------ organic traffic
    def generate_organic(self) -> Manifest:
        """Write every region's organic landing files and the manifest; return the manifest."""
        start, end = horizon(self.sim)
        manifest = Manifest(seed=self.sim.seed, start=self.sim.start.isoformat(), days=self.sim.days)
        for region, pop in self.populations.items():
            table = OffsetTable(pop.zones, start - 7 * 86400, end)
            batch = generate_region(self.cfg, self.sim, pop, table=table)
            folder = self.lake.landing(region)
            for name, lines in batch.files.items():
                _write_atomic(folder / name, "\n".join(lines) + "\n")
            manifest.regions[region] = batch.manifest
            single = Manifest(seed=manifest.seed, start=manifest.start, days=manifest.days,
                              regions={region: batch.manifest})
            single.write(folder.parent / "manifest.json")
        manifest.write(landing_root(self.cfg) / "manifest.json")
        return manifest

    # ------------------------------------------------------------------ leads and keys
    def lead_identifiers(self, region: str) -> list[dict[str, Any]]:
        """Ground truth for identity tests: every lead's raw identifiers (all cookies) and flags."""
        pop = self.populations[region]
        out = []
        for i in range(pop.size):
            ids = pop.identifiers(i)
            out.append({"sim_lead_id": pop.sim_lead_id(i), "identifiers": ids, "cookies": list(pop.cookies[i]),
                        "anonymous": bool(pop.anonymous[i]), "timezone": pop.zone(i)})
        return out

    def id_keys(self, sim_lead_id: str) -> dict[str, str]:
        """The keyed pseudonyms of a lead's identifiers, as the lake computes them (type → key)."""
        region, index = self._parse_sim_id(sim_lead_id)
        return {t: k for t, k in self._lead_keys(region, index)}

    def _lead_keys(self, region: str, index: int) -> list[tuple[str, str]]:
        pop = self.populations[region]
        key = self.cfg.hmac_key()
        phone_region = self.cfg.regions[region].phone_region
        raw: list[tuple[str, str | None]] = [
            ("email", pop.email[index]), ("phone", pop.phone[index]), ("crm_id", pop.crm_id[index]),
            ("device_id", pop.device_id[index]), *(("cookie_id", c) for c in pop.cookies[index]),
        ]
        out = []
        for id_type, value in raw:
            norm = normalise_identifier(id_type, value, phone_region=phone_region)
            if norm is not None:
                out.append((id_type, pseudonym(key, id_type, norm)))
        return out

    def _key_index(self) -> dict[str, tuple[str, int]]:
        if self._keys is None:
            self._keys = {}
            for region, pop in self.populations.items():
                for i in range(pop.size):
                    for _, k in self._lead_keys(region, i):
                        self._keys[k] = (region, i)
        return self._keys

    def _parse_sim_id(self, text: str) -> tuple[str, int]:
        region, _, number = text.rpartition("-")
        if region in self.populations and number.isdigit() and int(number) < self.populations[region].size:
            return region, int(number)
        raise KeyError(f"unknown sim lead {text!r}")

    def find_lead(self, lead: LeadRef) -> tuple[str, int] | None:
        """``(region, index)`` of a sim lead id or of the first known pseudonym; ``None`` when unknown."""
        if isinstance(lead, str):
            try:
                return self._parse_sim_id(lead)
            except KeyError:
                keys: Iterable[str] = [lead]
        elif isinstance(lead, Mapping):
            keys = lead.values()
        else:
            keys = lead
        index = self._key_index()
        for key in keys:
            if key in index:
                return index[key]
        return None

    def _lead(self, lead: LeadRef) -> tuple[str, int]:
        found = self.find_lead(lead)
        if found is None:
            raise KeyError(f"the world knows no lead for {lead!r}")
        return found

    # ------------------------------------------------------------------ the response model
    def _recent_touches(self, sim_id: str, at: float) -> int:
        history = self._touches.get(sim_id, [])
        window = self.sim.fatigue_window_days * 86400
        return bisect.bisect_left(history, at) - bisect.bisect_left(history, at - window)

    def _consented(self, pop: RegionPopulation, index: int, channel: str, at: float) -> bool:
        c = SIM_CHANNELS.index(channel)
        return bool(pop.consent_grant_at[index, c] <= at < pop.consent_revoke_at[index, c])

    def touch_context(self, region: str, index: int, channel: str, send_at: float) -> TouchContext:
        """The response parameters of touching lead ``(region, index)`` on ``channel`` at ``send_at`` (epoch)."""
        pop = self.populations[region]
        sim_id = pop.sim_lead_id(index)
        c = SIM_CHANNELS.index(channel)
        local_hour = int(((send_at + offset_seconds(pop.zone(index), send_at)) // 3600) % 24)
        recent = self._recent_touches(sim_id, send_at)
        sensitivity = float(pop.fatigue_sensitivity[index])
        stage = int(pop.lifecycle[index])
        engage = (float(pop.affinity[index, c]) * float(pop.hour_profile[index, local_hour])
                  * math.exp(-sensitivity * recent) * STAGE_ENGAGEMENT[stage])
        bounced = sim_id in self._bounced
        permitted = (self._consented(pop, index, channel, send_at)
                     and channel not in self._unsubscribed.get(sim_id, [])
                     and not (channel == "email" and bounced))
        bounce = _HARD_BOUNCE_PROB if (bool(pop.hard_bounce[index]) or bounced) else _SOFT_BOUNCE_PROB
        return TouchContext(
            engage=clip_prob(engage),
            unsubscribe=clip_prob(0.002 + 0.015 * sensitivity * recent, 0.5),
            complaint=clip_prob(0.0005 + 0.004 * sensitivity * recent, 0.2),
            conversion=clip_prob(float(pop.conversion[index]) * STAGE_CONVERSION[stage], 0.9),
            bounce=bounce if channel == "email" else 0.0,
            permitted=permitted,
            reachable=not (channel == "sms" and pop.phone[index] is None),
        )

    def touch_stages(self, region: str, index: int, channel: str, send_at: float) -> tuple[Stage, ...]:
        """The response tree of one touch, rooted at ``<channel>_sent``."""
        return _touch_tree(channel, self.touch_context(region, index, channel, send_at))

    def response_probabilities(
        self, lead: LeadRef, channel: str, send_at: datetime, *, window: timedelta | None = None
    ) -> dict[str, float]:
        """Exact P(each event type within ``window`` of the send) for a touch now (default window: 60 days)."""
        region, index = self._lead(lead)
        span = (window or timedelta(days=60)).total_seconds()
        return attributed_probs(self.touch_stages(region, index, channel, _epoch(send_at)), span)

    # ------------------------------------------------------------------ responses
    def respond(self, requests: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Landing events answering decisions (sorted by time); each carries its ``decision_id``.

        A request: ``decision_id``, ``region``, ``id_keys`` (list or type → pseudonym map), ``action_id``,
        ``channel`` (``None`` for hold) and ``send_at`` (aware datetime). Holds, unknown leads and
        decisions answered before produce nothing. Every touch is remembered (fatigue), as are
        unsubscribes and hard bounces.
        """
        ordered = sorted(requests, key=lambda r: (_epoch(r["send_at"]), str(r["decision_id"])))
        produced: list[tuple[float, dict[str, Any]]] = []
        for request in ordered:
            decision_id = str(request["decision_id"])
            if request.get("channel") is None or decision_id in self._answered:
                continue
            self.counters["requests"] += 1
            found = self.find_lead(request["id_keys"])
            if found is None or found[0] != request.get("region", found[0]):
                self.counters["unknown_leads"] += 1
                continue
            self._answered.add(decision_id)
            produced.extend(self._answer(found, request, decision_id))
        produced.sort(key=lambda item: (item[0], item[1]["event_id"]))
        return [event for _, event in produced]

    def _answer(
        self, found: tuple[str, int], request: Mapping[str, Any], decision_id: str
    ) -> list[tuple[float, dict[str, Any]]]:
        region, index = found
        pop = self.populations[region]
        sim_id = pop.sim_lead_id(index)
        channel = str(request["channel"])
        send_at = _epoch(request["send_at"])
        ctx = self.touch_context(region, index, channel, send_at)
        if not ctx.permitted:
            self.counters["violations"] += 1  # touched without consent, after an opt-out or a hard bounce
        drawn = sample_stages(_touch_tree(channel, ctx), self._rng, send_at)
        bisect.insort(self._touches.setdefault(sim_id, []), send_at)
        out = []
        for at, event_type in drawn:
            if event_type in {"email_unsubscribe", "sms_unsubscribe", "email_complaint"}:
                lost = "sms" if event_type.startswith("sms") else "email"
                if lost not in self._unsubscribed.setdefault(sim_id, []):
                    self._unsubscribed[sim_id].append(lost)
            if event_type == "email_bounce" and bool(pop.hard_bounce[index]):
                self._bounced.add(sim_id)
            props = {"action_id": str(request.get("action_id", ""))} if event_type.endswith("_sent") else {}
            out.append((at, self._event(pop, index, event_type, at, channel, decision_id, props)))
        return out

    def _event(self, pop: RegionPopulation, index: int, event_type: str, at: float, channel: str,
               decision_id: str, properties: dict[str, str]) -> dict[str, Any]:
        """One landing-contract event of a lead (identifiers as the answering system would know them)."""
        if event_type in {"meeting_booked", "opportunity_created", "deal_won"}:
            ids, event_channel = {"crm_id": pop.crm_id[index], "email": pop.email[index]}, "crm"
        elif channel == "email":
            ids, event_channel = {"email": pop.email[index]}, channel
        elif channel == "push":
            ids, event_channel = {"device_id": pop.device_id[index]}, channel
        elif channel == "chat":
            ids, event_channel = {"cookie_id": pop.cookies[index][0]}, channel
        else:
            phone = pop.phone[index]
            ids = {"phone": phone} if phone else {"crm_id": pop.crm_id[index]}
            event_channel = channel
        fmt = int(self._rng.integers(0, 3))
        self.counters["events"] += 1
        return {
            "event_id": f"{pop.region}-s{self.sim.seed}-r{self.counters['events']:09d}",
            "event_type": event_type,
            "occurred_at": iso_one(at, pop.zone(index), fmt),
            "region": pop.region,
            "identifiers": ids,
            "channel": event_channel,
            "decision_id": decision_id,
            "properties": properties,
            "schema_version": SCHEMA_VERSION,
        }

    def write_events(self, events: Sequence[Mapping[str, Any]], region: str, name: str) -> Path:
        """Land events as one JSON-lines file ``<landing>/<region>/events/<name>.jsonl`` (atomic rename).

        Raises ``ValueError`` when an event belongs to another region: raw identifiers never leave theirs.
        """
        if "/" in name or "\\" in name or name.startswith((".", "_")):
            raise ValueError(f"file name {name!r} must be a plain name not starting with '.' or '_'")
        strays = sorted({str(e.get("region")) for e in events} - {region})
        if strays:
            raise ValueError(f"events of region(s) {strays} cannot be landed under region {region!r}")
        path = self.lake.landing(region) / (name if name.endswith(".jsonl") else f"{name}.jsonl")
        _write_atomic(path, "".join(json.dumps(dict(e), separators=(",", ":")) + "\n" for e in events))
        return path

    # ------------------------------------------------------------------ oracle
    def expected_reward(
        self,
        lead: LeadRef,
        action_id: str,
        decided_at: datetime,
        reward_spec: RewardSpec | None = None,
        *,
        action_space: ActionSpace | None = None,
        send_at: datetime | None = None,
    ) -> float:
        """Exact expected reward of ``action_id`` decided at ``decided_at`` (no sampling, no state change).

        Reward semantics (as in outcome attribution): Σ weights of the decision's events within
        ``reward_spec.window`` of the send (``default`` when no event of a weighted type is), minus the
        channel cost; ``hold`` is worth ``default``. The touch goes
        out at ``send_at`` (default ``decided_at`` + the action's wait); fatigue counts the touches the
        world has seen before then.
        """
        spec = reward_spec or RewardSpec.from_config(self.cfg)
        action = (action_space or ActionSpace.from_config(self.cfg)).parse(action_id)
        if action.channel is None:
            return spec.default
        region, index = self._lead(lead)
        when = send_at or (decided_at + (action.wait or timedelta(0)))
        stages = self.touch_stages(region, index, action.channel, _epoch(when))
        return expected_value(
            stages, weights=spec.weights, default=spec.default,
            cost=spec.channel_cost.get(action.channel, 0.0), window=spec.window_delta.total_seconds(),
        )

    def expected_rewards(
        self,
        lead: LeadRef,
        decided_at: datetime,
        reward_spec: RewardSpec | None = None,
        *,
        action_space: ActionSpace | None = None,
        allowed: Iterable[str] | None = None,
    ) -> dict[str, float]:
        """Expected reward of every (allowed) action, in action-space order."""
        space = action_space or ActionSpace.from_config(self.cfg)
        spec = reward_spec or RewardSpec.from_config(self.cfg)
        keep = set(allowed) if allowed is not None else None
        return {
            a: self.expected_reward(lead, a, decided_at, spec, action_space=space)
            for a in space.action_ids if keep is None or a in keep
        }

    def oracle_action(
        self,
        lead: LeadRef,
        decided_at: datetime,
        reward_spec: RewardSpec | None = None,
        *,
        action_space: ActionSpace | None = None,
        allowed: Iterable[str] | None = None,
    ) -> str:
        """The action with the highest expected reward (first in action order on ties)."""
        values = self.expected_rewards(lead, decided_at, reward_spec, action_space=action_space, allowed=allowed)
        if not values:
            raise ValueError("no allowed action to choose from")
        return max(values, key=lambda a: values[a])

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, Any]:
        """The mutable state as JSON-ready data (the population is re-drawn from the seed)."""
        return {
            "version": STATE_VERSION,
            "simulator": self.sim.model_dump(mode="json"),
            "regions": {r: p.size for r, p in self.populations.items()},
            "touches": self._touches,
            "unsubscribed": self._unsubscribed,
            "bounced": sorted(self._bounced),
            "answered": sorted(self._answered),
            "counters": self.counters,
            "rng": self._rng.bit_generator.state,
        }

    def save(self, path: Path | str | None = None) -> Path:
        """Persist the state (no personal data) so a later process continues this world."""
        target = Path(path) if path is not None else default_state_path(self.cfg)
        _write_atomic(target, json.dumps(self.state(), sort_keys=True) + "\n")
        return target

    @classmethod
    def load(cls, cfg: NurtureConfig, path: Path | str | None = None) -> World:
        """Rebuild the world saved at ``path`` (default: :func:`default_state_path`)."""
        source = Path(path) if path is not None else default_state_path(cfg)
        raw = json.loads(source.read_text())
        if raw.get("version") != STATE_VERSION:
            raise ValueError(f"{source}: unsupported world state version {raw.get('version')!r}")
        world = cls(cfg, SimulatorConfig(**raw["simulator"]))
        sizes = {r: p.size for r, p in world.populations.items()}
        if sizes != raw["regions"]:
            raise ValueError(f"{source}: saved regions {raw['regions']} differ from this configuration's {sizes}")
        world._touches = {k: [float(t) for t in v] for k, v in raw["touches"].items()}
        world._unsubscribed = {k: list(v) for k, v in raw["unsubscribed"].items()}
        world._bounced = set(raw["bounced"])
        world._answered = set(raw["answered"])
        world.counters = {k: int(v) for k, v in raw["counters"].items()}
        world._rng.bit_generator.state = raw["rng"]
        return world
