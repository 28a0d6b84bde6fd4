"""The GitHub workflows: tests on every PR, per-stack capacity diff and preview, gated deploys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"
STACKS = ["dev", "staging", "prod"]


def workflow(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as True
    return dict(document)


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(action)]


def test_tests_run_ci_on_every_pull_request() -> None:
    tests = workflow("tests.yml")
    assert "pull_request" in tests["on"]
    assert any(s.get("run") == "bash .ci/run" for s in tests["jobs"]["tests"]["steps"])


def test_preview_comments_per_stack_with_the_policy_pack_and_a_capacity_diff() -> None:
    preview = workflow("preview.yml")
    assert preview["permissions"]["pull-requests"] == "write" and preview["permissions"]["id-token"] == "write"
    job = preview["jobs"]["preview"]
    assert job["strategy"]["matrix"]["stack"] == STACKS
    (pulumi,) = steps_using(job, "pulumi/actions@")
    options = pulumi["with"]
    assert options["command"] == "preview" and options["policyPacks"] == "policy"
    assert options["comment-on-pr"] is True and options["edit-pr-comment"] is True
    assert options["stack-name"].endswith("/llm-cluster/${{ matrix.stack }}")
    diff = preview["jobs"]["capacity-diff"]
    assert diff["strategy"]["matrix"]["stack"] == STACKS
    assert any("--diff origin/${{ github.base_ref }}" in str(s.get("run", "")) for s in diff["steps"])
    assert steps_using(diff, "marocchino/sticky-pull-request-comment@")


def test_merges_deploy_dev_then_staging_and_prod_behind_environments() -> None:
    deploy = workflow("deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    jobs = deploy["jobs"]
    assert [jobs[s]["with"]["stack"] for s in STACKS] == STACKS
    assert jobs["staging"]["needs"] == "dev" and jobs["prod"]["needs"] == "staging"
    reusable = workflow("pulumi-stack.yml")["jobs"]["pulumi"]
    assert reusable["environment"] == "${{ inputs.stack }}"
    (pulumi,) = steps_using(reusable, "pulumi/actions@")
    assert pulumi["with"]["policyPacks"] == "policy"
    assert steps_using(reusable, "pulumi/auth-actions@")  # OIDC, no stored Pulumi token
