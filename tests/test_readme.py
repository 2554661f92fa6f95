"""The README stays true: jobs and their options, the folder tree, the table contracts, documented configuration."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import pkgutil
import re
import subprocess
from pathlib import Path

import pytest
from pydantic import BaseModel

import nurture_lake
from nurture_lake.cli import main
from nurture_lake.jobs import JOBS
from nurture_lake.schemas import GOLD_CADENCE_DECISIONS, QuarantineReason

README = Path(__file__).resolve().parents[1] / "README.md"
COMMON = {"-h", "--help", "--env", "--set", "--master"}  # the paragraph above the table names these


def _job_rows() -> dict[str, str]:
    section = README.read_text().split("## Jobs", 1)[1].split("\n## ", 1)[0]
    return {found.group(1): line for line in section.splitlines() if (found := re.match(r"\| `([a-z-]+)` \|", line))}


def _options(job: str) -> set[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main([job, "--help"])
    assert exited.value.code == 0, out.getvalue()
    return set(re.findall(r"(?<![\w-])--?[a-z][a-z-]*", out.getvalue().split("options:", 1)[1])) - COMMON


def test_the_job_table_lists_exactly_the_jobs_the_console_script_runs() -> None:
    assert sorted(_job_rows()) == sorted(JOBS)


@pytest.mark.parametrize("job", sorted(JOBS))
def test_every_option_of_a_job_is_in_its_readme_row(job: str) -> None:
    row = _job_rows()[job]
    missing = sorted(option for option in _options(job) if not re.search(rf"`[^`]*{re.escape(option)}\b", row))
    assert missing == [], f"README's `{job}` row lacks {missing}"


def _tree_lines() -> list[str]:
    return README.read_text().split("## Folder tree", 1)[1].split("```", 2)[1].splitlines()


def test_the_folder_tree_has_a_line_for_every_folder_of_the_checkout_and_every_subpackage() -> None:
    root = README.parent
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    folders = {path.split("/", 1)[0] + "/" for path in tracked if "/" in path}
    packages = {p.parent.name + "/" for p in (root / "src" / "nurture_lake").glob("*/__init__.py")}
    named = {line.split()[0] for line in _tree_lines() if line.strip()}
    assert sorted(folders - {"src/"} - named) == [] and "src/nurture_lake/" in named
    assert sorted(packages - named) == []


def test_the_table_contracts_name_every_table_the_library_writes() -> None:
    section = README.read_text().split("## Table contracts", 1)[1].split("\n## ", 1)[0]
    listed = {found.group(1).removeprefix("global.") for line in section.splitlines()
              if (found := re.match(r"\| `([a-z_.]+)` \|", line))}
    source = "\n".join(p.read_text() for p in (README.parent / "src" / "nurture_lake").rglob("*.py"))
    written = {f"{layer}.{name}" for layer, name in
               re.findall(r"\.table\([^,()]+, \"(bronze|silver|gold|ops)\", \"([a-z_]+)\"\)", source)}
    assert len(written) > 15  # the pattern still finds the library's tables
    assert sorted(written - listed) == []


def test_the_decision_row_and_the_quarantine_reasons_are_the_schemas() -> None:
    section = README.read_text().split("## Table contracts", 1)[1].split("\n## ", 1)[0]
    decision = section.split("A **decision row**", 1)[1].split("\n\n", 1)[0]
    reasons = section.split("Quarantine reasons:", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"`([a-z_]+)`", decision) == GOLD_CADENCE_DECISIONS.fieldNames()
    assert sorted(re.findall(r"`([a-z_]+)`", reasons)) == sorted(QuarantineReason.ALL)


def test_every_configuration_field_is_documented_in_its_model() -> None:
    """The README sends readers to the pydantic models: each field there carries its description."""
    models = set()
    for module in pkgutil.walk_packages(nurture_lake.__path__, "nurture_lake."):
        for obj in vars(importlib.import_module(module.name)).values():
            if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj.__module__ == module.name:
                models.add(obj)
    fields = [(model, name, info) for model in models for name, info in model.model_fields.items()]
    assert len(fields) > 150  # every section's model was found
    assert sorted(f"{m.__module__}.{m.__name__}.{name}" for m, name, info in fields if not info.description) == []
