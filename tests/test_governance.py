"""Retention, access audit and lookup, decision lineage (explain) and DP noise — real Spark, Delta, MLflow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import mlflow
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from nurture_lake.config import NurtureConfig
from nurture_lake.governance import (
    apply_retention,
    explain_decision,
    governance_settings,
    laplace_noise,
    purge_tables,
    render_explanation,
    subject_token,
)
from nurture_lake.identity import IDENTITY_GRAPH
from nurture_lake.jobs.lookup import main as lookup_main
from nurture_lake.policy.registry import configure_mlflow
from nurture_lake.privacy import pseudonym
from nurture_lake.schemas import BRONZE_EVENTS_RAW, GOLD_CADENCE_DECISIONS, SILVER_IDENTIFIERS
from nurture_lake.tables import GLOBAL_REGION, Lake
from tests.test_erasure import lake_hits


def _cli(cfg: NurtureConfig) -> list[str]:
    return ["--set", f"storage.lake_root={cfg.storage.lake_root}",
            "--set", f"mlflow.tracking_uri={cfg.mlflow.tracking_uri}"]


def test_retention_deletes_old_rows_from_every_file(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    bronze = lake.table("us", "bronze", "events_raw")
    bronze.ensure(spark, BRONZE_EVENTS_RAW)
    old = [(f'{{"old-{i}":"zz-old-{i}"}}', "f", None, None, None, None, "us", datetime(2026, 9, 1), 0) for i in range(3)]
    new = [(f'{{"new-{i}":"zz-new-{i}"}}', "f", None, None, None, None, "us", datetime(2026, 10, 20), 1)
           for i in range(2)]
    bronze.append(spark.createDataFrame(old, BRONZE_EVENTS_RAW))
    bronze.append(spark.createDataFrame(new, BRONZE_EVENTS_RAW))
    root = cfg.resolve(cfg.storage.lake_root)
    assert {n for found in lake_hits(root, ["zz-old-0", "zz-old-2"]).values() for n in found} == {"zz-old-0", "zz-old-2"}

    settings = governance_settings(cfg)  # defaults: bronze.events_raw 30d, silver.events_quarantine 30d
    results = apply_retention(spark, lake, settings, now=datetime(2026, 11, 1))
    by_table = {r.table: r.rows_deleted for r in results}
    assert by_table == {"us.bronze.events_raw": 3}  # cutoff 2026-10-02: the three September rows
    assert lake_hits(root, [f"zz-old-{i}" for i in range(3)]) == {}
    assertDataFrameEqual(bronze.read(spark), spark.createDataFrame(new, BRONZE_EVENTS_RAW))
    # Idempotent.
    assert {r.table: r.rows_deleted for r in apply_retention(spark, lake, settings, now=datetime(2026, 11, 1))} == {
        "us.bronze.events_raw": 0}


def test_purging_tables_side_by_side_purges_all_and_reports_a_failure_after(
    spark: SparkSession, cfg: NurtureConfig
) -> None:
    lake = Lake(cfg)
    tables = [lake.table(region, "bronze", "events_raw") for region in ("us", "eu")]
    for table in tables:
        table.ensure(spark, BRONZE_EVENTS_RAW)
        rows = [(f'{{"who":"zz-{table.region}-{i}"}}', "f", None, None, None, None, table.region,
                 datetime(2026, 10, 1), i) for i in range(2)]
        table.append(spark.createDataFrame(rows, BRONZE_EVENTS_RAW))
        table.delta(spark).delete(F.col("batch_id") == 0)  # the deleted row's file stays until purged
    root = cfg.resolve(cfg.storage.lake_root)
    gone = ["zz-us-0", "zz-eu-0"]
    assert {n for found in lake_hits(root, gone).values() for n in found} == set(gone)

    missing = lake.table("us", "silver", "never_created")
    with pytest.raises(Exception, match="never_created"):
        purge_tables(spark, [tables[0], missing, tables[1]], workers=3)
    # The failing table in the middle stopped neither neighbour: both were vacuumed and their logs cut.
    assert lake_hits(root, gone) == {}
    for table in tables:
        log = sorted(p.name for p in (root / table.region / "bronze" / "events_raw" / "_delta_log").glob("*.json"))
        assert log == [f"{table.version(spark):020d}.json"]  # only the current commit (the delete) is left
    assertDataFrameEqual(
        tables[0].read(spark).select("value"), spark.createDataFrame([('{"who":"zz-us-1"}',)], "value string")
    )


def test_retention_purges_what_it_deleted_before_reporting_a_failed_table(
    spark: SparkSession, cfg: NurtureConfig, tmp_path
) -> None:
    lake = Lake(cfg)
    for region in ("us", "eu"):
        table = lake.table(region, "bronze", "events_raw")
        table.ensure(spark, BRONZE_EVENTS_RAW)
        rows = [(f'{{"old":"zz-{region}-old"}}', "f", None, None, None, None, region, datetime(2026, 9, 1), 0),
                (f'{{"new":"zz-{region}-new"}}', "f", None, None, None, None, region, datetime(2026, 10, 30), 1)]
        table.append(spark.createDataFrame(rows, BRONZE_EVENTS_RAW))
    root = cfg.resolve(cfg.storage.lake_root)
    for path in (root / "eu" / "bronze" / "events_raw").glob("*.parquet"):  # eu's data file is lost
        path.rename(tmp_path / path.name)
    with pytest.raises(Exception, match=r"\.parquet"):
        apply_retention(spark, lake, governance_settings(cfg), now=datetime(2026, 11, 1))
    # us deleted its expired row and was purged although eu failed: a rerun would find nothing to delete there.
    assert lake_hits(root, ["zz-us-old"]) == {}
    assertDataFrameEqual(lake.table("us", "bronze", "events_raw").read(spark).select("value"),
                         spark.createDataFrame([('{"new":"zz-us-new"}',)], "value string"))


def test_retention_config_is_validated(cfg: NurtureConfig) -> None:
    from nurture_lake.config import ConfigError, load_config

    good = load_config("local", overrides={"retention": {"gold.cadence_decisions": "400d",
                                                         "gold.x": {"window": "2h", "column": "ts"}}})
    s = governance_settings(good)
    assert (s.retention["gold.cadence_decisions"].delta.days, s.time_column("gold.x")) == (400, "ts")
    with pytest.raises(ConfigError, match="no known time column"):
        governance_settings(load_config("local", overrides={"retention": {"gold.unknown": "3d"}}))
    with pytest.raises(ConfigError, match="window"):
        governance_settings(load_config("local", overrides={"retention": {"bronze.events_raw": "a month"}}))


def _small_identity(spark: SparkSession, lake: Lake, key: bytes) -> str:
    ada = pseudonym(key, "email", "ada@example.com")
    at = datetime(2026, 11, 1)
    lake.table("us", "silver", "identity_graph").append(spark.createDataFrame([
        (ada, "email", "L-ada", "us", at, at, "r"), (pseudonym(key, "email", "bob@example.org"), "email", "L-bob", "us",
                                                     at, at, "r"),
    ], IDENTITY_GRAPH))
    lake.table("us", "silver", "identifiers").append(spark.createDataFrame([
        (ada, "email", "ada@example.com", at), (pseudonym(key, "email", "bob@example.org"), "email", "bob@example.org", at),
    ], SILVER_IDENTIFIERS))
    return ada


def test_lookup_prints_rows_and_records_who_and_why(spark: SparkSession, cfg: NurtureConfig, capsys) -> None:
    lake = Lake(cfg)
    ada = _small_identity(spark, lake, cfg.hmac_key())
    lookup_main(["--subject", "Ada@Example.com", "--type", "email", "--reason", "support ticket 42", *_cli(cfg)])
    out = capsys.readouterr().out
    assert "leads us:L-ada" in out and "ada@example.com" in out and "bob@example.org" not in out
    assert "== us.silver.identifiers (1 row(s) shown)" in out
    rows = lake.table(GLOBAL_REGION, "ops", "access_log").read(spark).collect()
    assert [(r["tool"], r["reason"], r["subject_type"], r["subject_token"], r["tables"]) for r in rows] == [
        ("lookup", "support ticket 42", "email", subject_token(ada),
         '["us.silver.identifiers", "us.silver.identity_graph"]')]
    audit = lake.table(GLOBAL_REGION, "ops", "audit_runs").read(spark).collect()
    assert [(a["job"], a["reason"], "ada" in (a["args"] or "").lower()) for a in audit] == [
        ("lookup", "support ticket 42", False)]


@pytest.mark.parametrize("argv", [["--reason", "  "], []])
def test_lookup_without_reason_exits_2(cfg: NurtureConfig, capsys, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        lookup_main(["--subject", "ada@example.com", "--type", "email", *argv, *_cli(cfg)])
    assert exit_info.value.code == 2
    assert "--reason" in capsys.readouterr().err


def _decision(decision_id: str, *, run_id: str, kind: str, version: str, feature_version: int) -> tuple[Any, ...]:
    at = datetime(2026, 11, 2, 9, 0)
    guardrails = [("consent", True, [], None), ("quiet_hours", False, ["chat@4h"], "local 22:10 in quiet hours"),
                  ("max_touches_7d", False, ["email@4h", "email@1d"], "3 of 3 touches in 7d")]
    return (decision_id, "L-ada", "us", at, "e-1", "event", "push@1d", "push", "1d", at, 0.6,
            {"push@1d": 0.6, "hold": 0.4}, {"push@1d": 0.3, "hold": 0.0}, False, False, guardrails, kind,
            "nurture_lake_cadence_policy", version, run_id, "pch", feature_version, at, "job-1", 3, "abc")


def test_explain_decision_with_and_without_mlflow_run(spark: SparkSession, cfg: NurtureConfig) -> None:
    lake = Lake(cfg)
    features = lake.table("us", "gold", "lead_features")
    schema = "lead_id string, region string, as_of timestamp, touches_7d double, history array<string>"
    at = datetime(2026, 11, 1)
    features.append(spark.createDataFrame([("L-ada", "us", at, 1.0, ["e1"]), ("L-bob", "us", at, 5.0, [])], schema))
    features.overwrite(spark.createDataFrame([("L-ada", "us", at, 2.0, ["e1", "e2"])], schema))  # version 1
    configure_mlflow(cfg)
    with mlflow.start_run(run_name="train_policy") as run:
        mlflow.log_params({"strategy": "thompson", "input_version.us.gold.decision_outcomes": 7})
        mlflow.log_metric("ope_dr", 0.42)
        mlflow.set_tag("policy_kind", "linear_thompson")
    decisions = lake.table("us", "gold", "cadence_decisions")
    decisions.append(spark.createDataFrame([
        _decision("d-trained", run_id=run.info.run_id, kind="champion", version="3", feature_version=0),
        _decision("d-logging", run_id="none", kind="logging", version="0", feature_version=1),
    ], GOLD_CADENCE_DECISIONS))

    trained = explain_decision(spark, lake, "d-trained")
    assert trained["decision"]["action_id"] == "push@1d" and trained["decision"]["propensity"] == 0.6
    assert [(g["rule"], g["blocked_actions"], g["reason"]) for g in trained["guardrails"]] == [
        ("consent", [], None), ("quiet_hours", ["chat@4h"], "local 22:10 in quiet hours"),
        ("max_touches_7d", ["email@4h", "email@1d"], "3 of 3 touches in 7d")]
    assert trained["features"]["row"] == {  # time travel: version 0 had touches_7d 1.0
        "lead_id": "L-ada", "region": "us", "as_of": at, "touches_7d": 1.0, "history_events": 1}
    model = trained["model"]
    assert (model["name"], model["version"], model["run"]["run_id"]) == ("nurture_lake_cadence_policy", "3",
                                                                        run.info.run_id)
    assert model["run"]["params"]["strategy"] == "thompson" and model["run"]["metrics"] == {"ope_dr": 0.42}
    assert model["run"]["tags"]["policy_kind"] == "linear_thompson"
    assert model["training_data"] == {"us.gold.decision_outcomes": "7"}
    text = render_explanation(trained)
    assert "quiet_hours" in text and "BLOCKED chat@4h" in text and "us.gold.decision_outcomes=7" in text

    logging = explain_decision(spark, lake, "d-logging", region="us")
    assert logging["model"]["run"] is None and "no MLflow run" in logging["model"]["note"]
    assert logging["features"]["row"]["touches_7d"] == 2.0
    assert "no MLflow run: decided by the logging policy" in render_explanation(logging)


def test_laplace_noise_has_the_configured_scale(spark: SparkSession) -> None:
    n, epsilon, sensitivity = 20_000, 0.5, 1.0  # b = 2: mean 0, variance 2 b² = 8
    df = spark.range(n).select(F.col("id").cast("string").alias("k"), F.lit(0).alias("leads"))
    noisy = laplace_noise(df, columns=["leads"], epsilon=epsilon, sensitivity=sensitivity, seed=11)
    stats = noisy.agg(F.mean("leads").alias("m"), F.var_pop("leads").alias("v")).first()
    assert abs(stats["m"]) < 4 * (8 / n) ** 0.5           # 4 standard errors of the mean
    assert abs(stats["v"] - 8.0) < 4 * (320 / n) ** 0.5    # Var(X²) = 20 b⁴ = 320
    assertDataFrameEqual(noisy.select("k"), df.select("k"))
    assertDataFrameEqual(noisy, laplace_noise(df, columns=["leads"], epsilon=epsilon, sensitivity=sensitivity, seed=11))
    with pytest.raises(ValueError):
        laplace_noise(df, columns=["leads"], epsilon=0.0, sensitivity=1.0)
