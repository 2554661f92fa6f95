"""Run the closed nurture loop on a simulated population and write the report (make demo)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence

from nurture_lake.audit import audited_run
from nurture_lake.jobs.common import job_parser, load_job_config, log, parse
from nurture_lake.loop import ClosedLoop, build_report
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


DEMO_DAYS = 20
"""The demo's default length: learning at days 16 and 20 after three steps of complete decisions."""


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake demo [--days N] [--leads N] [--seed S] [--keep]``."""
    parser = job_parser("demo", __doc__ or "")
    parser.add_argument("--days", type=int, default=DEMO_DAYS,
                        help=f"simulated days (default {DEMO_DAYS}: a training needs complete decisions, made before "
                             "the earliest one still waiting for its reward window; with conf/local.yaml the first "
                             "come 10 days in: a 7-day wait plus a 3-day window)")
    parser.add_argument("--leads", type=int, default=None, help="simulated leads (default: simulator.leads)")
    parser.add_argument("--seed", type=int, default=None, help="simulator seed (default: simulator.seed)")
    parser.add_argument("--train-every", type=int, default=4, help="train/evaluate/promote every N days (default 4)")
    parser.add_argument("--tick-days", type=int, default=2,
                        help="simulated days per loop step: land, ingest, ..., score (default 2)")
    parser.add_argument("--oracle-sample", type=int, default=20000,
                        help="decisions scored against the simulator's truth for the report (default 20000)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the existing demo lake (default: start from an empty one)")
    args = parse(parser, argv)
    for flag, key in ((args.days, "simulator.days"), (args.leads, "simulator.leads"), (args.seed, "simulator.seed")):
        if flag is not None:
            args.overrides.append(f"{key}={flag}")
    cfg = load_job_config(args)
    lake = Lake(cfg)
    if not args.keep:
        for root in (cfg.storage.lake_root, cfg.storage.checkpoint_root, cfg.storage.landing_root,
                     cfg.storage.report_root, cfg.mlflow.artifact_root):
            shutil.rmtree(cfg.resolve(root), ignore_errors=True)
        staging = cfg.resolve(cfg.storage.landing_root).parent / "staging"
        shutil.rmtree(staging, ignore_errors=True)
        if cfg.mlflow.tracking_uri.startswith("sqlite:///"):
            db = cfg.resolve(cfg.mlflow.tracking_uri.removeprefix("sqlite:///"))
            db.unlink(missing_ok=True)
    started = time.perf_counter()
    spark = get_spark(cfg, app_name="nurture_lake.demo", master=args.master)
    with audited_run(spark, lake, job="demo", args=vars(args)):
        loop = ClosedLoop(spark, cfg, train_every_days=args.train_every, tick_days=args.tick_days, log=log)
        result = loop.run()
        report = build_report(spark, lake, notes=loop.notes(), oracle=loop.oracle_frame(sample=args.oracle_sample))
    log(f"demo finished in {time.perf_counter() - started:.0f} s")
    print()
    regret = report.headline.pop("oracle_regret", {})
    expected = report.headline.pop("expected_reward", {})
    verdict = report.headline.pop("learned_vs_holdout", None)
    print("Realised reward per decision (closed windows, attributed events):")
    for group, value in sorted(report.headline.items()):
        print(f"  {group:<16} {value:+.4f}")
    if expected:
        print("Expected reward per decision and regret vs the oracle (simulator's hidden truths):")
        for group in sorted(expected):
            print(f"  {group:<16} {expected[group]:+.4f}   regret {regret.get(group, float('nan')):+.4f}")
    if verdict is not None:
        print(verdict["summary"])
    for gate in result.gate_decisions:
        print(f"  gate {gate.get('as_of')}: {'promoted' if gate.get('promoted') else 'refused'} — {gate.get('reason')}")
    print(f"\nReport:  {report.html_path}")
    for png in report.pngs:
        print(f"         {png}")
    print("Tables:")
    for region in lake.regions:
        print(f"  {region}: {lake.region_root(region)}/<bronze|silver|gold>/<table>")
    print(f"  audit and gate decisions: {lake.region_root('global')}")
    print(f"MLflow:  {cfg.mlflow.tracking_uri} (artifacts {cfg.resolve(cfg.mlflow.artifact_root)})")


if __name__ == "__main__":
    main()
