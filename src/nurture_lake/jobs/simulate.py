"""Simulate the world: write organic landing files (with bad records) for every region and save the world."""

from __future__ import annotations

import argparse
from datetime import date

from nurture_lake.config import ConfigError
from nurture_lake.jobs.common import job_parser, load_job_config, log, parse
from nurture_lake.simulator import SimulatorConfig, World, default_state_path, landing_root


def _parser() -> argparse.ArgumentParser:
    parser = job_parser("simulate", __doc__ or "")
    parser.add_argument("--days", type=int, default=None, help="simulated days (default: simulator.days)")
    parser.add_argument("--leads", type=int, default=None, help="leads over all regions (default: simulator.leads)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: simulator.seed)")
    parser.add_argument("--bad-rate", type=float, default=None, help="share of bad records (default: 0.02)")
    parser.add_argument("--start", type=date.fromisoformat, default=None, help="first day, YYYY-MM-DD")
    parser.add_argument("--state", default=None, help="world state file (default: <landing_root>/_world/state.json)")
    return parser


def main(argv: list[str] | None = None) -> None:
    """``nurture-lake simulate [--days N] [--leads N] [--seed N] [--bad-rate R] [--start YYYY-MM-DD]``."""
    args = parse(_parser(), argv)
    cfg = load_job_config(args)
    overrides = {"days": args.days, "leads": args.leads, "seed": args.seed,
                 "bad_record_rate": args.bad_rate, "start": args.start}
    try:
        sim = SimulatorConfig.from_config(cfg, overrides=overrides)
    except ConfigError as exc:
        print(f"configuration error: {exc}")
        raise SystemExit(2) from None
    log(f"simulating {sim.leads} leads over {sim.days} days from {sim.start} (seed {sim.seed})")
    world = World(cfg, sim)
    manifest = world.generate_organic()
    state = world.save(args.state or default_state_path(cfg))
    print(manifest.summary())
    for region in manifest.regions:
        print(f"landing files: {world.lake.landing(region)}")
    print(f"manifest: {landing_root(cfg) / 'manifest.json'}")
    print(f"world state: {state}")
