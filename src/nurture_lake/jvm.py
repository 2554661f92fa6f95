"""Which JVM artifacts match the running Spark: Delta and Spark's Kafka connector, per Spark line.

Delta publishes one artifact per Spark line (``io.delta:delta-spark_<line>_2.13``), and Spark's
connectors follow Spark's own version. Both ``make setup`` (``jvm/fetch_jars.py``, through Maven) and
``get_spark()``'s ``spark.jars.packages`` fallback take their coordinates from here, so the jars always
match the installed pyspark. Only version strings: importing this module starts no JVM.

Example::

    spark_line("4.2.0")                 # '4.2'
    delta_package("4.0.5")              # 'io.delta:delta-spark_4.0_2.13:4.4.0'
    kafka_package("4.2.0")              # 'org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0'
    kafka_connector_candidates("4.0.2") # ['4.0.2', '4.0.1', '4.0.0']: what make setup tries, in order
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DELTA_VERSION = "4.4.0"
"""Delta Lake release (the Python ``delta-spark`` pin in ``setup.py`` is the same)."""
DELTA_SPARK_LINES: tuple[str, ...] = ("4.0", "4.1", "4.2")
"""Spark lines Delta 4.4.0 publishes an artifact for (``delta-spark_<line>_2.13``)."""
SCALA_BINARY = "2.13"

_DELTA_JAR = re.compile(rf"^delta-spark_(?:(\d+\.\d+)_)?{re.escape(SCALA_BINARY)}-.*\.jar$")


def installed_spark_version() -> str:
    """The installed pyspark's version, read from its package metadata (no import of pyspark)."""
    try:
        return version("pyspark")
    except PackageNotFoundError:
        raise RuntimeError("pyspark is not installed; run `make setup` (or pip install the `local` extra)") from None


def spark_line(spark_version: str) -> str:
    """``major.minor`` of a Spark version, e.g. ``'4.0'`` for ``'4.0.5'``; refuses lines Delta has no build for."""
    match = re.match(r"^(\d+)\.(\d+)", spark_version)
    line = f"{match.group(1)}.{match.group(2)}" if match else spark_version
    if line not in DELTA_SPARK_LINES:
        raise RuntimeError(
            f"pyspark {spark_version} is on Spark line {line}; Delta {DELTA_VERSION} is built for Spark "
            f"{', '.join(DELTA_SPARK_LINES)} only. Install a pyspark of one of those lines."
        )
    return line


def delta_package(spark_version: str) -> str:
    """Maven coordinates of Delta built for ``spark_version``'s line."""
    return f"io.delta:delta-spark_{spark_line(spark_version)}_{SCALA_BINARY}:{DELTA_VERSION}"


def kafka_package(spark_version: str) -> str:
    """Maven coordinates of Spark's Kafka source for ``spark_version`` (the same release, as Spark ships it)."""
    spark_line(spark_version)
    return f"org.apache.spark:spark-sql-kafka-0-10_{SCALA_BINARY}:{spark_version}"


def kafka_connector_candidates(spark_version: str) -> list[str]:
    """Connector releases to try, best first: ``spark_version`` itself, then the earlier releases of its line.

    Spark keeps binary compatibility within a line, and a Maven mirror may lack some releases (the one
    here has 4.0.0 but not 4.0.5, 4.1.1 but not 4.1.4). ``'4.1.4'`` → ``['4.1.4', '4.1.3', '4.1.2', '4.1.1', '4.1.0']``.
    """
    line = spark_line(spark_version)
    match = re.match(r"^\d+\.\d+\.(\d+)$", spark_version)
    if match is None:
        return [spark_version]
    return [f"{line}.{patch}" for patch in range(int(match.group(1)), -1, -1)]


def delta_jar_line(jars: Iterable[Path]) -> str | None:
    """The Spark line the Delta jar among ``jars`` was built for (``None`` when there is no Delta jar).

    ``delta-spark_4.0_2.13-4.4.0.jar`` → ``'4.0'``. The line-less ``delta-spark_2.13`` artifact is
    Delta's default build, whose line is not in its name: reported as ``'default'``.
    """
    for jar in jars:
        match = _DELTA_JAR.match(jar.name)
        if match:
            return match.group(1) or "default"
    return None


def check_jars_match(jars: Iterable[Path], spark_version: str) -> None:
    """Refuse a jar folder whose Delta was fetched for another Spark line than the running one.

    A mismatch fails later with a ``NoSuchMethodError`` deep inside a Delta write; this says why at once.
    """
    found = delta_jar_line(jars)
    wanted = spark_line(spark_version)
    if found is not None and found != wanted:
        held = "Delta's default build (delta-spark_2.13, no line in its name)" if found == "default" else (
            f"Delta for Spark {found}")
        raise RuntimeError(
            f"the jar folder holds {held}, but pyspark is {spark_version} (line {wanted}); "
            "fetch matching jars: `rm -rf .jars && make setup` (or point NURTURE_LAKE_JARS at a matching folder)"
        )
