"""The local Kafka broker harness: it logs, avoids taken ports and says why a start failed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from nurture_lake.devtools import KafkaBroker


def test_a_port_taken_after_the_broker_was_made_is_not_used(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path / "kafka")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", broker.port))
        squatter.listen()
        taken = broker.port
        with broker:
            assert broker.port != taken
            assert f"127.0.0.1:{broker.port}" == broker.bootstrap_servers
    assert "Kafka Server started" in (tmp_path / "kafka" / "broker.log").read_text()


def test_a_broker_that_exits_at_start_fails_with_its_log(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    broker.stop()
    config = tmp_path / "kafka" / "server.properties"
    config.write_text(config.read_text().replace("node.id=1", "node.id=not-a-number"))
    ending = r"(?s)Kafka broker exited with \d+\n--- last lines of .*broker\.log ---"
    with pytest.raises(RuntimeError, match=ending) as failed:
        broker.start()
    assert "Invalid value not-a-number" in str(failed.value)  # the broker's own reason, from its log
