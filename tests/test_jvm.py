"""The JVM artifacts follow the installed pyspark's Spark line: coordinates, the jar fetch, the check."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pyspark
import pytest

from nurture_lake.jvm import (
    check_jars_match,
    delta_jar_line,
    delta_package,
    installed_spark_version,
    kafka_connector_candidates,
    kafka_package,
    spark_line,
)
from nurture_lake.spark import local_jars

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("version", "delta", "kafka"), [
    ("4.0.5", "io.delta:delta-spark_4.0_2.13:4.4.0", "org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.5"),
    ("4.1.4", "io.delta:delta-spark_4.1_2.13:4.4.0", "org.apache.spark:spark-sql-kafka-0-10_2.13:4.1.4"),
    ("4.2.0", "io.delta:delta-spark_4.2_2.13:4.4.0", "org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0"),
])
def test_coordinates_follow_the_spark_line(version: str, delta: str, kafka: str) -> None:
    assert (delta_package(version), kafka_package(version)) == (delta, kafka)


@pytest.mark.parametrize("version", ["3.5.1", "4.3.0", "dev"])
def test_a_line_delta_has_no_build_for_is_refused_by_name(version: str) -> None:
    with pytest.raises(RuntimeError, match=r"Delta 4\.4\.0 is built for Spark 4\.0, 4\.1, 4\.2 only"):
        delta_package(version)


def test_setup_tries_the_release_then_earlier_ones_of_its_line() -> None:
    assert kafka_connector_candidates("4.1.4") == ["4.1.4", "4.1.3", "4.1.2", "4.1.1", "4.1.0"]
    assert kafka_connector_candidates("4.2.0") == ["4.2.0"]


def test_installed_version_is_the_running_one() -> None:
    assert installed_spark_version() == pyspark.__version__


def test_delta_jar_line_reads_the_artifact_name() -> None:
    names = ["delta-storage-4.4.0.jar", "delta-spark_4.2_2.13-4.4.0.jar", "delta-kernel-api-4.4.0.jar"]
    assert delta_jar_line(Path(n) for n in names) == "4.2"
    assert delta_jar_line([Path("delta-spark_2.13-4.4.0.jar")]) == "default"
    assert delta_jar_line([Path("delta-storage-4.4.0.jar")]) is None


def test_a_jar_folder_of_another_line_is_refused_with_the_fix(tmp_path: Path) -> None:
    running = spark_line(pyspark.__version__)
    other = next(line for line in ("4.0", "4.1", "4.2") if line != running)
    (tmp_path / f"delta-spark_{other}_2.13-4.4.0.jar").write_bytes(b"")
    with pytest.raises(RuntimeError, match=rf"Delta for Spark {other}, but pyspark is .*rm -rf \.jars && make setup"):
        local_jars(tmp_path)
    (tmp_path / f"delta-spark_{other}_2.13-4.4.0.jar").unlink()
    (tmp_path / f"delta-spark_{running}_2.13-4.4.0.jar").write_bytes(b"")
    assert [p.name for p in local_jars(tmp_path, groups=())] == [f"delta-spark_{running}_2.13-4.4.0.jar"]
    check_jars_match([], pyspark.__version__)  # no Delta jar: nothing to compare (the packages route)
    with pytest.raises(RuntimeError, match=r"Delta's default build \(delta-spark_2\.13, no line in its name\)"):
        check_jars_match([Path("delta-spark_2.13-4.4.0.jar")], pyspark.__version__)


def test_the_setup_jars_are_the_running_lines() -> None:
    assert delta_jar_line(local_jars()) == spark_line(pyspark.__version__)


def _fetch_jars() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_jars", ROOT / "jvm" / "fetch_jars.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("mvn") is None, reason="needs Maven, as make setup does")
@pytest.mark.timeout(600)
def test_fetch_resolves_delta_for_the_asked_line_and_refetches_when_it_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fetch = _fetch_jars().fetch
    names = lambda: sorted(p.name for p in tmp_path.glob("delta-spark*.jar"))  # noqa: E731
    fetch(None, prune=True, jars_root=tmp_path, spark_version="4.2.0")
    assert names() == ["delta-spark_4.2_2.13-4.4.0.jar"]
    assert (tmp_path / ".complete").read_text() == "4.2\n"
    assert not list(tmp_path.glob("scala-library-*.jar"))  # pyspark ships Scala: pruned
    fetch(None, prune=True, jars_root=tmp_path, spark_version="4.2.1")
    assert "complete for Spark 4.2, nothing to fetch" in capsys.readouterr().out
    fetch(None, prune=True, jars_root=tmp_path, spark_version="4.0.5")
    assert names() == ["delta-spark_4.0_2.13-4.4.0.jar"]
    assert (tmp_path / ".complete").read_text() == "4.0\n"
    # A mirror may lack the exact release (the one here has no 4.1.4 connector): an earlier 4.1 one stands in.
    fetch("kafka", prune=True, jars_root=tmp_path, spark_version="4.1.4")
    connectors = [p.name for p in (tmp_path / "kafka").glob("spark-sql-kafka-*.jar")]
    assert len(connectors) == 1 and connectors[0].startswith("spark-sql-kafka-0-10_2.13-4.1."), connectors
