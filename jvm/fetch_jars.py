"""Fetch the project's JVM jars with Maven into a git-ignored folder (``make setup``).

Usage: ``python jvm/fetch_jars.py [--group kafka]``. Each group is a pom under ``jvm/``
(``pom.xml`` → ``.jars/``, ``pom-<group>.xml`` → ``.jars/<group>/``). Jars that pyspark already
ships (Scala, Hadoop, Jackson, Parquet, ...) are pruned so Spark's own versions are the only ones
on the classpath. The Delta artifact and the Kafka connector are those of the installed pyspark's Spark
line (``nurture_lake.jvm``). A group already fetched for that line is skipped (a ``.complete`` marker,
holding the line, is written last); one fetched for another line is fetched again.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nurture_lake.jvm import installed_spark_version, kafka_connector_candidates, spark_line

HERE = Path(__file__).resolve().parent
JARS = HERE.parent / ".jars"
_ARTIFACT = re.compile(r"^(.*?)-\d[^-]*(?:-.*)?\.jar$")


def _artifact(name: str) -> str:
    match = _ARTIFACT.match(name)
    return match.group(1) if match else name


def _spark_jar_names() -> set[str]:
    import pyspark  # the venv's pyspark: its jars are Spark's classpath

    return {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}


def fetch(group: str | None, *, prune: bool, jars_root: Path = JARS, spark_version: str | None = None) -> Path:
    """Fetch ``group``'s jars into ``jars_root`` (or its sub-folder) for ``spark_version`` (default: installed)."""
    pom = HERE / (f"pom-{group}.xml" if group else "pom.xml")
    target = jars_root / group if group else jars_root
    marker = target / ".complete"
    spark_version = spark_version or installed_spark_version()
    line = spark_line(spark_version)
    if marker.exists() and marker.read_text().strip() == line:
        print(f"jars: {target} is complete for Spark {line}, nothing to fetch")
        return target
    marker.unlink(missing_ok=True)  # fetched for another line, or never: not complete until the end
    if not shutil.which("mvn"):
        sys.exit("jars: Maven (mvn) is required to fetch the JVM jars; install it (e.g. apt-get install maven)")
    # Only the Kafka group names a Spark release; a mirror may lack it, so earlier releases of the line follow.
    connectors = kafka_connector_candidates(spark_version) if group == "kafka" else [spark_version]
    with tempfile.TemporaryDirectory() as tmp:
        for connector in connectors:
            cmd = [
                "mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                "-DincludeScope=runtime", f"-DoutputDirectory={tmp}",
                f"-Dspark.line={line}", f"-Dspark.kafka.version={connector}",
            ]
            what = f"Spark {line}" + (f", connector {connector}" if group == "kafka" else "")
            print("jars: " + " ".join(cmd[:6]) + f" ({pom.name}, {what})", flush=True)
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode == 0:
                break
            for partial in Path(tmp).glob("*.jar"):
                partial.unlink()
        else:
            sys.exit(f"jars: Maven failed for {pom.name} (tried {', '.join(connectors)}):\n{result.stdout}{result.stderr}")
        spark_names = _spark_jar_names() if prune else set()
        target.mkdir(parents=True, exist_ok=True)
        for stale in target.glob("*.jar"):  # a changed pom replaces the whole group
            stale.unlink()
        kept = 0
        for jar in sorted(Path(tmp).glob("*.jar")):
            if _artifact(jar.name) in spark_names:
                continue
            shutil.copy2(jar, target / jar.name)
            kept += 1
    marker.write_text(f"{line}\n")
    print(f"jars: {kept} jars in {target}")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--group", default=None, help="pom-<group>.xml into .jars/<group>/")
    parser.add_argument("--no-prune", action="store_true", help="keep jars that pyspark already ships")
    args = parser.parse_args()
    fetch(args.group, prune=not args.no_prune)


if __name__ == "__main__":
    main()
