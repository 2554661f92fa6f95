"""Local stand-ins for production services, used by tests, benchmarks and the demo."""

from nurture_lake.devtools.kafka_broker import KafkaBroker, free_port
from nurture_lake.devtools.spark_cluster import SPARK_HOME, SparkStandaloneCluster

__all__ = ["SPARK_HOME", "KafkaBroker", "SparkStandaloneCluster", "free_port"]
