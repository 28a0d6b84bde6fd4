"""The Pulumi program itself, run under mocks: no cluster, no CLI."""

from __future__ import annotations

import pytest
import yaml

from components.stacks import PROJECT_DIR
from components.tools.render import RenderError, _monitor, run_program
from testbed.stacks import rendered, stack_config


def test_every_stack_synthesizes_and_exports_its_plan(stack: str) -> None:
    run = rendered(stack)
    plan = run.exports["plan"]
    assert plan["models"] and plan["pools"]
    assert set(run.exports["gpus"]) == {p["name"] for p in plan["pools"]}
    served = sorted(name for names in run.exports["models"].values() for name in names)
    assert served == sorted(m["name"] for m in plan["models"])
    assert run.exports["apiUrl"] == plan["api_service"]["url"]
    for pool in plan["pools"]:
        assert pool["gpus_used_max"] <= pool["gpus_total"]
    components = {r.type for r in run.registrations if r.type.startswith("llm-cluster:")}
    assert {"llm-cluster:cluster:LlmCluster", "llm-cluster:model_server:VllmModel"} <= components


def test_a_bad_spec_stops_the_program_before_any_resource() -> None:
    cluster = stack_config("dev")
    cluster["models"][0]["tensorParallel"] = 5
    with pytest.raises(RenderError, match=r"models\[0\]\.tensorParallel: 5 does not divide 12 attention heads"):
        run_program(cluster)
    assert not _monitor().resources  # nothing half-applied


def test_project_file_declares_config_with_types_pulumi_accepts() -> None:
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    assert project["name"] == "llm-cluster" and project["stackConfigDir"] == "stacks"
    assert project["runtime"]["options"]["virtualenv"] == ".venv"
    for key, schema in project["config"].items():
        assert key.startswith("llm-cluster:")
        assert schema["type"] in ("string", "boolean", "integer", "array")
        assert schema["description"]
        assert "default" in schema  # a declared key without a default would be required in every stack
