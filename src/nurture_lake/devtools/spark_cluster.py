"""A real Spark standalone cluster (one master, one worker) on loopback, from the pyspark installation.

Not a mock: the same ``Master`` and ``Worker`` daemons a production standalone cluster runs, each in
its own JVM, with ``SPARK_HOME`` pointing at the pyspark package (its ``jars/`` and ``bin/``).
Used by the cluster test to ``spark-submit`` the jobs exactly as a scheduler would.

Example::

    with SparkStandaloneCluster(tmp_path / "cluster") as cluster:
        cluster.master_url                       # 'spark://127.0.0.1:<port>'
        subprocess.run([str(cluster.spark_submit), "--master", cluster.master_url, "jobs/ingest.py", ...])
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pyspark

from nurture_lake.devtools.kafka_broker import free_port

__all__ = ["SPARK_HOME", "SparkStandaloneCluster"]

SPARK_HOME = Path(pyspark.__file__).resolve().parent
"""The pyspark package folder: it holds ``jars/`` and ``bin/spark-submit`` like a Spark distribution."""


class SparkStandaloneCluster:
    """Start and stop a standalone master and one worker bound to 127.0.0.1."""

    def __init__(
        self,
        workdir: Path,
        *,
        cores: int = 1,
        memory: str = "1g",
        daemon_heap: str = "256m",
        start_timeout_s: float = 120.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.cores = cores
        self.memory = memory
        self.daemon_heap = daemon_heap
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.master_ui_port = free_port()
        self.worker_ui_port = free_port()
        self._java = shutil.which("java") or "java"
        self._master: subprocess.Popen[bytes] | None = None
        self._worker: subprocess.Popen[bytes] | None = None

    @property
    def master_url(self) -> str:
        """``spark://127.0.0.1:<port>``."""
        return f"spark://127.0.0.1:{self.port}"

    @property
    def spark_submit(self) -> Path:
        """``<pyspark>/bin/spark-submit``."""
        return SPARK_HOME / "bin" / "spark-submit"

    @property
    def master_log(self) -> Path:
        return self.workdir / "master.log"

    @property
    def worker_log(self) -> Path:
        return self.workdir / "worker.log"

    def env(self) -> dict[str, str]:
        """Environment for the daemons and for ``spark-submit``: SPARK_HOME and loopback-only networking."""
        return {
            **os.environ,
            "SPARK_HOME": str(SPARK_HOME),
            "SPARK_LOCAL_IP": "127.0.0.1",          # never resolve the host name to a public interface
            # The launcher that builds executor commands needs it outside a Spark distribution's scripts.
            "SPARK_SCALA_VERSION": "2.13",
            "SPARK_LOCAL_DIRS": str(self.workdir / "local"),
            "SPARK_LOG_DIR": str(self.workdir / "logs"),
        }

    def _daemon(self, main_class: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
        cmd = [
            self._java, f"-Xmx{self.daemon_heap}", "-XX:+UseSerialGC",
            "-cp", str(SPARK_HOME / "jars" / "*"), main_class, *args,
        ]
        with log.open("ab") as out:
            return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env())

    def _wait_for(self, log: Path, needle: str, proc: subprocess.Popen[bytes], what: str) -> None:
        deadline = time.time() + self.start_timeout_s
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}; see {log}")
            if log.exists() and needle in log.read_text(errors="replace"):
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{what} not ready within {self.start_timeout_s} s (no {needle!r} in {log})")

    def start(self) -> SparkStandaloneCluster:
        """Start the master, then the worker; return once the master's log says the worker registered."""
        for folder in ("local", "logs", "work"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        self._master = self._daemon(
            "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.master_ui_port),
            log=self.master_log,
        )
        self._wait_for(self.master_log, "I have been elected leader", self._master, "Spark master")
        self._worker = self._daemon(
            "org.apache.spark.deploy.worker.Worker", self.master_url,
            "--host", "127.0.0.1", "--cores", str(self.cores), "--memory", self.memory,
            "--webui-port", str(self.worker_ui_port), "--work-dir", str(self.workdir / "work"),
            log=self.worker_log,
        )
        self._wait_for(self.master_log, "Registering worker 127.0.0.1", self._master, "Spark worker registration")
        return self

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """Stop the worker (it kills its executors), then the master."""
        self._terminate(self._worker)
        self._terminate(self._master)
        self._worker = self._master = None

    def __enter__(self) -> SparkStandaloneCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
