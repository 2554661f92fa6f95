"""The simulated world: determinism, bad records as claimed, regional privacy, responses, oracle, state."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from nurture_lake.actions import ActionSpace, RewardSpec
from nurture_lake.config import NurtureConfig
from nurture_lake.jobs.simulate import main as simulate_main
from nurture_lake.privacy import normalise_phone
from nurture_lake.schemas import CHANNELS, EVENT_TYPES, IDENTIFIER_TYPES, LANDING_FIELDS, REQUIRED_FIELDS
from nurture_lake.simulator import BAD_KINDS, Manifest, SimulatorConfig, World, split_due
from nurture_lake.simulator.response_model import (
    Stage,
    TouchContext,
    attributed_probs,
    expected_value,
    funnel,
    sample_stages,
)
from nurture_lake.tables import Lake

SMALL = {"leads": 400, "days": 3, "files_per_day": 3, "bad_record_rate": 0.08, "late_event_rate": 0.05}


def _world(cfg: NurtureConfig, **overrides: object) -> World:
    return World(cfg, SimulatorConfig.from_config(cfg, overrides={**SMALL, **overrides}))


def _with_landing(cfg: NurtureConfig, folder: Path) -> NurtureConfig:
    storage = cfg.storage.model_copy(update={"landing_root": str(folder)})
    return cfg.model_copy(update={"storage": storage})


def _files(cfg: NurtureConfig, region: str) -> list[Path]:
    return sorted(Lake(cfg).landing(region).glob("*.jsonl"))


def _classify(lines: list[tuple[str, str]], region: str, now: datetime) -> tuple[Counter[str], list[dict]]:
    """An independent reading of the landing contract: the reason each line deserves (or 'good')."""
    reasons: Counter[str] = Counter()
    good: list[dict] = []
    seen: set[str] = set()
    for file_name, line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            reasons["malformed_json"] += 1
            continue
        if any(f not in event for f in REQUIRED_FIELDS):
            reasons["missing_required_field"] += 1
            continue
        if not isinstance(event["identifiers"], dict) or not isinstance(event.get("properties") or {}, dict):
            reasons["wrong_type"] += 1
            continue
        if event["event_type"] not in EVENT_TYPES:
            reasons["unknown_event_type"] += 1
            continue
        if event.get("channel") is not None and event["channel"] not in CHANNELS:
            reasons["unknown_channel"] += 1
            continue
        try:
            at = datetime.fromisoformat(event["occurred_at"])
        except (TypeError, ValueError):
            reasons["bad_timestamp"] += 1
            continue
        if at.tzinfo is None or at > now + timedelta(hours=24):
            reasons["bad_timestamp"] += 1
            continue
        if not event["identifiers"]:
            reasons["no_identifiers"] += 1
            continue
        if event["region"] != region:
            reasons["region_mismatch"] += 1
            continue
        if event["schema_version"] != "1":
            reasons["unsupported_schema_version"] += 1
            continue
        if event["event_id"] in seen:
            reasons["duplicate_event_id"] += 1
            continue
        seen.add(event["event_id"])
        good.append({**event, "_file": file_name, "_at": at})
    return reasons, good


def _lines(cfg: NurtureConfig, region: str) -> list[tuple[str, str]]:
    return [(f.name, line) for f in _files(cfg, region) for line in f.read_text().splitlines()]


@pytest.fixture
def organic(cfg: NurtureConfig) -> tuple[World, Manifest]:
    world = _world(cfg)
    return world, world.generate_organic()


def test_same_seed_same_bytes_other_seed_other_bytes(cfg: NurtureConfig, tmp_path: Path) -> None:
    runs = {}
    for label, seed in (("a", 11), ("b", 11), ("c", 12)):
        run_cfg = _with_landing(cfg, tmp_path / label)
        _world(run_cfg, seed=seed).generate_organic()
        runs[label] = {
            (r, f.name): f.read_bytes() for r in ("us", "eu") for f in _files(run_cfg, r)
        }
    assert runs["a"] and runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_manifest_matches_an_independent_reading_of_the_files(
    cfg: NurtureConfig, organic: tuple[World, Manifest]
) -> None:
    _, manifest = organic
    now = datetime.now(UTC)
    for region in ("us", "eu"):
        names = [f.name for f in _files(cfg, region)]
        assert names == manifest.regions[region].files  # lexical order = write (time) order
        reasons, good = _classify(_lines(cfg, region), region, now)
        expected = manifest.regions[region]
        assert dict(reasons) == expected.bad_events
        assert len(good) == expected.good_events
        assert set(expected.bad_events) == set(BAD_KINDS)  # every kind shows up at this rate and size
        assert Counter(e["event_type"] for e in good) == Counter(expected.event_types)
    on_disk = Manifest.read(Path(cfg.storage.landing_root) / "manifest.json")
    assert on_disk.to_dict() == manifest.to_dict()


def test_bad_lines_are_bad_in_the_claimed_way(cfg: NurtureConfig, organic: tuple[World, Manifest]) -> None:
    lines = _lines(cfg, "us")
    parsed = []
    for _, line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            assert line.startswith('{"event_id"') and not line.endswith("}")  # a truncated line
    shapes = Counter()
    for event in parsed:
        if isinstance(event.get("identifiers"), str):
            shapes["identifiers_string"] += 1
            assert isinstance(json.loads(event["identifiers"]), dict)
        if isinstance(event.get("properties"), list):
            shapes["properties_list"] += 1
        if event.get("identifiers") == {}:
            shapes["empty_identifiers"] += 1
        if set(event) != set(LANDING_FIELDS):
            shapes["missing_field"] += 1
            assert len(set(LANDING_FIELDS) - set(event)) == 1
        if event.get("region") not in (None, "us"):
            assert event["region"] == "eu"
            shapes["other_region"] += 1
    assert {"identifiers_string", "properties_list", "empty_identifiers", "missing_field", "other_region"} <= set(shapes)
    # duplicates are exact re-sends of a line from an earlier file
    first_file: dict[str, str] = {}
    dup_checked = 0
    for file_name, line in lines:
        if line in first_file and first_file[line] != file_name:
            assert first_file[line] < file_name
            dup_checked += 1
        first_file.setdefault(line, file_name)
    assert dup_checked == organic[1].regions["us"].bad_events["duplicate_event_id"]


def test_late_and_out_of_order_events_are_valid_and_counted(
    cfg: NurtureConfig, organic: tuple[World, Manifest]
) -> None:
    _, manifest = organic
    for region in ("us", "eu"):
        _, good = _classify(_lines(cfg, region), region, datetime.now(UTC))
        late = 0
        for event in good:
            day = datetime.strptime(event["_file"].split("-")[1], "%Y%m%d").replace(tzinfo=UTC)
            late += event["_at"] < day
        assert late == manifest.regions[region].late_events > 0
        assert manifest.regions[region].out_of_order_lines > 0


def test_timestamps_mix_z_utc_and_local_offsets(cfg: NurtureConfig, organic: tuple[World, Manifest]) -> None:
    _, good = _classify(_lines(cfg, "us"), "us", datetime.now(UTC))
    endings = Counter(
        "Z" if e["occurred_at"].endswith("Z") else "+00:00" if e["occurred_at"].endswith("+00:00") else "local"
        for e in good
    )
    assert set(endings) == {"Z", "+00:00", "local"}
    created = [e for e in good if e["event_type"] == "lead_created"]
    assert created and all(e["properties"]["timezone"] in
                           ("America/New_York", "America/Chicago", "America/Los_Angeles") for e in created)
    for e in good[:300]:  # a local offset is the lead's zone's offset at that instant
        if e["event_type"] == "lead_created" and not e["occurred_at"].endswith(("Z", "+00:00")):
            zone = ZoneInfo(e["properties"]["timezone"])
            assert e["_at"].utcoffset() == e["_at"].astimezone(zone).utcoffset()


def test_no_raw_identifier_crosses_regions(cfg: NurtureConfig, organic: tuple[World, Manifest]) -> None:
    world, _ = organic
    for home, other in (("us", "eu"), ("eu", "us")):
        raw = set()
        for lead in world.lead_identifiers(home):
            raw |= {v.lower() for v in lead["identifiers"].values()} | {c.lower() for c in lead["cookies"]}
        text = "\n".join(f.read_text().lower() for f in _files(cfg, other))
        found = [v for v in raw if v in text]
        assert found == []
        assert any(v in "\n".join(f.read_text().lower() for f in _files(cfg, home)) for v in raw)


def test_identifiers_are_split_over_event_types_and_phones_parse(
    cfg: NurtureConfig, organic: tuple[World, Manifest]
) -> None:
    world, _ = organic
    for region in ("us", "eu"):
        _, good = _classify(_lines(cfg, region), region, datetime.now(UTC))
        by_type: dict[str, set[frozenset[str]]] = {}
        for e in good:
            assert set(e["identifiers"]) <= set(IDENTIFIER_TYPES)
            by_type.setdefault(e["event_type"], set()).add(frozenset(e["identifiers"]))
            if "phone" in e["identifiers"]:
                assert normalise_phone(e["identifiers"]["phone"], cfg.regions[region].phone_region)
        assert by_type["web_visit"] == {frozenset({"cookie_id", "device_id"})}
        assert frozenset({"cookie_id", "email"}) in by_type["form_submit"]
        assert all("crm_id" in s and "email" in s for s in by_type["lead_created"])
        # anonymous leads never show a cookie next to their e-mail; two-cookie leads use both
        truth = world.lead_identifiers(region)
        anonymous_cookies = {c for t in truth if t["anonymous"] for c in t["cookies"]}
        assert anonymous_cookies
        linked = {e["identifiers"]["cookie_id"] for e in good if "email" in e["identifiers"] and
                  "cookie_id" in e["identifiers"]}
        assert not anonymous_cookies & linked
        second_cookies = {t["cookies"][1] for t in truth if len(t["cookies"]) == 2}
        assert second_cookies & {e["identifiers"].get("cookie_id") for e in good}


def test_consent_events_follow_the_regional_mode(cfg: NurtureConfig, organic: tuple[World, Manifest]) -> None:
    _, manifest = organic
    eu_types = manifest.regions["eu"].event_types
    us_types = manifest.regions["us"].event_types
    assert eu_types["consent_granted"] > 0 and eu_types.get("consent_revoked", 0) > 0
    assert "consent_granted" not in us_types and us_types.get("consent_revoked", 0) > 0
    _, good = _classify(_lines(cfg, "eu"), "eu", datetime.now(UTC))
    grants = [e for e in good if e["event_type"] == "consent_granted"]
    assert all(e["properties"]["purpose"] == "marketing" and e["channel"] in ("email", "push", "chat", "sms")
               for e in grants)


def _preferred_send(world: World, sim_id: str, *, best: bool, day: datetime) -> datetime:
    region, index = world.find_lead(sim_id)  # type: ignore[misc]
    pop = world.populations[region]
    profile = pop.hour_profile[index]
    hour = int(np.argmax(profile) if best else np.argmin(profile))
    local = datetime(day.year, day.month, day.day, hour, 30, tzinfo=ZoneInfo(pop.zone(index)))
    return local.astimezone(UTC)


def _requests(world: World, leads: list[str], sends: list[datetime], channel: str, tag: str) -> list[dict]:
    return [
        {"decision_id": f"{tag}-{lead}", "region": lead.split("-")[0], "id_keys": list(world.id_keys(lead).values()),
         "action_id": f"{channel}@1d", "channel": channel, "send_at": send}
        for lead, send in zip(leads, sends, strict=True)
    ]


def test_responses_follow_affinity_and_preferred_hours(cfg: NurtureConfig) -> None:
    day = datetime(2026, 9, 20, tzinfo=UTC)
    rates = {}
    for arm, best in (("preferred", True), ("off_hours", False)):
        world = _world(cfg, leads=2400)
        pop = world.populations["us"]
        leads = [pop.sim_lead_id(i) for i in range(pop.size)]
        sends = [_preferred_send(world, lead, best=best, day=day) for lead in leads]
        expected = np.array([world.response_probabilities(lead, "email", s).get("email_open", 0.0)
                             for lead, s in zip(leads, sends, strict=True)])
        events = world.respond(_requests(world, leads, sends, "email", arm))
        opened = {e["decision_id"] for e in events if e["event_type"] == "email_open"}
        observed = np.array([f"{arm}-{lead}" in opened for lead in leads], dtype=float)
        sigma = math.sqrt(float((expected * (1 - expected)).sum()))
        assert abs(observed.sum() - expected.sum()) < 4 * sigma + 1
        high = pop.affinity[:, 0] >= np.median(pop.affinity[:, 0])
        rates[arm] = (observed[high].mean(), observed[~high].mean())
        assert rates[arm][0] > rates[arm][1]  # high e-mail affinity opens more than low
    assert rates["preferred"][0] > 2 * rates["off_hours"][1]
    assert rates["preferred"][0] > rates["off_hours"][0]


def test_sampled_responses_agree_with_expected_reward(cfg: NurtureConfig) -> None:
    world = _world(cfg, leads=3000)
    spec = RewardSpec.from_config(cfg)
    short = spec.model_copy(update={"window": "6h"})
    leads = [pop.sim_lead_id(i) for pop in world.populations.values() for i in range(pop.size)]
    decided = datetime(2026, 9, 20, 13, 0, tzinfo=UTC)
    for action, channel in (("email@1d", "email"), ("chat@1d", "chat")):
        send = decided + timedelta(days=1)
        expected = np.array([world.expected_reward(lead, action, decided, spec) for lead in leads])
        probs = {
            label: [world.response_probabilities(lead, channel, send, window=s.window_delta) for lead in leads]
            for label, s in (("7d", spec), ("6h", short))
        }
        events = world.respond(_requests(world, leads, [send] * len(leads), channel, action))
        for label, s in (("7d", spec), ("6h", short)):
            inside = [e for e in events if datetime.fromisoformat(e["occurred_at"]) <= send + s.window_delta]
            counts = Counter(e["event_type"] for e in inside)
            for event_type in {t for p in probs[label] for t in p} | set(counts):
                p = np.array([lead_probs.get(event_type, 0.0) for lead_probs in probs[label]])
                sigma = math.sqrt(float((p * (1 - p)).sum()))
                assert abs(counts[event_type] - p.sum()) <= 4 * sigma + 1, (label, event_type)
        reward = {f"{action}-{lead}": -spec.channel_cost[channel] for lead in leads}
        for e in events:
            if datetime.fromisoformat(e["occurred_at"]) <= send + spec.window_delta:
                reward[e["decision_id"]] += spec.weights.get(e["event_type"], 0.0)
        sampled = np.array([reward[f"{action}-{lead}"] for lead in leads])
        assert abs(sampled.mean() - expected.mean()) < 4 * sampled.std() / math.sqrt(len(leads))
        decided += timedelta(days=30)  # the next channel meets a rested population


@pytest.mark.parametrize("channel", ["email", "chat", "sms"])
def test_response_tree_sampling_matches_its_exact_expectation(channel: str) -> None:
    ctx = TouchContext(engage=0.6, unsubscribe=0.05, complaint=0.02, conversion=0.5, bounce=0.1, permitted=True)
    tree = (Stage(f"{channel}_sent", 1.0, (0.0, 0.0), children=funnel(channel, ctx)),)
    rng = np.random.default_rng(3)
    draws = 60_000
    samples = [sample_stages(tree, rng, 0.0) for _ in range(draws)]
    weights = {"email_open": 0.1, "email_click": 1.0, "email_reply": 5.0, "chat_reply": 5.0, "sms_click": 1.0,
               "meeting_booked": 10.0, "opportunity_created": 15.0, "email_unsubscribe": -5.0,
               "email_complaint": -10.0, "sms_unsubscribe": -5.0}
    for hours in (6, 30, 24 * 7, 24 * 60):
        window = hours * 3600.0
        counts = Counter(t for sample in samples for at, t in sample if at <= window)
        probs = attributed_probs(tree, window)
        for event_type in set(probs) | set(counts):
            p = probs.get(event_type, 0.0)
            assert abs(counts[event_type] / draws - p) <= 4 * math.sqrt(p * (1 - p) / draws) + 1e-9, (hours, event_type)
        rewards = np.array([sum(weights.get(t, 0.0) for at, t in sample if at <= window) for sample in samples])
        for default in (0.0, -0.5):
            with_default = np.where(
                [not any(t in weights and at <= window for at, t in s) for s in samples], default, rewards)
            value = expected_value(tree, weights=weights, default=default, cost=0.3, window=window)
            assert abs(with_default.mean() - 0.3 - value) <= 4 * with_default.std() / math.sqrt(draws)
    # events come out in causal order: every child after its parent
    for sample in samples[:2000]:
        times = dict((t, at) for at, t in sample)
        for parent, child in (("email_open", "email_click"), ("email_open", "email_reply"),
                              ("meeting_booked", "opportunity_created"), ("opportunity_created", "deal_won")):
            if child in times:
                assert times[parent] < times[child]


def test_fatigue_lowers_response_and_raises_harm(cfg: NurtureConfig) -> None:
    world = _world(cfg)
    lead = world.populations["us"].sim_lead_id(3)
    first = datetime(2026, 9, 20, 15, tzinfo=UTC)
    fresh = world.response_probabilities(lead, "push", first)["push_open"]
    fresh_unsub = world.response_probabilities(lead, "email", first)["email_unsubscribe"]
    sends = [first - timedelta(hours=6 * k) for k in range(1, 9)]
    tiring = [{**r, "decision_id": f"tire-{k}"} for k, r in enumerate(_requests(world, [lead] * 8, sends, "push", "t"))]
    assert {e["decision_id"] for e in world.respond(tiring)} == {r["decision_id"] for r in tiring}
    assert world.response_probabilities(lead, "push", first)["push_open"] < fresh
    assert world.response_probabilities(lead, "email", first)["email_unsubscribe"] > fresh_unsub


def test_respond_skips_hold_unknown_and_repeated_decisions(cfg: NurtureConfig) -> None:
    world = _world(cfg)
    lead = world.populations["eu"].sim_lead_id(0)
    send = datetime(2026, 9, 20, 9, tzinfo=UTC)
    base = _requests(world, [lead], [send], "push", "x")[0]
    hold = {**base, "decision_id": "h", "channel": None, "action_id": "hold"}
    unknown = {**base, "decision_id": "u", "id_keys": ["email:0000"]}
    events = world.respond([hold, unknown, base])
    assert events and {e["decision_id"] for e in events} == {base["decision_id"]}
    assert events[0]["event_type"] == "push_sent" and events[0]["identifiers"] == {
        "device_id": world.populations["eu"].device_id[0]}
    assert all(e["region"] == "eu" and set(e) == set(LANDING_FIELDS) for e in events)
    assert world.respond([base]) == []
    assert world.counters["unknown_leads"] == 1
    path = world.write_events(events, "eu", "events-20260920-r0001")
    assert [json.loads(line) for line in path.read_text().splitlines()] == events
    with pytest.raises(ValueError, match="cannot be landed"):
        world.write_events(events, "us", "events-20260920-r0002")


def test_oracle_is_the_argmax_and_respects_consent(cfg: NurtureConfig) -> None:
    world = _world(cfg)
    space, spec = ActionSpace.from_config(cfg), RewardSpec.from_config(cfg)
    pop = world.populations["eu"]
    decided = datetime(2026, 9, 10, 8, tzinfo=UTC)
    no_email = [i for i in range(pop.size) if not pop.consent_grant_at[i, 0] <= decided.timestamp()]
    assert no_email
    for i in no_email[:5] + [1, 2, 3]:
        lead = pop.sim_lead_id(i)
        values = world.expected_rewards(lead, decided, spec, action_space=space)
        assert list(values) == list(space.action_ids) and values["hold"] == spec.default
        best = world.oracle_action(lead, decided, spec, action_space=space)
        assert values[best] == max(values.values())
        allowed = ["hold", "push@1d"]
        assert world.oracle_action(lead, decided, spec, action_space=space, allowed=allowed) in allowed
    lead = pop.sim_lead_id(no_email[0])
    assert world.expected_reward(lead, "email@4h", decided, spec) < 0  # mail without consent only harms
    assert world.find_lead(world.id_keys(lead)) == ("eu", no_email[0])


def test_save_and_load_continue_identically(cfg: NurtureConfig) -> None:
    world = _world(cfg)
    pop = world.populations["us"]
    leads = [pop.sim_lead_id(i) for i in range(50)]
    day1 = datetime(2026, 9, 20, 14, tzinfo=UTC)
    world.respond(_requests(world, leads, [day1] * 50, "email", "one"))
    path = world.save()
    assert path.parent.parent == Path(cfg.storage.landing_root)
    second = _requests(world, leads, [day1 + timedelta(days=1)] * 50, "email", "two")
    continued = world.respond(second)
    reloaded = World.load(cfg)
    assert reloaded.respond(second) == continued and continued
    assert reloaded.counters == world.counters
    assert reloaded.respond(_requests(world, leads, [day1] * 50, "email", "one")) == []  # answered before
    until = day1 + timedelta(days=1, hours=3)
    due, later = split_due(continued, until)
    assert due and later and len(due) + len(later) == len(continued)
    assert all(datetime.fromisoformat(e["occurred_at"]) > until for e in later)
    assert all(datetime.fromisoformat(e["occurred_at"]) <= until for e in due)


def test_simulate_job_writes_files_state_and_summary(cfg: NurtureConfig, capsys: pytest.CaptureFixture[str]) -> None:
    landing = cfg.storage.landing_root
    simulate_main([
        "--set", f"storage.landing_root={landing}", "--leads", "120", "--days", "2", "--seed", "5",
        "--bad-rate", "0.1", "--start", "2026-08-03",
    ])
    out = capsys.readouterr().out
    manifest = Manifest.read(Path(landing) / "manifest.json")
    assert manifest.seed == 5 and manifest.start == "2026-08-03" and manifest.days == 2
    assert sum(r.leads for r in manifest.regions.values()) == 120
    assert f"good={manifest.regions['us'].good_events}" in out and "world state:" in out
    assert (Path(landing) / "us" / "events" / "events-20260803-0001.jsonl").exists()
    assert World.load(_with_landing(cfg, Path(landing))).sim.seed == 5
