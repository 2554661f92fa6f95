"""The standalone-cluster harness itself: it binds ports the OS picks and reports a daemon that dies at once."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from nurture_lake.devtools.spark_cluster import SparkStandaloneCluster


def test_master_url_is_the_port_the_master_bound_and_the_worker_registers_there(tmp_path: Path) -> None:
    cluster = SparkStandaloneCluster(tmp_path / "cluster", cores=1, memory="512m")
    with pytest.raises(RuntimeError, match="call start"):
        cluster.master_url
    try:
        cluster.start()
        found = re.fullmatch(r"spark://127\.0\.0\.1:(\d+)", cluster.master_url)
        assert found is not None, cluster.master_url
        with socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=5):
            pass  # the master listens where master_url says
        registered = re.search(r"Registering worker 127\.0\.0\.1:\d+ with 1 cores", cluster.master_log.read_text())
        assert registered is not None
        assert cluster.running
    finally:
        cluster.stop()
    assert not cluster.running


def test_a_worker_that_exits_fails_the_start_at_once_with_its_log(tmp_path: Path) -> None:
    cluster = SparkStandaloneCluster(tmp_path / "cluster", memory="not-a-size", start_timeout_s=120)
    with pytest.raises(RuntimeError, match=r"(?s)the worker exited with \d+.*last lines of .*worker\.log") as failed:
        cluster.start()
    assert "Usage: Worker [options] <master>" in str(failed.value)  # the worker's own complaint, from its log
    assert not cluster.running  # the master was stopped too


def test_a_second_start_in_the_same_folder_reads_only_its_own_log_lines(tmp_path: Path) -> None:
    first = SparkStandaloneCluster(tmp_path / "cluster", memory="512m")
    try:
        first_url = first.start().master_url
    finally:
        first.stop()
    second = SparkStandaloneCluster(tmp_path / "cluster", memory="512m")  # same master.log, appended to
    try:
        second_url = second.start().master_url
        started = re.findall(r"Starting Spark master at (\S+)", second.master_log.read_text())
        assert started == [first_url, second_url]  # both masters' lines are in the log; the second start read its own
        with socket.create_connection(("127.0.0.1", int(second_url.rsplit(":", 1)[1])), timeout=5):
            pass
    finally:
        second.stop()
