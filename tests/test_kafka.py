"""Kafka source against a real Apache Kafka broker (KRaft, single node, loopback)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from bench import bench_kafka
from bench.bench_ingest import bench_config
from nurture_lake.config import NurtureConfig
from nurture_lake.devtools import KafkaBroker
from nurture_lake.devtools.kafka_broker import new_cluster_id
from nurture_lake.ingest import IngestTables, kafka_stream, run_ingest
from nurture_lake.tables import Lake
from tests.test_ingest import event

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with KafkaBroker(tmp_path_factory.mktemp("kafka")) as running:
        yield running


def produce(spark: SparkSession, broker: KafkaBroker, topic: str, values: list[str]) -> None:
    """Publish with Spark's own Kafka sink (keys = event ids where present)."""
    rows = [(json.loads(v).get("event_id") if v.startswith("{") and v.endswith("}") else None, v) for v in values]
    df = spark.createDataFrame(rows, "key string, value string")
    # Not idempotent: after `test_broker_restart_mid_stream` a CI run's broker refused a later write with
    # OutOfOrderSequenceException for producer id 0 (Spark caches its producers across writes). A resent
    # record would be a duplicate event id, which ingest drops as it must for any source.
    (df.write.format("kafka").option("kafka.bootstrap.servers", broker.bootstrap_servers)
     .option("kafka.enable.idempotence", "false").option("kafka.acks", "all").option("topic", topic).save())


def kafka_cfg(cfg: NurtureConfig, broker: KafkaBroker, topic_prefix: str) -> NurtureConfig:
    return cfg.model_copy(update={"kafka": cfg.kafka.model_copy(update={
        "bootstrap_servers": broker.bootstrap_servers, "topic_pattern": topic_prefix + ".{region}.events",
    })})


def test_a_cluster_id_never_starts_with_a_dash() -> None:
    """A draw whose id would start with "-" (first byte 0xF8: six bits of 62) is skipped; the next one is used."""
    draws = iter([bytes([0xF8]) + bytes(15), bytes([0x10]) + bytes(15)])
    assert new_cluster_id(lambda: next(draws)) == "EAAAAAAAAAAAAAAAAAAAAA"
    ids = [new_cluster_id() for _ in range(2_000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids) and len(set(ids)) == len(ids)


def test_kafka_flow_with_lineage_and_quarantine(spark: SparkSession, cfg: NurtureConfig, broker: KafkaBroker) -> None:
    cfg = kafka_cfg(cfg, broker, "flow")
    lake = Lake(cfg)
    good = [json.dumps(event(f"k{i}")) for i in range(20)]
    produce(spark, broker, "flow.us.events", [*good, '{"event_id": "broken', json.dumps(event("k3"))])

    counts = run_ingest(spark, lake, "us", source=kafka_stream(spark, cfg.kafka, region="us"),
                        source_name="kafka", progress=False)
    assert counts.quarantine == {"malformed_json": 1, "duplicate_event_id": 1}

    tables = IngestTables.for_region(lake, "us")
    assertDataFrameEqual(tables.silver.read(spark).select("event_id"), [Row(event_id=f"k{i}") for i in range(20)])
    bronze = tables.bronze.read(spark)
    # Kafka lineage is kept for every record: topic, partition, offset, key; offsets are unique per partition.
    assert bronze.where(F.col("kafka_topic") != "flow.us.events").count() == 0
    assert bronze.select("kafka_partition", "kafka_offset").distinct().count() == 22
    assertDataFrameEqual(
        bronze.where("kafka_key = 'k5'").select("kafka_key", F.get_json_object("value", "$.event_id").alias("id")),
        [Row(kafka_key="k5", id="k5")],
    )
    quarantined = tables.quarantine.read(spark).select("reason", F.col("kafka_offset").isNotNull().alias("has_offset"),
                                                      F.col("source_file").startswith("kafka://flow.us.events/").alias("lineage"))
    assertDataFrameEqual(quarantined, [Row(reason="malformed_json", has_offset=True, lineage=True),
                                       Row(reason="duplicate_event_id", has_offset=True, lineage=True)])
    # A rerun from the checkpoint reads nothing new.
    again = run_ingest(spark, lake, "us", source=kafka_stream(spark, cfg.kafka, region="us"),
                       source_name="kafka", progress=False)
    assert again.silver == 0


def test_broker_restart_mid_stream(spark: SparkSession, cfg: NurtureConfig, broker: KafkaBroker) -> None:
    cfg = kafka_cfg(cfg, broker, "restart")
    lake = Lake(cfg)
    topic = "restart.us.events"
    produce(spark, broker, topic, [json.dumps(event(f"a{i}")) for i in range(30)])
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_ingest(spark, lake, "us", once=False, timeout_s=150,
                       source=kafka_stream(spark, cfg.kafka, region="us"), source_name="kafka", progress=False)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    tables = IngestTables.for_region(lake, "us")
    _wait_for(lambda: tables.silver.exists(spark) and tables.silver.read(spark).count() >= 30, 120)
    broker.restart()  # the stream keeps running while the broker goes away and comes back
    produce(spark, broker, topic, [json.dumps(event(f"b{i}")) for i in range(30)])
    _wait_for(lambda: tables.silver.read(spark).count() >= 60, 140)
    for query in spark.streams.active:
        query.stop()
    worker.join()
    assert not errors, errors
    expected = [Row(event_id=f"{p}{i}") for p in "ab" for i in range(30)]
    assertDataFrameEqual(tables.silver.read(spark).select("event_id"), expected)


def test_job_kill_and_restart_no_loss_no_duplicate(
    spark: SparkSession, cfg: NurtureConfig, broker: KafkaBroker, tmp_path: Path
) -> None:
    topic_prefix = "killed"
    produce(spark, broker, f"{topic_prefix}.us.events", [json.dumps(event(f"c{i}")) for i in range(200)])
    s = cfg.storage
    args = [
        sys.executable, "-m", "nurture_lake.cli", "ingest", "--source", "kafka", "--region", "us",
        "--set", f"storage.lake_root={s.lake_root}", "--set", f"storage.checkpoint_root={s.checkpoint_root}",
        "--set", f"storage.landing_root={s.landing_root}",
        "--set", f"kafka.bootstrap_servers={broker.bootstrap_servers}",
        "--set", f"kafka.topic_pattern={topic_prefix}.{{region}}.events",
        "--set", "kafka.max_offsets_per_trigger=40", "--set", "ingest.processing_time=0 seconds",
    ]
    env = {**os.environ, "NURTURE_LAKE_SPARK_LOG_LEVEL": "ERROR"}
    log_path = tmp_path / "job.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([*args, "--continuous"], stdout=log, stderr=log, env=env)
        _wait_for(lambda: log_path.read_text().count("raw →") >= 1, 600)
        time.sleep(0.7)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = subprocess.run([*args, "--once"], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    tables = IngestTables.for_region(Lake(cfg), "us")
    assertDataFrameEqual(tables.silver.read(spark).select("event_id"), [Row(event_id=f"c{i}") for i in range(200)])
    assert tables.bronze.read(spark).select("kafka_partition", "kafka_offset").distinct().count() == 200
    assert tables.bronze.read(spark).count() == 200


def _wait_for(condition: object, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"condition not met within {timeout_s} s")


def test_kafka_benchmark_ingests_the_same_events_from_files_and_from_kafka(spark: SparkSession, tmp_path: Path) -> None:
    root = tmp_path / "bench"
    result = bench_kafka.run(4_000, root=root)
    cols = ["event_id", "event_type", "occurred_at", "region", F.to_json("identifiers").alias("identifiers"), "channel",
            "decision_id", F.to_json("properties").alias("properties"), "schema_version"]  # all but the lineage
    silver = {name: Lake(bench_config(root.resolve() / name)).table("us", "silver", "events").read(spark).select(cols)
              for name in ("files", "kafka", "files_warm")}
    assert silver["files"].count() == result["silver_files"] > 1_000
    assertDataFrameEqual(silver["kafka"], silver["files"])
    assertDataFrameEqual(silver["files_warm"], silver["files"])
    # The ratio is of the unrounded times: the warm file ingest's over Kafka's.
    assert result["ratio_kafka_vs_files"] == pytest.approx(result["file_ingest_s"] / result["kafka_ingest_s"], rel=0.01)
