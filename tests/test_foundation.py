"""Configuration, pseudonyms, table layout and audit rows."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

import pytest
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from nurture_lake.actions import ActionSpace, RewardSpec, parse_duration
from nurture_lake.audit import audit_table, audited_run
from nurture_lake.config import ConfigError, NurtureConfig, load_config, parse_config
from nurture_lake.privacy import normalise_email, normalise_phone, pseudonym, pseudonym_col
from nurture_lake.spark import job_group
from nurture_lake.tables import Lake


def test_local_and_databricks_configs_load() -> None:
    local = load_config("local")
    assert set(local.regions) >= {"us", "eu"} and local.storage.kind == "path"
    dbx = load_config("databricks")
    assert dbx.storage.kind == "catalog" and dbx.storage.catalog
    assert Lake(dbx).table("eu", "gold", "cadence_decisions").full_name == f"{dbx.storage.catalog}.eu_gold.cadence_decisions"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"env": "x", "regions": {"eu": {"timezone": "Europe/Berln"}}}, "regions.eu.timezone"),
        ({"env": "x", "regions": {}}, "regions"),
        ({"env": "x", "regions": {"us": {"timezone": "UTC"}}, "spark": {"shuffle_partitions": 0}}, "spark.shuffle_partitions"),
        ({"env": "x", "regions": {"us": {"timezone": "UTC"}}, "storage": {"kind": "catalog"}}, "storage.catalog"),
        ({"env": "x", "regions": {"us": {"timezone": "UTC", "colour": "red"}}}, "regions.us.colour"),
        ({"env": "x", "regions": {"us": {"timezone": "UTC"}}, "ingest": {"dedup_lookback": "a month"}}, "ingest.dedup_lookback"),
        ({"env": "x", "regions": {"us": {"timezone": "UTC"}}, "ingest": {"dedup_lookback": "0d"}}, "ingest.dedup_lookback"),
    ],
)
def test_invalid_config_names_the_field(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(raw)


def test_missing_config_file_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config("no-such-env")


def test_hmac_key_from_environment_beats_dev_default(monkeypatch: pytest.MonkeyPatch, cfg: NurtureConfig) -> None:
    monkeypatch.setenv(cfg.privacy.hmac_key_env, "prod-secret")
    assert cfg.hmac_key() == b"prod-secret"
    monkeypatch.delenv(cfg.privacy.hmac_key_env)
    assert cfg.hmac_key() == cfg.privacy.dev_hmac_key.encode()  # type: ignore[union-attr]
    strict = cfg.model_copy(update={"privacy": cfg.privacy.model_copy(update={"dev_hmac_key": None})})
    with pytest.raises(ConfigError, match=cfg.privacy.hmac_key_env):
        strict.hmac_key()


def test_normalisation() -> None:
    assert normalise_email("  Ada.Lovelace@Example.COM ") == "ada.lovelace@example.com"
    assert normalise_email("nope") is None
    assert normalise_phone("(415) 555-0132", "US") == "+14155550132"
    assert normalise_phone("030 1234567", "DE") == "+49301234567"
    assert normalise_phone("12", "US") is None


def test_spark_pseudonym_equals_python_hmac(spark: SparkSession) -> None:
    for key in (b"k", b"a-much-longer-key-" * 8):  # short and longer-than-block keys
        values = ["ada@example.com", "+14155550132", "ümlaut@exämple.de", ""]
        df = spark.createDataFrame([(v,) for v in values], "v string")
        got = df.select("v", pseudonym_col(key, "email", F.col("v")).alias("p"))
        expected = [Row(v=v, p="email:" + hmac.new(key, f"email:{v}".encode(), hashlib.sha256).hexdigest()) for v in values]
        assertDataFrameEqual(got, expected)
        assert pseudonym(key, "email", values[0]) == expected[0]["p"]


def test_action_space_and_reward_spec(cfg: NurtureConfig) -> None:
    space = ActionSpace.from_config(cfg)
    assert space.action_ids[0] == "hold" and "email@1d" in space.action_ids
    assert space.parse("chat@7d").wait == parse_duration("7d")
    with pytest.raises(ValueError, match="unknown action"):
        space.parse("fax@1d")
    assert RewardSpec.from_config(cfg).window_delta.days == 3  # conf/local.yaml: policy.reward.window
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")


def test_audit_rows_on_success_and_failure(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    target = lake.table("us", "gold", "t")
    spark.range(3).write.format("delta").save(target.path)
    with audited_run(spark, lake, job="unit", region="us", args={"x": 1}) as run:
        run.read(spark, target)
        run.wrote(spark, target, rows=3)
    with pytest.raises(RuntimeError, match="boom"), audited_run(spark, lake, job="unit", region="us") as run:
        raise RuntimeError("boom")
    rows = audit_table(lake).read(spark).orderBy("started_at")
    assertDataFrameEqual(
        rows.select("job", "region", "status", "error", "inputs", "outputs", "row_counts", "config_hash"),
        [
            Row(job="unit", region="us", status="succeeded", error=None, inputs={"us.gold.t": 0},
                outputs={"us.gold.t": 0}, row_counts={"us.gold.t": 3}, config_hash=cfg.config_hash()),
            Row(job="unit", region="us", status="failed", error="RuntimeError: boom", inputs={}, outputs={},
                row_counts={}, config_hash=cfg.config_hash()),
        ],
    )
    assert all(isinstance(r["started_at"], datetime) and r["code_version"] for r in rows.collect())


def test_job_group_labels_jobs_inside_and_restores_the_outer_label(spark: SparkSession) -> None:
    sc = spark.sparkContext
    tracker = sc.statusTracker()
    with job_group(spark, "outer.grp", "outer"):
        with job_group(spark, "inner.grp", "inner step"):
            spark.range(10).count()
            assert sc.getLocalProperty("spark.job.description") == "inner step"
        assert (sc.getLocalProperty("spark.jobGroup.id"), sc.getLocalProperty("spark.job.description")) == (
            "outer.grp", "outer")
        spark.range(5).count()
    assert [sc.getLocalProperty(k) for k in ("spark.jobGroup.id", "spark.job.interruptOnCancel")] == [None, None]
    inner, outer = tracker.getJobIdsForGroup("inner.grp"), tracker.getJobIdsForGroup("outer.grp")
    assert inner and outer and not set(inner) & set(outer)
