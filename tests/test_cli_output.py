"""The CLI for people: output that fits 120 columns, commands that paste, next steps, the catalog, `--format` on
every command, a quiet closed pipe, and `llm-cluster` from any directory of the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.catalog import load_gpu_catalog, load_model_catalog
from components.stacks import STACKS_DIR
from components.tools.cli import main
from components.tools.text_layout import TEXT_WIDTH

PROJECT = Path(__file__).resolve().parent.parent
STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in STACKS_DIR.glob("Pulumi.*.yaml"))
# The console script that requirements.txt installs (pyproject.toml [project.scripts]) beside this interpreter.
LLM_CLUSTER = Path(sys.executable).parent / "llm-cluster"
SIZE = ["size", "--model", "Qwen/Qwen3-32B", "--gpu-memory-gib", "24", "--gpus-per-node", "8", "--nvlink-domain",
        "1", "--no-p2p", "--max-model-len", "32768", "--rope-scaling", "yarn:2"]  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str, prog: str = "python -m components") -> str:
    assert main(list(argv), prog=prog) == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def base_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prod as it was before a change: the summariser on 2 GPUs instead of 4, and without bge-m3."""
    document = yaml.safe_load((STACKS_DIR / "Pulumi.prod.yaml").read_text())
    models = document["config"]["llm-cluster:cluster"]["models"]
    next(m for m in models if m["name"] == "qwen2-5-32b-instruct")["minConcurrency"] = 2
    models[:] = [m for m in models if m["name"] != "bge-m3"]
    path = tmp_path_factory.mktemp("base") / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize("stack", STACKS)
def test_the_plan_fits_120_columns_and_wide_shows_one_table(capsys: pytest.CaptureFixture[str], stack: str) -> None:
    text = run(capsys, "plan", "--stack", stack)
    assert max(len(line) for line in text.splitlines()) <= TEXT_WIDTH
    assert "\nMemory per GPU and load\nmodel  " in text  # the second table, keyed by model
    wide = run(capsys, "plan", "--stack", stack, "--wide")
    header = next(line for line in wide.splitlines() if line.startswith("model "))
    assert header.split("  ")[0] == "model" and "max len" in header and "kv tokens" in header
    assert "Memory per GPU and load" not in wide
    assert not any(line.endswith(" \\") for line in wide.splitlines())


def test_prod_was_184_columns_and_now_fits(capsys: pytest.CaptureFixture[str]) -> None:
    wide = run(capsys, "plan", "--stack", "prod", "--wide").splitlines()
    assert max(len(line) for line in wide) > 180  # what --wide still shows, unwrapped
    models = run(capsys, "plan", "--stack", "prod").split("\nModels\n")[1].split("\n\n")[0].splitlines()
    assert models[0].split("  ")[0] == "model" and len(models) == 11  # one line per model: nothing wrapped
    assert max(len(line) for line in models) <= TEXT_WIDTH


@pytest.mark.parametrize("stack", ["prod", "example-multinode"])
def test_the_vllm_commands_paste_into_a_shell(capsys: pytest.CaptureFixture[str], tmp_path: Path, stack: str) -> None:
    """Each wrapped `vllm serve` block, pasted into bash, runs vllm with the plan's arguments and environment."""
    plan = json.loads(run(capsys, "plan", "--stack", stack, "--format", "json"))
    text = run(capsys, "plan", "--stack", stack)
    blocks = text.split("\nvLLM arguments\n")[1].split("\n\nNext steps\n")[0]
    fake = tmp_path / "vllm"
    fake.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "base = set(json.loads(os.environ['BASE_ENV']))\n"
        "env = {k: v for k, v in os.environ.items() if k not in base}\n"
        "print(json.dumps({'args': sys.argv[1:], 'env': env}))\n"
    )
    fake.chmod(0o755)
    base = {"PATH": f"{tmp_path}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    base["BASE_ENV"] = json.dumps([*base, "BASE_ENV", "PWD", "SHLVL", "_", "OLDPWD"])
    ran = subprocess.run(["bash", "-c", blocks], env=base, capture_output=True, text=True, timeout=60, check=True)
    seen = [json.loads(line) for line in ran.stdout.splitlines()]
    assert seen == [{"args": ["serve", *m["vllm_args"]], "env": m["env"]} for m in plan["models"]]
    assert max(len(line) for line in blocks.splitlines()) <= TEXT_WIDTH
    assert any(line.endswith(" \\") for line in blocks.splitlines())


@pytest.mark.parametrize("prog", ["python -m components", "llm-cluster"])
def test_the_plan_ends_with_the_next_steps(capsys: pytest.CaptureFixture[str], prog: str) -> None:
    text = run(capsys, "plan", "--stack", "staging", prog=prog)
    steps = text.split("\nNext steps\n")[1].splitlines()
    assert [s.strip() for s in steps if not s.strip().startswith("#")] == [
        f"{prog} plan --stack staging --render render/staging",
        "pulumi preview --stack staging",
        "pulumi up --stack staging",
    ]
    assert "Next steps" not in run(capsys, "plan", "--stack", "staging", "--format", "markdown")


def test_the_catalog_lists_every_gpu_and_model_with_its_key_facts(capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(run(capsys, "catalog", "--format", "json"))
    gpus, models = load_gpu_catalog(), load_model_catalog()
    assert [g["id"] for g in data["gpus"]] == list(gpus)
    h100 = data["gpus"][0]
    assert (h100["id"], h100["memory_mib"], h100["nvlink_domain"], h100["peer_to_peer"]) == (
        "H100-SXM-80GB",
        81559,
        8,
        True,
    )
    rows = {m["id"]: m for m in data["models"]}
    refused: dict[str, str] = getattr(models, "refused", {})
    assert set(rows) == set(models) | set(refused)
    for model_id, arch in dict.items(models):
        row = rows[model_id]
        assert row["config"] == ("verified" if arch.config_verified else "unverified")
        facts = ("task", "params_b", "layers", "heads", "kv_heads", "max_position", "checkpoint_dtype", "gated")
        assert [row[k] for k in facts] == [getattr(arch, k) for k in facts]
    assert all(rows[m]["config"] == "missing" and rows[m]["config_reason"] for m in refused)
    assert rows["meta-llama/Llama-3.1-8B-Instruct"]["gated"] is True

    text = run(capsys, "catalog")
    assert max(len(line) for line in text.splitlines()) <= TEXT_WIDTH
    r1 = next(line for line in text.splitlines() if line.startswith("deepseek-ai/DeepSeek-R1 "))
    assert r1.split() == ["deepseek-ai/DeepSeek-R1", "generate", "671", "61", "128", "128", "163840", "fp8", "verified",
                          "no"]  # fmt: skip
    assert "unverified" in text and "missing" in text and "config: verified = " in text
    assert f"GPUs ({len(gpus)})" in text
    markdown = run(capsys, "catalog", "--format", "markdown")
    assert "### GPUs" in markdown and "| gpu | arch |" in markdown and "| architecture |" in markdown


COMMANDS = {
    "size": SIZE,
    "plan": ["plan", "--stack", "prod"],
    "plan --diff": ["plan", "--stack", "prod", "--diff", "{base}"],
    "catalog": ["catalog"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("fmt", ["table", "text", "markdown", "json"])
def test_every_command_honours_format(
    capsys: pytest.CaptureFixture[str], base_stack: Path, command: str, fmt: str
) -> None:
    argv = [a.replace("{base}", str(base_stack)) for a in COMMANDS[command]]
    out = run(capsys, *argv, "--format", fmt)
    if fmt == "json":
        assert isinstance(json.loads(out), dict)
        return
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    lines = out.splitlines()
    if fmt == "markdown":
        assert lines[0].startswith("## ")
        assert command == "size" or any(line.startswith("|---|") for line in lines)
    else:
        assert out == run(capsys, *argv, "--format", "table" if fmt == "text" else "text")
        assert not lines[0].startswith("#") and not any(line.startswith("|") for line in lines)
        assert max(len(line) for line in lines) <= TEXT_WIDTH


def test_the_diff_is_markdown_unless_told_and_its_text_and_json_say_the_same(
    capsys: pytest.CaptureFixture[str], base_stack: Path
) -> None:
    argv = ["plan", "--stack", "prod", "--diff", str(base_stack)]
    assert run(capsys, *argv).startswith("## Capacity diff: stack `prod`")  # the PR comment, as preview.yml calls it
    assert run(capsys, "plan", "--stack", "prod").startswith("Capacity plan: stack `prod`")
    diff = json.loads(run(capsys, *argv, "--format", "json"))
    assert [(m["name"], m["change"]) for m in diff["models"]] == [
        ("bge-m3", "added"),
        ("qwen2-5-32b-instruct", "changed"),
    ]
    summariser = diff["models"][1]
    assert (summariser["before"]["tp_pp"], summariser["after"]["tp_pp"]) == ("2x1", "4x1")
    assert diff["gpus_used_max"] == {"before": 30, "after": 34}  # rtx4090: pooling models on quarter slices
    text = run(capsys, *argv, "--format", "table").splitlines()
    assert next(line for line in text if line.startswith("qwen2-5-32b-instruct")).split()[:5] == [
        "qwen2-5-32b-instruct", "changed", "Qwen/Qwen2.5-32B-Instruct", "h100", "2x1→4x1"]  # fmt: skip
    assert "GPUs used at max replicas, all pools: 30 → 34" in text


def test_size_text_fits_and_markdown_fences_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    text = run(capsys, *SIZE)
    assert max(len(line) for line in text.splitlines()) <= TEXT_WIDTH
    assert "  NCCL_P2P_DISABLE=1 vllm serve Qwen/Qwen3-32B " in text
    markdown = run(capsys, *SIZE, "--format", "markdown").splitlines()
    fenced = markdown[markdown.index("```") + 1]
    assert fenced.startswith("NCCL_P2P_DISABLE=1 vllm serve Qwen/Qwen3-32B --tensor-parallel-size 1")
    assert json.loads(run(capsys, *SIZE, "--json")) == json.loads(run(capsys, *SIZE, "--format", "json"))


@pytest.mark.parametrize(
    "argv",
    [["plan", "--stack", "prod"], ["catalog"], ["catalog", "--format", "json"], SIZE],
    ids=["plan", "catalog", "catalog-json", "size"],
)
def test_a_closed_pipe_ends_every_command_quietly(argv: list[str]) -> None:
    """The reader is gone before the first write: the command still exits 0 and prints no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "components", *argv],
            cwd=PROJECT, stdout=write_end, stderr=subprocess.PIPE, timeout=120, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, b"")


@pytest.mark.parametrize("directory", ["components/spec", "tests", "stacks"])
def test_llm_cluster_runs_from_any_directory_of_the_repository(directory: str) -> None:
    """components/spec holds a secrets.py that `python -m` from there would import in place of the standard
    library's; the console script does not put the current directory on sys.path."""
    assert LLM_CLUSTER.exists(), "install the checkout: .venv/bin/pip install -r requirements.txt (it has `-e .`)"
    done = subprocess.run(
        [str(LLM_CLUSTER), "plan", "--stack", "dev", "--format", "json"],
        cwd=PROJECT / directory, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["models"][0]["name"] == "r1-distill-1-5b"


def test_plan_into_head_from_a_subdirectory() -> None:
    """`llm-cluster plan --stack prod | head -1` from components/: the first line, exit 0, nothing on stderr."""
    done = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$0" plan --stack prod | head -1', str(LLM_CLUSTER)],
        cwd=PROJECT / "components", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("Capacity plan: stack `prod` (vLLM ") and done.stdout.count("\n") == 1
