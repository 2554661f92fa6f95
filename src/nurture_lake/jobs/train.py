"""Train the cadence bandit on closed decisions, evaluate it off-policy and register it as challenger."""

from __future__ import annotations

from collections.abc import Sequence

from nurture_lake.audit import audited_run
from nurture_lake.jobs.common import add_decision_window_args, job_parser, load_job_config, log, parse
from nurture_lake.policy import NotEnoughData, train_policy
from nurture_lake.policy.trainer import PHASES
from nurture_lake.policy.training_set import load_training_set
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake train [--phase fit|tune|all] [--region R ...] [--as-of ISO-8601]``."""
    parser = job_parser("train", __doc__ or "")
    parser.add_argument("--phase", choices=PHASES, default="all",
                        help="fit: configured hyper-parameters; tune: hyperopt only; all: tune then fit (default)")
    add_decision_window_args(parser, verb="learn from")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    lake = Lake(cfg)
    spark = get_spark(cfg, app_name="nurture_lake.train", master=args.master)
    with audited_run(spark, lake, job="train", args=vars(args)) as run:
        loaded = load_training_set(spark, cfg, regions=args.region, as_of=args.as_of)
        if loaded is None:
            log("train: no decisions, outcomes or lead events yet, nothing to do")
            return
        training, versions = loaded
        run.inputs.update(versions)
        try:
            result = train_policy(spark, cfg, training, phase=args.phase, input_versions=versions)
        except NotEnoughData as exc:
            log(f"train: {exc}; nothing registered")
            return
        run.count("train.decisions", result.n_train)
        run.count("train.validation_decisions", result.n_validation)
    dr = result.estimates.get("dr")
    reg = result.registered
    print(
        f"train {args.phase}: {result.n_train} train / {result.n_validation} validation decisions, "
        + (f"{result.tuning.describe()}, " if result.tuning else "")
        + (f"{result.tuning_skipped}, " if result.tuning_skipped else "")
        + f"params {result.params}, cold start {result.cold_start}, "
        + (f"DR {dr.estimate:.4f} [{dr.lower:.4f}, {dr.upper:.4f}], " if dr else "")
        + (f"run {reg.run_id}, version {reg.version}" if reg else "not registered"),
        flush=True,
    )


if __name__ == "__main__":
    main()
