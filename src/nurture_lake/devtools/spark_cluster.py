"""A real Spark standalone cluster (one master, one worker) on loopback, from the pyspark installation.

Not a mock: the same ``Master`` and ``Worker`` daemons a production standalone cluster runs, each in
its own JVM, with ``SPARK_HOME`` pointing at the pyspark package (its ``jars/`` and ``bin/``).
Used by the cluster test to ``spark-submit`` the jobs exactly as a scheduler would.

Every daemon and every submission runs in its own process group, so :meth:`SparkStandaloneCluster.stop`
also ends what they started (executors, Python workers, the driver's Python process) — also after a
failed start or a submission that timed out.

Example::

    with SparkStandaloneCluster(tmp_path / "cluster") as cluster:
        cluster.master_url                       # 'spark://127.0.0.1:<port>'
        result = cluster.submit(Path("jobs/ingest.py"), "--once", options=["--conf", "spark.cores.max=1"])
        result.returncode, result.output         # spark-submit's exit code and its stdout + stderr
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pyspark

from nurture_lake.devtools.logs import log_tail

__all__ = ["SPARK_HOME", "SparkStandaloneCluster", "SubmitResult"]

SPARK_HOME = Path(pyspark.__file__).resolve().parent
"""The pyspark package folder: it holds ``jars/`` and ``bin/spark-submit`` like a Spark distribution."""


@dataclass(frozen=True)
class SubmitResult:
    """How one ``spark-submit`` ended: exit code, its stdout + stderr, the log file holding them, seconds."""

    returncode: int
    output: str
    log: Path
    seconds: float


def _end_group(proc: subprocess.Popen[bytes], *, grace_s: float) -> None:
    """SIGTERM the process, then SIGKILL its whole process group (children included) after ``grace_s``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:  # the leader is gone or going; anything it started in its group goes too
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


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
        self._master_url: str | None = None
        self._java = shutil.which("java") or "java"
        self._master: subprocess.Popen[bytes] | None = None
        self._worker: subprocess.Popen[bytes] | None = None
        self._submissions: set[subprocess.Popen[bytes]] = set()

    @property
    def master_url(self) -> str:
        """``spark://127.0.0.1:<port>``: the port the master bound and logged (known once :meth:`start` ran)."""
        if self._master_url is None:
            raise RuntimeError("the cluster has no master yet: call start() first")
        return self._master_url

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

    @property
    def running(self) -> bool:
        """Whether both daemons are alive."""
        return all(p is not None and p.poll() is None for p in (self._master, self._worker))

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
            # Serial GC and C1-only JIT: small, quick-starting daemons that only schedule.
            self._java, f"-Xmx{self.daemon_heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-cp", str(SPARK_HOME / "jars" / "*"), main_class, *args,
        ]
        with log.open("ab") as out:
            # Own process group: stop() can end the daemon and everything it launched (executors).
            return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)

    def _wait_for(self, log: Path, pattern: str, what: str, *, since: int = 0) -> re.Match[str]:
        """Poll ``log`` (from character ``since``) until ``pattern`` matches; fail early, with both logs'
        tails, if a daemon exits."""
        needle = re.compile(pattern)
        deadline = time.time() + self.start_timeout_s
        while time.time() < deadline:
            for name, proc in (("master", self._master), ("worker", self._worker)):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{what}: the {name} exited with {proc.returncode}\n{self._log_tails()}")
            found = needle.search(log.read_text(errors="replace"), since) if log.exists() else None
            if found:
                return found
            time.sleep(0.3)
        raise RuntimeError(f"{what}: not ready within {self.start_timeout_s} s (no {pattern!r} in {log})\n"
                           f"{self._log_tails()}")

    def _log_tails(self) -> str:
        return "\n".join(log_tail(log) for log in (self.master_log, self.worker_log))

    def start(self) -> SparkStandaloneCluster:
        """Start the master, then the worker; return once the master's log says the worker registered.

        On any failure whatever was started is stopped before the error propagates.
        """
        for folder in ("local", "logs", "work"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)  # last resort when no one calls stop() (an interpreter exiting normally)
        try:
            # Port 0 everywhere: each daemon binds a port the OS picks at bind time, so no other process can
            # take it between choosing and binding (a master that finds its port taken moves to the next one,
            # and a worker sent to the old one never registers). The master logs the URL it bound.
            # The logs are appended to: only what this start writes counts.
            since = len(self.master_log.read_text(errors="replace")) if self.master_log.exists() else 0
            self._master = self._daemon(
                "org.apache.spark.deploy.master.Master",
                "--host", "127.0.0.1", "--port", "0", "--webui-port", "0",
                log=self.master_log,
            )
            self._master_url = self._wait_for(
                self.master_log, r"Starting Spark master at (spark://127\.0\.0\.1:\d+)", "Spark master",
                since=since).group(1)
            self._wait_for(self.master_log, r"I have been elected leader", "Spark master", since=since)
            self._worker = self._daemon(
                "org.apache.spark.deploy.worker.Worker", self._master_url,
                "--host", "127.0.0.1", "--cores", str(self.cores), "--memory", self.memory,
                "--webui-port", "0", "--work-dir", str(self.workdir / "work"),
                log=self.worker_log,
            )
            self._wait_for(self.master_log, r"Registering worker 127\.0\.0\.1", "Spark worker registration",
                           since=since)
        except BaseException:
            self.stop()
            raise
        return self

    def submit(
        self,
        app: Path,
        *app_args: str,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout_s: float = 600.0,
    ) -> SubmitResult:
        """``spark-submit --master <this cluster> [options] app [app_args]`` and wait for it.

        ``env`` is added to :meth:`env`. stdout and stderr go to ``<workdir>/submit-<app stem>.log``
        (a driver's Python output reaches spark-submit's stdout). On timeout the submission and
        everything it started are killed and ``TimeoutError`` is raised.
        """
        if not self.running:
            raise RuntimeError("the cluster is not running: call start() first")
        log = self.workdir / f"submit-{Path(app).stem}.log"
        cmd = [str(self.spark_submit), "--master", self.master_url, *options, str(app), *app_args]
        began = time.monotonic()
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                    env={**self.env(), **(env or {})}, start_new_session=True)
        self._submissions.add(proc)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"spark-submit {Path(app).name} still running after {timeout_s} s; see {log}") from None
        finally:
            _end_group(proc, grace_s=5)  # a finished driver may leave its Python process behind on failure
            self._submissions.discard(proc)
        return SubmitResult(proc.returncode, log.read_text(errors="replace"), log, time.monotonic() - began)

    def stop(self) -> None:
        """End running submissions, then the worker (it kills its executors), then the master.

        Safe to call more than once and after a failed start.
        """
        for proc in list(self._submissions):
            _end_group(proc, grace_s=5)
        self._submissions.clear()
        for proc in (self._worker, self._master):
            if proc is not None:
                _end_group(proc, grace_s=30)
        self._worker = self._master = None
        atexit.unregister(self.stop)

    def __enter__(self) -> SparkStandaloneCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
