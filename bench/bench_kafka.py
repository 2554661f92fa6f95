"""Kafka ingest throughput versus file ingest of the same simulated events, in the same run.

``python -m bench.bench_kafka --events 1000000``: simulates the events once, publishes every landing line
of region ``us`` to a topic on a real local Kafka broker (KRaft), then ingests the same lines three times —
from the files, from Kafka, and from the files again — into fresh lakes, timing only the ingest. The first
run pays the JVM's warm-up, so Kafka is compared with the second file run (``ratio_kafka_vs_files``), which
comes after it in the same JVM; ``ratio_kafka_vs_cold_files`` is against the first.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from bench.bench_ingest import bench_config, simulate, warm_config
from nurture_lake.devtools import KafkaBroker
from nurture_lake.ingest import kafka_stream, run_ingest
from nurture_lake.spark import get_spark
from nurture_lake.tables import Lake

BENCH_ROOT = Path(".bench") / "kafka"


def run(events: int = 1_000_000, *, root: Path = BENCH_ROOT) -> dict[str, Any]:
    """Ingest about half of ``events`` simulated lines (region ``us``) from files and from Kafka under ``root``."""
    shutil.rmtree(root, ignore_errors=True)
    root = root.resolve()
    files_cfg = bench_config(root / "files")
    simulate(files_cfg, int(events * 2.1))  # both regions are simulated; region us gets about half
    spark = get_spark(files_cfg, app_name="bench.kafka")
    region = "us"
    landing = Lake(files_cfg).landing(region)
    lines = spark.read.text(str(landing)).count()

    with KafkaBroker(root / "broker", partitions=2) as broker:
        topic = f"bench.{region}.events"
        started = time.perf_counter()
        spark.read.text(str(landing)).write.format("kafka").option(
            "kafka.bootstrap.servers", broker.bootstrap_servers).option("topic", topic).save()
        publish_s = time.perf_counter() - started

        t0 = time.perf_counter()
        file_counts = run_ingest(spark, Lake(files_cfg), region, progress=False)
        files_s = time.perf_counter() - t0

        kafka_cfg = bench_config(root / "kafka")
        kafka_cfg = kafka_cfg.model_copy(update={"kafka": kafka_cfg.kafka.model_copy(update={
            "bootstrap_servers": broker.bootstrap_servers, "topic_pattern": "bench.{region}.events"})})
        t0 = time.perf_counter()
        kafka_counts = run_ingest(spark, Lake(kafka_cfg), region, source=kafka_stream(spark, kafka_cfg.kafka, region=region),
                                  source_name="kafka", progress=False)
        kafka_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    warm_counts = run_ingest(spark, Lake(warm_config(files_cfg, root / "files_warm")), region, progress=False)
    warm_s = time.perf_counter() - t0

    result = {
        "lines": lines,
        "publish_s": round(publish_s, 2),
        "file_ingest_cold_s": round(files_s, 2),
        "kafka_ingest_s": round(kafka_s, 2),
        "file_ingest_s": round(warm_s, 2),
        "file_events_per_s": round(lines / warm_s),
        "kafka_events_per_s": round(lines / kafka_s),
        "ratio_kafka_vs_files": round(warm_s / kafka_s, 3),
        "ratio_kafka_vs_cold_files": round(files_s / kafka_s, 3),
        "silver_files": file_counts.silver,
        "silver_files_again": warm_counts.silver,
        "silver_kafka": kafka_counts.silver,
    }
    for key, value in result.items():
        print(f"  {key:<24} {value}")
    return result


def bench(scale: float = 1.0) -> dict[str, Any]:
    return run(int(1_000_000 * scale))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    run(parser.parse_args().events)
