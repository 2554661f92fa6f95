"""Refresh gold.lead_features per region from silver.events (incremental by ingest high-water mark)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from nurture_lake.audit import audited_run
from nurture_lake.features import FeatureSettings, FeatureUpdate, lead_features_table, update_lead_features
from nurture_lake.jobs.common import job_parser, load_job_config, log, parse
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake


def _summary(update: FeatureUpdate) -> str:
    return (f"features {update.region}: {update.mode}, {update.leads_updated} leads updated, "
            f"as_of={update.as_of}, events_hwm={update.events_hwm} (previous {update.previous_hwm}), "
            f"table version {update.table_version}, feature_version {update.feature_version}")


def main(argv: Sequence[str] | None = None) -> None:
    """``nurture-lake features [--region R ...] [--full] [--as-of ISO-8601]``."""
    parser = job_parser("features", __doc__ or "")
    parser.add_argument("--region", action="append", default=None,
                        help="region to refresh (repeatable; default: every configured region)")
    parser.add_argument("--full", action="store_true",
                        help="recompute every lead (e.g. after identity merges) instead of only changed ones")
    parser.add_argument("--as-of", default=None, type=datetime.fromisoformat,
                        help="compute features as of this instant (default: the newest ingested_at)")
    args = parse(parser, argv)
    cfg = load_job_config(args)
    settings = FeatureSettings.from_config(cfg)
    lake = Lake(cfg)
    spark = get_spark(cfg, app_name="nurture_lake.features", master=args.master)
    # The identity module resolves identifiers to stable lead ids.
    from nurture_lake.identity import attach_lead_id

    for region in args.region or lake.regions:
        events_table = lake.table(region, "silver", "events")
        graph_table = lake.table(region, "silver", "identity_graph")
        with audited_run(spark, lake, job="features", region=region, args=vars(args)) as run:
            if run.read(spark, events_table) is None or run.read(spark, graph_table) is None:
                log(f"features {region}: silver.events or silver.identity_graph missing, nothing to do")
                continue
            lead_events = attach_lead_id(events_table.read(spark), graph_table.read(spark))
            update = update_lead_features(
                spark, lake, region, lead_events, settings=settings, as_of=args.as_of, full=args.full,
            )
            run.wrote(spark, lead_features_table(lake, region), rows=update.leads_updated)
        print(_summary(update), flush=True)


if __name__ == "__main__":
    main()
