"""Promotion gate: challenger → champion only if its DR lower bound beats the baseline without more harm."""

from __future__ import annotations

from collections.abc import Sequence

from nurture_lake.audit import audited_run
from nurture_lake.jobs.common import add_decision_window_args, job_parser, load_job_config, log, parse
from nurture_lake.policy.training_set import load_training_set
from nurture_lake.policy import gate_table, promote_challenger
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake promote [--region R ...] [--as-of ISO-8601]``."""
    parser = job_parser("promote", __doc__ or "")
    add_decision_window_args(parser, verb="evaluate on")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    lake = Lake(cfg)
    spark = get_spark(cfg, app_name="nurture_lake.promote", master=args.master)
    with audited_run(spark, lake, job="promote", args=vars(args)) as run:
        loaded = load_training_set(spark, cfg, regions=args.region, as_of=args.as_of)
        if loaded is None:
            log("promote: no logged decisions with outcomes yet, nothing to evaluate")
            return
        training, versions = loaded
        run.inputs.update(versions)
        decision = promote_challenger(spark, cfg, training, input_versions=versions, job_run_id=run.run_id)
        if decision is None:
            log("promote: no challenger, or the challenger already is champion")
            return
        run.wrote(spark, gate_table(lake), rows=1)
    print(f"promote: challenger v{decision.challenger_version} {decision.reason}", flush=True)


if __name__ == "__main__":
    main()
