"""Shared fixtures: one Spark JVM per pytest worker (``make test`` runs two), a fresh temp lake per test."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from nurture_lake.config import NurtureConfig, load_config
from nurture_lake.spark import CODEGEN_CACHE_ENTRIES, DATAFRAME_DEBUGGING, local_jars

os.environ["PYSPARK_PYTHON"] = sys.executable  # workers run the test interpreter
os.environ["TZ"] = "UTC"  # collected timestamps come back as naive datetimes in the process time zone
time.tzset()
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with slow tests run first (otherwise in collection order).

    ``make test`` gives each of its two workers one file at a time; starting the long end-to-end files
    early lets both workers finish together instead of one running the last long file alone.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: keeps the order within each group


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """One local Spark session with Delta for the whole run of this pytest worker."""
    warehouse = tmp_path_factory.mktemp("warehouse")
    jars = local_jars()
    assert jars, "run `make setup` first: .jars/ holds the Delta jars"
    session = (
        SparkSession.builder.master("local[2]")
        .appName("nurture_lake-tests")
        .config("spark.jars", ",".join(str(j) for j in jars))
        # Delta's SQL extension and catalog, as in get_spark().
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        # Tiny data: two shuffle partitions avoid hundreds of empty tasks.
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        # No UI, no progress bars: faster start, clean output.
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Timestamps in UTC, as in production.
        .config("spark.sql.session.timeZone", "UTC")
        # Loopback only.
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        # Serial GC and C1-only JIT start the JVM faster for short test jobs (~20 %); a larger code
        # cache keeps C1 from filling it and switching the compiler off in long sessions.
        .config("spark.driver.extraJavaOptions",
                "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m")
        # As in get_spark(): room for every generated class a micro-batch uses (the default 100 thrashes).
        .config("spark.sql.codegen.cache.maxEntries", str(CODEGEN_CACHE_ENTRIES))
        # As in get_spark(): no Python call-site capture on every DataFrame and Column call.
        .config(DATAFRAME_DEBUGGING, "false")
        # Interpreted expressions, no whole-stage codegen: test data is a few rows, so compiling each new
        # plan's Java code (Janino, then JIT) costs more than running it. Measured on 92 tests (features,
        # guardrails, scoring, ingest, policy; two workers): 735.8 s -> 478.4 s, all passing. Jobs that tests
        # start in subprocesses (crash, cluster, Kafka, notebooks) use get_spark() and keep codegen on.
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        # VACUUM with zero retention in erasure tests.
        .config("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        # Delta tables in tests are tiny; skip the per-commit checksum/stats work where possible.
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _clean_spark_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Clear caches and temp views after each test that used Spark."""
    yield
    if "spark" in request.fixturenames:
        session = request.getfixturevalue("spark")
        session.catalog.clearCache()
        # SHOW VIEWS, not catalog.listTables(): with NO_CODEGEN (above) Spark 4.0 fails to decode its
        # catalog.Table rows (EXPRESSION_DECODING_FAILED) once a temp view exists.
        for view in session.sql("SHOW VIEWS").collect():
            if view["isTemporary"]:
                session.catalog.dropTempView(view["viewName"])


@pytest.fixture
def cfg(tmp_path: Path) -> NurtureConfig:
    """The local configuration with every root under this test's temp folder."""
    return load_config(
        "local",
        overrides={
            "storage.lake_root": str(tmp_path / "lake"),
            "storage.checkpoint_root": str(tmp_path / "checkpoints"),
            "storage.landing_root": str(tmp_path / "landing"),
            "storage.report_root": str(tmp_path / "reports"),
            "mlflow.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "mlflow.artifact_root": str(tmp_path / "mlartifacts"),
        },
    )
