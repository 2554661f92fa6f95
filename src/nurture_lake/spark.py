"""One way to get a Spark session with Delta Lake.

``get_spark()`` reuses an active session (Databricks, notebooks, ``spark-submit``) and otherwise
builds a local one. Delta's JVM jars come from the project folder ``.jars/`` filled by
``make setup`` (Maven); where that folder is absent (a user elsewhere) the standard
``spark.jars.packages`` route resolves the same pinned coordinates. Either way the Delta and Kafka
artifacts are those of the running pyspark's Spark line (``nurture_lake.jvm``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

from nurture_lake.config import PROJECT_ROOT, NurtureConfig
from nurture_lake.jvm import check_jars_match, delta_package, kafka_package

SPARK_JAR_GROUPS: tuple[str, ...] = ("kafka",)
"""Sub-folders of ``.jars/`` that go on Spark's classpath (``kafka-broker`` runs in its own JVM)."""
JARS_DIR = Path(os.environ.get("NURTURE_LAKE_JARS", PROJECT_ROOT / ".jars"))
"""Folder of jars fetched by ``make setup``; override with ``NURTURE_LAKE_JARS``."""


CODEGEN_CACHE_ENTRIES = 2000
"""Generated classes Spark keeps compiled (its default, 100, is half of what one ingest micro-batch uses)."""


DATAFRAME_DEBUGGING = "spark.python.sql.dataFrameDebugging.enabled"
"""A static Spark setting, off in sessions ``get_spark`` builds. When on (Spark's default), every DataFrame and
Column call walks the Python stack for its call site and makes about five more JVM round trips to record it,
so error messages can name the line that built a failing expression. Our jobs build plans of thousands of
expressions (features, guardrails, validation), where that made two thirds of the JVM calls. Set it to
``"true"`` in ``spark.extra_conf`` to get call sites back while debugging."""


def local_jars(jars_dir: Path = JARS_DIR, *, groups: tuple[str, ...] = SPARK_JAR_GROUPS) -> list[Path]:
    """The Delta jars in ``jars_dir`` (top level) plus the named sub-folders (the Kafka connector).

    Refuses a folder fetched for another Spark line than the running pyspark's.
    """
    found = sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []
    for group in groups:
        found += sorted((jars_dir / group).glob("*.jar"))
    check_jars_match(found, pyspark.__version__)
    return found


def _base_builder(app_name: str, master: str) -> SparkSession.Builder:
    # Workers must run this interpreter, or they may start a system Python without our packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return (
        SparkSession.builder.appName(app_name)
        .master(master)
        # Delta's SQL extensions (MERGE, time travel, VACUUM) and catalog for path tables.
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        # All timestamps are handled and stored in UTC; local time is computed per lead.
        .config("spark.sql.session.timeZone", "UTC")
        .config(DATAFRAME_DEBUGGING, "false")
    )


def get_spark(
    cfg: NurtureConfig | None = None,
    *,
    app_name: str = "nurture_lake",
    master: str | None = None,
    extra_packages: tuple[str, ...] = (),
) -> SparkSession:
    """Return the active Spark session, or build a local one with Delta and the Kafka connector.

    Jars come from ``.jars/`` (``make setup``); where it is absent, ``spark.jars.packages`` resolves
    the same coordinates (plus ``extra_packages``).
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    spark_cfg = cfg.spark if cfg is not None else None
    master = master or os.environ.get("NURTURE_LAKE_MASTER") or (spark_cfg.master if spark_cfg else "local[2]")
    builder = _base_builder(app_name, master)
    jars = local_jars()
    if jars:
        builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    else:
        packages = (delta_package(pyspark.__version__), kafka_package(pyspark.__version__), *extra_packages)
        builder = builder.config("spark.jars.packages", ",".join(packages))

    if master.startswith("local"):
        builder = (
            builder
            # Small shuffles on a 2-core box; clusters override through conf.
            .config("spark.sql.shuffle.partitions", str(spark_cfg.shuffle_partitions if spark_cfg else 4))
            .config("spark.driver.memory", spark_cfg.driver_memory if spark_cfg else "4g")
            # Loopback only: no network lookups of the host name.
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            # No web UI or console progress bars in jobs and tests.
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            # The parallel collector: the serial one stops every thread while one core collects, so
            # the other core idles (1M-event ingest bench: 56.3/58.9/59.0 s against 60.0/61.7/63.6 s
            # serial, GC CPU 4.6-6.5 s against 8.1-8.9 s; the bare copy within noise, 11.4-13.9 s
            # against 13.0-13.4 s). Tests keep the serial collector (faster start). A large code cache
            # keeps the JIT on for the big generated plans (guardrails) — with the default cache the
            # JVM disables its compiler mid-run.
            .config("spark.driver.extraJavaOptions", "-XX:+UseParallelGC -XX:ReservedCodeCacheSize=512m")
            # Generated methods over HotSpot's 8,000-byte limit are never JIT-compiled and run
            # interpreted; past this size Spark evaluates the (JIT-compiled) expressions instead.
            # Ingest validation's first micro-batch measured ~2x faster with it.
            .config("spark.sql.codegen.hugeMethodLimit", "8000")
            # Spark keeps 100 compiled classes by default; one ingest micro-batch (validation, Delta
            # writes, MERGEs) uses ~200, so every batch recompiled them all and the JIT re-optimised
            # the new classes. Measured on a 9k-event batch: 200 → 2 compilations, 7.5 s → 5.5 s.
            .config("spark.sql.codegen.cache.maxEntries", str(CODEGEN_CACHE_ENTRIES))
            # Small local tables: read Delta snapshots with few partitions.
            .config("spark.databricks.delta.snapshotPartitions", "2")
            # Local Delta tables need no retention-period guard for VACUUM in tests and erasure.
            .config("spark.databricks.delta.retentionDurationCheck.enabled", "false")
            .config("spark.sql.warehouse.dir", str(PROJECT_ROOT / ".lake" / "warehouse"))
        )
    if spark_cfg is not None:
        for key, value in spark_cfg.extra_conf.items():
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("NURTURE_LAKE_SPARK_LOG_LEVEL", "WARN"))
    return spark


@contextmanager
def job_group(spark: SparkSession, group: str, description: str) -> Iterator[None]:
    """Label the Spark jobs this thread starts inside the block (Spark UI, event logs, REST API).

    Local properties are per thread, so side-by-side queries (one per region) keep their own labels;
    every property ``setJobGroup`` sets (group, description, interrupt-on-cancel) is restored on exit.
    """
    sc = spark.sparkContext
    keys = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")
    previous = [sc.getLocalProperty(k) for k in keys]
    sc.setJobGroup(group, description)
    try:
        yield
    finally:
        for key, value in zip(keys, previous, strict=True):
            sc.setLocalProperty(key, value)  # type: ignore[arg-type]  # None removes the property
