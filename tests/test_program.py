"""The Pulumi program itself, run under mocks: no cluster, no CLI."""

from __future__ import annotations

import pulumi
import pytest

from components.cli import STACKS_DIR, read_stack_config
from tests.conftest import ProgramRunner

STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in STACKS_DIR.glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_synthesizes_and_exports_its_plan(run_program: ProgramRunner, stack: str) -> None:
    exports = run_program(read_stack_config(STACKS_DIR / f"Pulumi.{stack}.yaml"))
    plan = exports["plan"]
    assert plan["models"] and plan["pools"]
    assert set(exports["gpus"]) == {p["name"] for p in plan["pools"]}
    for pool in plan["pools"]:
        assert pool["gpus_used_max"] <= pool["gpus_total"]


def test_a_bad_spec_stops_the_program_with_the_field_path(run_program: ProgramRunner) -> None:
    cluster = read_stack_config(STACKS_DIR / "Pulumi.dev.yaml")
    assert isinstance(cluster, dict)
    cluster["models"][0]["tensorParallel"] = 5
    with pytest.raises(pulumi.RunError, match=r"models\[0\]\.tensorParallel: 5 does not divide 12 attention heads"):
        run_program(cluster)


def test_project_file_declares_config_with_types_pulumi_accepts() -> None:
    import yaml

    project = yaml.safe_load((STACKS_DIR.parent / "Pulumi.yaml").read_text())
    assert project["name"] == "llm-cluster" and project["stackConfigDir"] == "stacks"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    for key, schema in project["config"].items():
        assert key.startswith("llm-cluster:")
        assert schema["type"] in ("string", "boolean", "integer", "array")
        assert schema["description"]
        assert "default" in schema  # a declared key without a default would be required in every stack
