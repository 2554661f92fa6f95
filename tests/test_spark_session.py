"""``get_spark`` as a job builds it: in a fresh Python process, with the project's jars and settings."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_SCRIPT = textwrap.dedent("""
    import json, sys
    from nurture_lake.config import load_config
    from nurture_lake.spark import DATAFRAME_DEBUGGING, get_spark

    root = sys.argv[1]
    seen = []
    for extra in ({}, {DATAFRAME_DEBUGGING: "true"}):
        cfg = load_config("local", overrides={"storage.lake_root": root, "spark.extra_conf": extra})
        spark = get_spark(cfg, app_name="session-test")
        assert get_spark(cfg) is spark  # an active session is reused, not rebuilt
        path = f"{root}/t{len(seen)}"
        spark.range(3).write.format("delta").save(path)
        seen.append({
            "debugging": spark.conf.get(DATAFRAME_DEBUGGING),
            "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
            "time_zone": spark.conf.get("spark.sql.session.timeZone"),
            "delta_rows": sorted(r.id for r in spark.read.format("delta").load(path).collect()),
        })
        spark.stop()
    print(json.dumps(seen))
""")


@pytest.mark.timeout(300)
def test_get_spark_builds_a_delta_session_without_call_site_capture_unless_configured(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=280, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    expected_rest = {"shuffle_partitions": "2", "time_zone": "UTC", "delta_rows": [0, 1, 2]}
    # Off by default (every DataFrame call would walk the Python stack); spark.extra_conf turns it back on.
    assert seen == [{"debugging": "false", **expected_rest}, {"debugging": "true", **expected_rest}]
