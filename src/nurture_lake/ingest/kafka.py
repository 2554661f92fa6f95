"""Kafka as the event source: the same landing contract, one topic per region.

Records keep their Kafka lineage in bronze (topic, partition, offset, key); ``source_file`` is set
to ``kafka://<topic>/<partition>/<offset>`` so every silver row names its exact origin and the
exactly-once logic (replays are not duplicates) works as it does for files.
"""

from __future__ import annotations

import os

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from nurture_lake.config import ConfigError, KafkaConfig


def kafka_options(kafka: KafkaConfig, *, region: str) -> dict[str, str]:
    """Spark Kafka source options from configuration (secrets read from the environment)."""
    options = {
        "kafka.bootstrap.servers": kafka.bootstrap_servers,
        "subscribe": kafka.topic_pattern.format(region=region),
        "startingOffsets": kafka.starting_offsets,
        "kafka.security.protocol": kafka.security_protocol,
        # Offsets removed by retention are reported, not silently skipped.
        "failOnDataLoss": "true",
    }
    if kafka.max_offsets_per_trigger is not None:
        options["maxOffsetsPerTrigger"] = str(kafka.max_offsets_per_trigger)
    if kafka.sasl_mechanism:
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
    if kafka.sasl_jaas_config_env:
        jaas = os.environ.get(kafka.sasl_jaas_config_env)
        if not jaas:
            raise ConfigError(f"kafka.sasl_jaas_config_env: environment variable {kafka.sasl_jaas_config_env} is not set")
        options["kafka.sasl.jaas.config"] = jaas
    options.update(kafka.options)
    return options


def kafka_records(records: DataFrame) -> DataFrame:
    """Kafka source rows → the raw-row shape ingest expects (value, source_file, kafka_*)."""
    return records.select(
        F.col("value").cast("string").alias("value"),
        F.format_string("kafka://%s/%d/%d", F.col("topic"), F.col("partition"), F.col("offset")).alias("source_file"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").cast("bigint").alias("kafka_partition"),
        F.col("offset").cast("bigint").alias("kafka_offset"),
        F.col("key").cast("string").alias("kafka_key"),
    )


def kafka_stream(spark: SparkSession, kafka: KafkaConfig, *, region: str) -> DataFrame:
    """The region's topic as a stream of raw rows."""
    reader = spark.readStream.format("kafka")
    for key, value in kafka_options(kafka, region=region).items():
        reader = reader.option(key, value)
    return kafka_records(reader.load())
