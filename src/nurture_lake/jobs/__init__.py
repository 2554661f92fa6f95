"""Job entry points: each module has ``main(argv: list[str] | None = None) -> None``.

``nurture-lake <job>`` dispatches here; ``jobs/<job>.py`` files call the same ``main`` for
``spark-submit``. Jobs are thin: parse arguments, load config, get Spark, call the library.
"""

JOBS: dict[str, str] = {
    "simulate": "nurture_lake.jobs.simulate",
    "ingest": "nurture_lake.jobs.ingest",
    "identity": "nurture_lake.jobs.identity",
    "features": "nurture_lake.jobs.features",
    "score": "nurture_lake.jobs.score",
    "attribute": "nurture_lake.jobs.attribute",
    "train": "nurture_lake.jobs.train",
    "promote": "nurture_lake.jobs.promote",
    "check-guardrails": "nurture_lake.jobs.check_guardrails",
    "monitor": "nurture_lake.jobs.monitor",
    "retain": "nurture_lake.jobs.retain",
    "erase": "nurture_lake.jobs.erase",
    "lookup": "nurture_lake.jobs.lookup",
    "explain": "nurture_lake.jobs.explain",
    "deploy": "nurture_lake.jobs.deploy",
    "demo": "nurture_lake.jobs.demo",
}
"""Sub-command name → module holding its ``main``. Later jobs register here."""

__all__ = ["JOBS"]
