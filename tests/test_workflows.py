"""The GitHub workflows: tests on every PR; per stack found in stacks/, a capacity diff and a preview; gated deploys;
any state backend and secrets provider through the repository's settings. The helper scripts run for real."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.stacks import PROJECT_DIR, stack_names

WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
STACK_MATRIX = PROJECT_DIR / ".ci" / "stack_matrix.py"
PULUMI_SETTINGS = PROJECT_DIR / ".ci" / "pulumi_settings.py"
REUSABLE = "./.github/workflows/pulumi-stack.yml"
FROM_DISCOVERY = r"\$\{\{ fromJSON\(needs\.stacks\.outputs\.(stacks|deployed)\) \}\}"
# Every action a workflow may use, pinned as before (major tags of the publishers' own actions).
ACTIONS = {
    "actions/checkout@v4",
    "actions/setup-python@v5",
    "marocchino/sticky-pull-request-comment@v2",
    "pulumi/actions@v6",
    "pulumi/auth-actions@v1",
}
# pulumi/actions' inputs at the pinned major (action.yml of v6.6.1, the newest v6 release).
PULUMI_ACTION_INPUTS = {
    "command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr",
    "comment-on-pr-number", "comment-on-summary", "github-token", "cloud-url", "secrets-provider", "parallel",
    "message", "config-map", "expect-no-changes", "diff", "replace", "exclude", "exclude-dependents", "target",
    "target-dependents", "policyPacks", "policyPackConfigs", "refresh", "upsert", "remove", "edit-pr-comment",
    "color", "exclude-protected", "plan", "suppress-outputs", "suppress-progress", "always-include-summary",
    "continue-on-error", "log-verbosity", "log-flow", "debug",
}  # fmt: skip
# What the Pulumi job's environment takes from the repository's settings: the backend and secrets provider and the
# credentials each needs (README "State backend and secrets provider").
BACKEND_SETTINGS = {
    "PULUMI_BACKEND_URL": "${{ vars.PULUMI_BACKEND_URL }}",
    "PULUMI_SECRETS_PROVIDER": "${{ vars.PULUMI_SECRETS_PROVIDER }}",
    "PULUMI_ORG": "${{ vars.PULUMI_ORG }}",
    "PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}",
    "PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
    "AWS_ACCESS_KEY_ID": "${{ secrets.AWS_ACCESS_KEY_ID }}",
    "AWS_SECRET_ACCESS_KEY": "${{ secrets.AWS_SECRET_ACCESS_KEY }}",
    "AWS_REGION": "${{ vars.AWS_REGION }}",
    "AZURE_STORAGE_ACCOUNT": "${{ vars.AZURE_STORAGE_ACCOUNT }}",
    "AZURE_STORAGE_KEY": "${{ secrets.AZURE_STORAGE_KEY }}",
    "AZURE_TENANT_ID": "${{ vars.AZURE_TENANT_ID }}",
    "AZURE_CLIENT_ID": "${{ vars.AZURE_CLIENT_ID }}",
    "AZURE_CLIENT_SECRET": "${{ secrets.AZURE_CLIENT_SECRET }}",
    "GOOGLE_CREDENTIALS": "${{ secrets.GOOGLE_CREDENTIALS }}",
    "VAULT_SERVER_URL": "${{ vars.VAULT_SERVER_URL }}",
    "VAULT_SERVER_TOKEN": "${{ secrets.VAULT_SERVER_TOKEN }}",
}


def workflow(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as True
    return dict(document)


def all_workflows() -> dict[str, dict[str, Any]]:
    return {path.name: workflow(path.name) for path in sorted(WORKFLOWS.glob("*.yml"))}


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(action)]


def scalars(node: object) -> Iterator[str]:
    """Every key and value of a workflow, as text."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from scalars(value)
    elif isinstance(node, list):
        for item in node:
            yield from scalars(item)
    else:
        yield str(node)


def run_script(script: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def step_outputs(stdout: str) -> dict[str, str]:
    """`name=value` lines, as GitHub reads $GITHUB_OUTPUT."""
    return dict(line.split("=", 1) for line in stdout.splitlines())


def matrix_outputs(*args: str) -> dict[str, list[str]]:
    result = run_script(STACK_MATRIX, *args)
    assert result.returncode == 0, result.stderr
    return {name: json.loads(value) for name, value in step_outputs(result.stdout).items()}


# ---------------------------------------------------------------- every workflow


def test_every_workflow_is_valid_against_githubs_workflow_schema() -> None:
    """SchemaStore's github-workflow schema, as vendored by check-jsonschema (offline)."""
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_action_is_pinned_as_before_and_every_called_workflow_exists() -> None:
    for name, document in all_workflows().items():
        for job_name, job in document["jobs"].items():
            if "uses" in job:
                assert job["uses"] == REUSABLE and (PROJECT_DIR / job["uses"]).is_file(), (name, job_name)
            for step in job.get("steps", []):
                if "uses" in step:
                    assert step["uses"] in ACTIONS, (name, job_name, step["uses"])


def test_no_workflow_names_a_stack() -> None:
    """A stack list written into a workflow would leave a new team stack without preview or deploy."""
    names = stack_names()
    assert "dev" in names and any(name.startswith("example-") for name in names)
    stack_word = re.compile(r"(?<![\w-])(" + "|".join(re.escape(name) for name in names) + r")(?![\w-])")
    for name, document in all_workflows().items():
        offenders = [text for text in scalars(document) if stack_word.search(text)]
        assert not offenders, (name, offenders)
        for job in document["jobs"].values():
            matrix = job.get("strategy", {}).get("matrix")
            if matrix is not None:
                assert re.fullmatch(FROM_DISCOVERY, matrix["stack"]), (name, matrix)


def test_tests_run_ci_on_every_pull_request() -> None:
    tests = workflow("tests.yml")
    assert "pull_request" in tests["on"]
    assert any(s.get("run") == "bash .ci/run" for s in tests["jobs"]["tests"]["steps"])


# ---------------------------------------------------------------- stack discovery


def test_discovery_lists_exactly_the_stack_files_and_deploys_all_but_the_examples() -> None:
    outputs = matrix_outputs()
    assert outputs["stacks"] == stack_names()
    assert sorted(outputs["deployed"]) == [name for name in stack_names() if not name.startswith("example-")]
    assert outputs["deployed"] == ["dev", "staging", "prod"]  # promotion order


def test_a_new_team_stack_is_previewed_and_deployed_between_dev_and_prod(tmp_path: Path) -> None:
    for name in ["prod", "dev", "team-a", "example-lab", "staging", "alpha"]:
        (tmp_path / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    (tmp_path / "Pulumi.yaml").write_text("name: not-a-stack\n")
    outputs = matrix_outputs("--stacks-dir", str(tmp_path))
    assert outputs["stacks"] == ["alpha", "dev", "example-lab", "prod", "staging", "team-a"]
    assert outputs["deployed"] == ["dev", "alpha", "staging", "team-a", "prod"]


def test_discovery_refuses_a_stack_name_no_workflow_can_carry(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    (tmp_path / "Pulumi.$(id).yaml").write_text("config: {}\n")
    result = run_script(STACK_MATRIX, "--stacks-dir", str(tmp_path))
    assert result.returncode == 1 and not result.stdout
    assert "Pulumi.$(id).yaml" in result.stderr and "letters, digits" in result.stderr
    empty = run_script(STACK_MATRIX, "--stacks-dir", str(tmp_path / "none"))
    assert empty.returncode == 1 and "no Pulumi.<stack>.yaml" in empty.stderr


def test_preview_and_deploy_take_their_matrices_from_the_discovery_job() -> None:
    for name, outputs in [("preview.yml", {"stacks", "deployed"}), ("deploy.yml", {"deployed"})]:
        stacks = workflow(name)["jobs"]["stacks"]
        (discover,) = [s for s in stacks["steps"] if s.get("id") == "discover"]
        assert discover["run"] == 'python3 .ci/stack_matrix.py >> "$GITHUB_OUTPUT"'
        assert stacks["outputs"] == {out: f"${{{{ steps.discover.outputs.{out} }}}}" for out in outputs}
    preview = workflow("preview.yml")["jobs"]
    assert preview["capacity-diff"]["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"
    deployed = "${{ fromJSON(needs.stacks.outputs.deployed) }}"
    for job in [preview["preview"], workflow("deploy.yml")["jobs"]["up"]]:
        assert job["needs"] == "stacks" and job["strategy"]["matrix"]["stack"] == deployed
        assert job["if"] == "needs.stacks.outputs.deployed != '[]'"  # an empty matrix is an error in GitHub


# ---------------------------------------------------------------- preview and deploy


def test_preview_comments_per_stack_with_the_policy_pack_and_a_capacity_diff() -> None:
    preview = workflow("preview.yml")
    assert preview["permissions"]["pull-requests"] == "write" and preview["permissions"]["id-token"] == "write"
    job = preview["jobs"]["preview"]
    assert job["uses"] == REUSABLE and job["secrets"] == "inherit"
    assert job["with"] == {
        "stack": "${{ matrix.stack }}",
        "command": "preview",
        "environment": "${{ matrix.stack }}-preview",
    }
    (pulumi,) = steps_using(workflow("pulumi-stack.yml")["jobs"]["pulumi"], "pulumi/actions@")
    options = pulumi["with"]
    assert options["command"] == "${{ inputs.command }}" and options["policyPacks"] == "policy"
    assert options["comment-on-pr"] == "${{ inputs.command == 'preview' }}" and options["edit-pr-comment"] is True
    diff = preview["jobs"]["capacity-diff"]
    (plan,) = [s for s in diff["steps"] if "components plan" in str(s.get("run", ""))]
    assert '--stack "$STACK" --diff "origin/$BASE_REF"' in plan["run"]  # the values reach the shell as variables
    assert plan["env"] == {"STACK": "${{ matrix.stack }}", "BASE_REF": "${{ github.base_ref }}"}
    (comment,) = steps_using(diff, "marocchino/sticky-pull-request-comment@")
    assert comment["with"]["header"] == "capacity-${{ matrix.stack }}"


def test_merges_deploy_one_stack_at_a_time_in_promotion_order_behind_environments() -> None:
    deploy = workflow("deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    assert deploy["concurrency"] == {"group": "deploy", "cancel-in-progress": False}
    up = deploy["jobs"]["up"]
    assert up["strategy"]["max-parallel"] == 1 and up["strategy"]["fail-fast"] is True
    assert up["uses"] == REUSABLE and up["secrets"] == "inherit"
    assert up["with"] == {"stack": "${{ matrix.stack }}", "command": "up", "environment": "${{ matrix.stack }}"}
    reusable = workflow("pulumi-stack.yml")
    assert "permissions" not in reusable  # the callers' apply; asking for more than a caller holds fails the run
    assert reusable["jobs"]["pulumi"]["environment"] == "${{ inputs.environment }}"
    assert set(deploy["permissions"]) == {"contents", "id-token"}


# ---------------------------------------------------------------- backend and secrets provider


def pulumi_steps() -> Iterator[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(workflow, document, job, step) of every pulumi/actions step in every workflow."""
    for name, document in all_workflows().items():
        for job in document["jobs"].values():
            for step in steps_using(job, "pulumi/actions@"):
                yield name, document, job, step


def test_every_pulumi_step_gets_the_backend_and_secrets_settings() -> None:
    found = list(pulumi_steps())
    assert [name for name, *_ in found] == ["pulumi-stack.yml"]  # one Pulumi job, shared by preview and deploy
    for name, document, job, step in found:
        env = {**document.get("env", {}), **job.get("env", {}), **step.get("env", {})}
        assert {key: env.get(key) for key in BACKEND_SETTINGS} == BACKEND_SETTINGS, name
        assert env["PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER"] == "true"
        options = step["with"]
        assert set(options) <= PULUMI_ACTION_INPUTS, set(options) - PULUMI_ACTION_INPUTS
        assert options["cloud-url"] == "${{ env.PULUMI_BACKEND_URL }}"
        assert options["secrets-provider"] == "${{ env.PULUMI_SECRETS_PROVIDER }}"
        assert options["upsert"] is True  # a new stack file gets its stack
        assert options["stack-name"] == "${{ steps.settings.outputs.stack-name }}"
        steps = job["steps"]
        (settings,) = [s for s in steps if s.get("id") == "settings"]
        assert settings["run"] == 'python3 .ci/pulumi_settings.py --stack "$STACK" >> "$GITHUB_OUTPUT"'
        assert settings["env"] == {"STACK": "${{ inputs.stack }}"}
        (oidc,) = steps_using(job, "pulumi/auth-actions@")
        assert oidc["if"].startswith("env.PULUMI_ACCESS_TOKEN == '' && (env.PULUMI_BACKEND_URL == ''")
        assert steps.index(settings) < steps.index(oidc) < steps.index(step)
        assert job["runs-on"] == "${{ vars.PULUMI_RUNS_ON || 'ubuntu-24.04' }}"


def test_the_pulumi_cli_is_the_version_of_the_pinned_sdk() -> None:
    sdk = re.search(r"^pulumi==(\S+)", (PROJECT_DIR / "requirements.txt").read_text(), re.MULTILINE)
    assert sdk is not None
    for _, _, _, step in pulumi_steps():
        assert step["with"]["pulumi-version"] == sdk[1]


def test_the_readme_documents_every_setting_the_workflows_read() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme.split("## The environment workflow", 1)[1].split("\n## ", 1)[0]
    read = set()
    for path in WORKFLOWS.glob("*.yml"):
        read |= set(re.findall(r"\b(?:vars|secrets)\.([A-Z_]+)", path.read_text()))
    assert read >= set(re.findall(r"\b(?:vars|secrets)\.([A-Z_]+)", "".join(BACKEND_SETTINGS.values())))
    assert not [name for name in sorted(read) if f"`{name}`" not in section and f".{name}`" not in section]


def settings(
    env: dict[str, str], stack: str = "dev", stacks_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "AWS_", "AZURE_", "VAULT_"))}
    clean.pop("RUNNER_ENVIRONMENT", None)
    args = ["--stack", stack] + (["--stacks-dir", str(stacks_dir)] if stacks_dir else [])
    return run_script(PULUMI_SETTINGS, *args, env={**clean, **env})


MINIO = "s3://llm-cluster-state?endpoint=https://minio.corp.example:9000&use_path_style=true&region=us-east-1"
PASSPHRASE = {"PULUMI_CONFIG_PASSPHRASE": "p"}


def backend(url: str, **env: str) -> dict[str, str]:
    return {"PULUMI_BACKEND_URL": url, **env}


VAULT = {
    "PULUMI_SECRETS_PROVIDER": "hashivault://llm-cluster",
    "VAULT_SERVER_URL": "https://vault.corp.example:8200",
    "VAULT_SERVER_TOKEN": "hvs.x",
}


@pytest.mark.parametrize(
    ("env", "stack_name"),
    [
        ({"PULUMI_ORG": "acme"}, "acme/llm-cluster/dev"),  # Pulumi Cloud through OIDC
        ({"PULUMI_ACCESS_TOKEN": "pul-x"}, "dev"),  # a stored token, in its default organization
        (backend(MINIO, PULUMI_ORG="acme", **PASSPHRASE), "dev"),
        (backend("s3://state?endpoint=http://10.0.0.5:9000&s3ForcePathStyle=true", AWS_REGION="r", **VAULT), "dev"),
        (
            backend("gs://state", PULUMI_SECRETS_PROVIDER="gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k"),
            "dev",
        ),
        (backend("azblob://state", AZURE_STORAGE_ACCOUNT="a", **PASSPHRASE), "dev"),
        (backend("file:///srv/pulumi", RUNNER_ENVIRONMENT="self-hosted", **PASSPHRASE), "dev"),
        (backend("https://api.pulumi.corp.example", PULUMI_ORG="acme"), "acme/llm-cluster/dev"),
    ],
)
def test_settings_accept_each_backend_and_provider_and_name_the_stack(env: dict[str, str], stack_name: str) -> None:
    result = settings(env)
    assert result.returncode == 0, result.stderr
    assert step_outputs(result.stdout) == {"stack-name": stack_name}
    assert "hvs.x" not in result.stderr and "state: " in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set the variable PULUMI_ORG"),
        (backend(MINIO), "needs the secret PULUMI_CONFIG_PASSPHRASE"),
        (backend(MINIO, PULUMI_CONFIG_PASSPHRASE=""), "needs the secret PULUMI_CONFIG_PASSPHRASE"),
        (backend(MINIO, PULUMI_SECRETS_PROVIDER="hashivault://k"), "set the secret VAULT_SERVER_TOKEN"),
        (backend(MINIO, PULUMI_SECRETS_PROVIDER="vault://k"), "PULUMI_SECRETS_PROVIDER: 'vault://k'"),
        (backend("s3://b?endpoint=minio:9000&region=r", **PASSPHRASE), "endpoint=https://minio:9000"),
        (backend("s3://b?endpoint=http://m:9000", **PASSPHRASE), "signing region"),
        (backend("s3://b?endpoint=http://m:9000&disableSSL=true&region=r", **PASSPHRASE), "disableSSL is gone"),
        (backend("azblob://state", **PASSPHRASE), "AZURE_STORAGE_ACCOUNT"),
        (backend("file:///srv/pulumi", RUNNER_ENVIRONMENT="github-hosted", **PASSPHRASE), "lost when the job ends"),
        (backend("ftp://state"), "scheme 'ftp' is not a backend"),
    ],
)
def test_settings_refuse_what_pulumi_would_fail_on_and_name_the_setting(env: dict[str, str], message: str) -> None:
    result = settings(env)
    assert result.returncode == 1 and not result.stdout
    assert message in result.stderr and 'README "State backend and secrets provider"' in result.stderr


def test_the_stack_files_own_secrets_provider_wins(tmp_path: Path) -> None:
    """Ciphertext in a stack file belongs to its provider: a Vault stack needs Vault, not the passphrase."""
    (tmp_path / "Pulumi.team-a.yaml").write_text(
        "secretsprovider: hashivault://team-a\nencryptedkey: dmF1bHQ6djE6eA==\nconfig: {}\n"
    )
    (tmp_path / "Pulumi.team-b.yaml").write_text("encryptionsalt: v1:abc:def\nconfig: {}\n")
    vault = {"PULUMI_BACKEND_URL": MINIO, "PULUMI_SECRETS_PROVIDER": "awskms://alias/x"}
    result = settings(vault, "team-a", tmp_path)
    assert result.returncode == 1 and "hashivault://team-a needs a Vault token" in result.stderr
    assert "PULUMI_CONFIG_PASSPHRASE" not in result.stderr
    result = settings({**vault, "VAULT_ADDR": "https://v:8200", "VAULT_TOKEN": "t"}, "team-a", tmp_path)
    assert result.returncode == 0 and "secrets: hashivault://team-a" in result.stderr
    salted = settings({"PULUMI_ORG": "acme"}, "team-b", tmp_path)  # a passphrase stack on Pulumi Cloud
    assert salted.returncode == 1 and "the stack file uses it" in salted.stderr
