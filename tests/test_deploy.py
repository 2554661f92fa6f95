"""Databricks jobs as code: definitions, offline validation, dry run, idempotent deploy, the bundle.

No test contacts a network: deploy runs against an in-memory fake of the jobs API surface it calls.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from databricks.sdk.service.jobs import BaseJob, CreateResponse, JobsAPI, JobSettings

from nurture_lake.config import PROJECT_ROOT, ConfigError, load_config, parse_config
from nurture_lake.deploy import (
    DECLARED_JOBS,
    DeployError,
    DeploySettings,
    JobValidationError,
    client_config_kwargs,
    cron_problems,
    deploy_jobs,
    find_cycle,
    job_definitions,
    job_dicts,
    job_problems,
    validate_job,
    validate_jobs,
)
from nurture_lake.jobs import JOBS
from nurture_lake.jobs import deploy as deploy_job

NOT_YET_REGISTERED = {"score", "attribute", "monitor", "retain"}
"""Job modules that land with later work; every other task must name a registered job."""


def _by_name(dicts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in dicts}


def _edges(job: dict[str, Any]) -> dict[str, list[tuple[str, str | None]]]:
    return {t["task_key"]: [(d["task_key"], d.get("outcome")) for d in t.get("depends_on", [])] for t in job["tasks"]}


# ------------------------------------------------------------------ definitions
def test_definitions_validate_and_have_the_pipeline_graphs() -> None:
    dicts = job_dicts(DeploySettings())
    validate_jobs(dicts)
    jobs = _by_name(dicts)
    assert list(jobs) == ["nurture_lake_streaming", "nurture_lake_learning", "nurture_lake_governance"]
    assert _edges(jobs["nurture_lake_streaming"]) == {
        "ingest": [], "identity": [("ingest", None)], "features": [("identity", None)], "score": [("features", None)],
    }
    assert _edges(jobs["nurture_lake_learning"]) == {"attribute": [], "train": [("attribute", None)], "promote": [("train", None)]}
    assert _edges(jobs["nurture_lake_governance"]) == {
        "retention_due": [], "monitor": [],
        "retain": [("retention_due", "true")], "check_guardrails": [("retention_due", "true")],
    }
    assert jobs["nurture_lake_learning"]["schedule"]["quartz_cron_expression"] == "0 0 4 * * ?"   # daily 04:00
    assert jobs["nurture_lake_governance"]["schedule"]["quartz_cron_expression"] == "0 0 * * * ?"  # hourly
    gate = jobs["nurture_lake_governance"]["tasks"][0]
    assert gate["condition_task"] == {"op": "EQUAL_TO", "left": "{{job.start_time.hour}}", "right": "3"}


def test_every_task_calls_the_console_script_with_the_target_env() -> None:
    for job in job_dicts(DeploySettings()):
        for task in job["tasks"]:
            if "condition_task" in task:
                continue
            wheel = task["python_wheel_task"]
            assert (wheel["package_name"], wheel["entry_point"]) == ("nurture_lake", "nurture-lake")
            assert wheel["parameters"][1:3] == ["--env", "databricks"]
            assert task["libraries"] == [{"whl": DeploySettings().wheel_path}]
    learning = _by_name(job_dicts(DeploySettings()))["nurture_lake_learning"]
    assert learning["tasks"][1]["python_wheel_task"]["parameters"] == ["train", "--env", "databricks", "--phase", "all"]
    assert learning["job_clusters"][0]["new_cluster"]["spark_version"] == "17.3.x-cpu-ml-scala2.13"


def test_declared_jobs_name_registered_subcommands() -> None:
    declared = {t.job for decl in DECLARED_JOBS for t in decl.tasks}
    assert declared - set(JOBS) <= NOT_YET_REGISTERED, declared - set(JOBS) - NOT_YET_REGISTERED
    assert {"ingest", "identity", "features", "train", "promote", "check-guardrails"} <= declared & set(JOBS)


def test_spark_python_tasks_point_at_the_thin_job_files() -> None:
    settings = DeploySettings(task_kind="spark_python", jobs_root="/Workspace/nl/files/")
    dicts = job_dicts(settings)
    validate_jobs(dicts)
    task = _by_name(dicts)["nurture_lake_governance"]["tasks"][3]
    assert task["spark_python_task"] == {
        "python_file": "/Workspace/nl/files/jobs/check_guardrails.py", "parameters": ["--env", "databricks"],
    }
    for decl in DECLARED_JOBS:  # the thin files exist for every registered job
        for t in decl.tasks:
            if t.job in JOBS:
                assert (PROJECT_ROOT / "jobs" / f"{t.job.replace('-', '_')}.py").is_file(), t.job


def test_settings_come_from_the_deploy_section() -> None:
    raw = yaml.safe_load((PROJECT_ROOT / "conf" / "local.yaml").read_text())
    raw["deploy"] = {
        "names": {"streaming": "nl_stream"}, "notification_emails": ["ops@example.com"],
        "cluster": {"autoscale_max_workers": 8}, "pause_status": "PAUSED", "secret_env": {},
    }
    settings = DeploySettings.from_config(parse_config(raw))
    stream = job_dicts(settings)[0]
    assert stream["name"] == "nl_stream"
    assert stream["email_notifications"] == {"on_failure": ["ops@example.com"], "no_alert_for_skipped_runs": True}
    cluster = stream["job_clusters"][0]["new_cluster"]
    assert cluster["autoscale"] == {"min_workers": 1, "max_workers": 8} and "num_workers" not in cluster
    assert "spark_env_vars" not in cluster
    assert stream["schedule"]["pause_status"] == "PAUSED"
    validate_jobs(job_dicts(settings))

    raw["deploy"] = {"pause_status": "STOPPED"}
    with pytest.raises(ConfigError, match="deploy.pause_status"):
        DeploySettings.from_config(parse_config(raw))


# ------------------------------------------------------------------ validation
def _streaming() -> dict[str, Any]:
    return copy.deepcopy(job_dicts(DeploySettings())[0])


def test_planted_unknown_key_and_bad_enum_are_caught() -> None:
    job = _streaming()
    job["tasks"][1]["python_wheel_tsk"] = job["tasks"][1].pop("python_wheel_task")  # typo
    job["schedule"]["pause_status"] = "PAUSE"
    with pytest.raises(JobValidationError) as err:
        validate_job(job)
    problems = err.value.problems
    assert "schedule.pause_status: unknown field or invalid value 'PAUSE' (the SDK drops it silently)" in problems
    assert any(p.startswith("tasks[1].python_wheel_tsk: unknown field") for p in problems)
    assert any("tasks[1] (identity): needs exactly one runner" in p for p in problems)
    assert "nurture_lake_streaming" in str(err.value)


def test_dependency_on_a_missing_task_is_caught() -> None:
    job = _streaming()
    job["tasks"][3]["depends_on"] = [{"task_key": "feature"}]
    assert job_problems(job) == [
        "task 'score' depends on 'feature', which is not a task of this job (tasks: features, identity, ingest, score)"
    ]


def test_cycle_is_caught() -> None:
    job = _streaming()
    job["tasks"][0]["depends_on"] = [{"task_key": "features"}]
    assert job_problems(job) == ["dependency cycle: ingest → features → identity → ingest"]
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None


def test_compute_name_and_duplicate_keys_are_checked() -> None:
    job = _streaming()
    del job["tasks"][2]["job_cluster_key"]
    job["tasks"][3]["job_cluster_key"] = "gpu"
    job["tasks"][1]["task_key"] = "ingest"
    del job["name"]
    problems = job_problems(job)
    assert "name is required (deploy finds jobs by name)" in problems
    assert "duplicate task_key(s): ingest" in problems
    assert any(p.startswith("tasks[2] (features): no compute spec") for p in problems)
    assert "tasks[3] (score): job_cluster_key 'gpu' is not in job_clusters ['nurture_lake_etl']" in problems


def test_cron_and_time_zone_are_checked() -> None:
    assert cron_problems("0 0/15 * * * ?") == []
    assert cron_problems("0 30 2 ? * MON-FRI 2027") == []
    assert cron_problems("0 0 4 * *") == ["quartz cron '0 0 4 * *' needs 6 or 7 fields (sec min hour dom month dow [year]), got 5"]
    assert cron_problems("0 60 4 * * ?") == ["quartz cron '0 60 4 * * ?': minutes: '60' is outside 0-59"]
    assert cron_problems("0 0 4 * * MON") == ["quartz cron '0 0 4 * * MON': exactly one of day-of-month and day-of-week must be '?'"]
    job = _streaming()
    job["schedule"]["timezone_id"] = "Europe/Berln"
    assert job_problems(job) == ["schedule.timezone_id: unknown time zone 'Europe/Berln'"]


def test_duplicate_job_names_are_rejected() -> None:
    job = _streaming()
    with pytest.raises(JobValidationError, match="two job definitions share this name"):
        validate_jobs([job, copy.deepcopy(job)])


# ------------------------------------------------------------------ dry run
def test_dry_run_prints_the_definitions_as_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    monkeypatch.delenv("DATABRICKS_TOKEN", raising=False)
    deploy_job.main(["--dry-run"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == job_dicts(DeploySettings.from_config(load_config("databricks")))
    assert [j["name"] for j in printed] == ["nurture_lake_streaming", "nurture_lake_learning", "nurture_lake_governance"]

    deploy_job.main(["--dry-run", "--job", "nurture_lake_learning"])
    assert [j["name"] for j in json.loads(capsys.readouterr().out)] == ["nurture_lake_learning"]


def test_deploy_without_credentials_fails_clearly(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-test")
    with pytest.raises(SystemExit) as exit_info:
        deploy_job.main([])
    assert exit_info.value.code == 1
    assert "set DATABRICKS_HOST to deploy" in capsys.readouterr().err


def test_client_config_from_environment() -> None:
    settings = DeploySettings(http_timeout_seconds=5, retry_timeout_seconds=20)
    assert client_config_kwargs(settings, {"DATABRICKS_HOST": "https://x.cloud.databricks.com", "DATABRICKS_TOKEN": "t"}) == {
        "host": "https://x.cloud.databricks.com", "token": "t", "retry_timeout_seconds": 20, "http_timeout_seconds": 5,
    }
    with pytest.raises(DeployError, match="set DATABRICKS_HOST and DATABRICKS_TOKEN"):
        client_config_kwargs(settings, {})


# ------------------------------------------------------------------ create or update, against a fake jobs API
class FakeJobs:
    """In-memory stand-in for ``WorkspaceClient().jobs``: list by name (case-insensitive), create, reset."""

    def __init__(self) -> None:
        self.jobs: dict[int, JobSettings] = {}
        self.calls: list[tuple[str, Any]] = []

    def list(self, *, name: str | None = None) -> Iterator[BaseJob]:
        for job_id, settings in self.jobs.items():
            if name is None or (settings.name or "").lower() == name.lower():
                yield BaseJob(job_id=job_id, settings=JobSettings(name=settings.name))

    def create(self, **kwargs: Any) -> CreateResponse:
        inspect.signature(JobsAPI.create).bind(None, **kwargs)  # the real client's keywords, or TypeError
        job_id = 1000 + len(self.jobs)
        self.jobs[job_id] = JobSettings(**kwargs)
        self.calls.append(("create", kwargs["name"]))
        return CreateResponse(job_id=job_id)

    def reset(self, job_id: int, new_settings: JobSettings) -> None:
        if job_id not in self.jobs:
            raise KeyError(job_id)
        self.jobs[job_id] = new_settings
        self.calls.append(("reset", job_id))


def test_deploy_creates_then_updates_by_name() -> None:
    api = FakeJobs()
    first = deploy_jobs(api, job_definitions(DeploySettings()))
    assert [(r.name, r.job_id, r.action) for r in first] == [
        ("nurture_lake_streaming", 1000, "created"),
        ("nurture_lake_learning", 1001, "created"),
        ("nurture_lake_governance", 1002, "created"),
    ]
    assert {i: s.as_dict() for i, s in api.jobs.items()} == dict(zip((1000, 1001, 1002), job_dicts(DeploySettings()), strict=True))

    changed = DeploySettings(notification_emails=("ops@example.com",))
    second = deploy_jobs(api, job_definitions(changed))
    assert [(r.job_id, r.action) for r in second] == [(1000, "updated"), (1001, "updated"), (1002, "updated")]
    assert len(api.jobs) == 3  # no duplicates
    assert api.calls[3:] == [("reset", 1000), ("reset", 1001), ("reset", 1002)]
    assert api.jobs[1001].as_dict() == job_dicts(changed)[1]
    assert api.jobs[1001].email_notifications is not None
    assert api.jobs[1001].email_notifications.on_failure == ["ops@example.com"]


def test_deploy_matches_names_exactly_and_refuses_ambiguity() -> None:
    api = FakeJobs()
    api.jobs[7] = JobSettings(name="NURTURE_LAKE_STREAMING")  # someone else's job: the API matches case-insensitively
    results = deploy_jobs(api, job_definitions(DeploySettings())[:1])
    assert [(r.job_id, r.action) for r in results] == [(1001, "created")]
    assert api.jobs[7].as_dict() == {"name": "NURTURE_LAKE_STREAMING"}

    api.jobs[8] = JobSettings(name="nurture_lake_streaming")
    with pytest.raises(DeployError, match=r"2 jobs are named 'nurture_lake_streaming' \(ids \[8, 1001\]\)"):
        deploy_jobs(api, job_definitions(DeploySettings())[:1])


def test_deploy_validates_before_calling_the_workspace() -> None:
    api = FakeJobs()
    bad = DeploySettings(streaming_cron="0 0/15 * * *")
    with pytest.raises(JobValidationError, match="needs 6 or 7 fields"):
        deploy_jobs(api, job_definitions(bad))
    assert api.calls == []


# ------------------------------------------------------------------ the bundle
def _bundle() -> tuple[dict[str, Any], dict[str, Any]]:
    root = yaml.safe_load((PROJECT_ROOT / "databricks.yml").read_text())
    jobs: dict[str, Any] = {}
    for pattern in root.get("include", []):
        for path in sorted(PROJECT_ROOT.glob(pattern)):
            jobs.update(yaml.safe_load(Path(path).read_text())["resources"]["jobs"])
    return root, jobs


def test_bundle_defines_targets_and_the_wheel() -> None:
    root, _ = _bundle()
    assert root["bundle"]["name"] == "nurture_lake"
    assert set(root["targets"]) == {"dev", "prod"}
    assert root["targets"]["dev"]["mode"] == "development" and root["targets"]["prod"]["mode"] == "production"
    assert [a["type"] for a in root["artifacts"].values()] == ["whl"]


def test_bundle_matches_the_sdk_definitions() -> None:
    _, bundle_jobs = _bundle()
    sdk = _by_name(job_dicts(DeploySettings()))
    assert {j["name"] for j in bundle_jobs.values()} == set(sdk)
    for job in bundle_jobs.values():
        ours = sdk[job["name"]]
        assert [t["task_key"] for t in job["tasks"]] == [t["task_key"] for t in ours["tasks"]], job["name"]
        assert _edges(job) == _edges(ours), job["name"]
        assert job["schedule"]["quartz_cron_expression"] == ours["schedule"]["quartz_cron_expression"]
        for theirs, mine in zip(job["tasks"], ours["tasks"], strict=True):
            if "condition_task" in mine:
                assert theirs["condition_task"] == mine["condition_task"]
                continue
            t_params, m_params = theirs["python_wheel_task"]["parameters"], mine["python_wheel_task"]["parameters"]
            assert t_params[0] == m_params[0] and t_params[1] == "--env" and t_params[3:] == m_params[3:]
            assert theirs["python_wheel_task"]["entry_point"] == mine["python_wheel_task"]["entry_point"]
            assert theirs["job_cluster_key"] == mine["job_cluster_key"]
