"""Local stand-ins for production services, used by tests, benchmarks and the demo."""

from nurture_lake.devtools.kafka_broker import KafkaBroker, free_port

__all__ = ["KafkaBroker", "free_port"]
