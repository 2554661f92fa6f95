"""A real single-node Apache Kafka broker (KRaft mode) on loopback, from the jars in ``.jars/kafka-broker``.

Used by the Kafka tests and benchmark: not a mock, the same broker that runs in production, started
in its own JVM with a fresh (or kept) log directory.

Example::

    with KafkaBroker(tmp_path / "kafka") as broker:
        broker.bootstrap_servers   # '127.0.0.1:<port>'
        broker.restart()           # stop and start again with the same data
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from nurture_lake.devtools.logs import log_tail
from nurture_lake.spark import JARS_DIR

BROKER_JARS = JARS_DIR / "kafka-broker"


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_cluster_id(draw: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A random KRaft cluster id: a UUID in unpadded URL-safe base64 (22 characters) that does not start with
    ``-``. Kafka's own ``random-uuid`` skips those too: ``kafka-storage format -t -…`` reads the id as an
    option and fails ("argument --cluster-id/-t: expected one argument"), one draw in 64."""
    while True:
        candidate = base64.urlsafe_b64encode(draw()).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class KafkaBroker:
    """Start, stop and restart a KRaft broker+controller on 127.0.0.1."""

    def __init__(self, workdir: Path, *, partitions: int = 2, start_timeout_s: float = 120.0) -> None:
        if not any(BROKER_JARS.glob("kafka_*.jar")):
            raise RuntimeError(f"no Kafka broker jars in {BROKER_JARS}: run `make setup`")
        self.workdir = Path(workdir)
        self.port = free_port()
        self.controller_port = free_port()
        self.partitions = partitions
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._java = shutil.which("java") or "java"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def _config(self) -> Path:
        return self.workdir / "server.properties"

    def _classpath(self) -> str:
        return str(BROKER_JARS / "*")

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": str(self.partitions),
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        self._config.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    @property
    def _log_config(self) -> Path:
        return self.workdir / "log4j2.properties"

    def _write_log_config(self) -> None:
        """INFO and above to stdout (that is, broker.log): a start that fails says why there."""
        self._log_config.write_text(
            "appender.out.type = Console\n"
            "appender.out.name = out\n"
            "appender.out.layout.type = PatternLayout\n"
            "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.out.ref = out\n"
        )

    def _java_cmd(self, main_class: str, *args: str) -> list[str]:
        return [self._java, "-Xmx512m", "-XX:+UseSerialGC", f"-Dlog4j2.configurationFile={self._log_config}",
                "-cp", self._classpath(), main_class, *args]

    def _format(self) -> None:
        result = subprocess.run(
            self._java_cmd("kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(self._config)),
            capture_output=True, text=True, timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kafka storage format failed: {result.stdout}{result.stderr}")

    def start(self) -> KafkaBroker:
        """Start the broker (formatting its storage the first time) and wait until it accepts connections."""
        if not self._config.exists():
            # The ports were chosen when this object was made; another process may hold one by now.
            # (A restart keeps its ports: the controller quorum and the clients know them.)
            while self.port == self.controller_port or _port_open(self.port) or _port_open(self.controller_port):
                self.port, self.controller_port = free_port(), free_port()
            self._write_config()
            self._write_log_config()
            self._format()
        log = (self.workdir / "broker.log").open("ab")
        self._proc = subprocess.Popen(
            self._java_cmd("kafka.Kafka", str(self._config)), stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "KAFKA_HEAP_OPTS": "-Xmx512m"},
        )
        deadline = time.time() + self.start_timeout_s
        while time.time() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"Kafka broker exited with {self._proc.returncode}\n"
                                   f"{log_tail(self.workdir / 'broker.log')}")
            if _port_open(self.port):
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"Kafka broker did not open port {self.port} within {self.start_timeout_s} s")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker: a clean shutdown (SIGTERM) or, with ``kill``, SIGKILL."""
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        """Stop and start again on the same ports and data."""
        self.stop()
        self.start()

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
