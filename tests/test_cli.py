"""`python -m components size|plan` as operators and CI call it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from components.tools.cli import main

PROJECT = Path(__file__).resolve().parent.parent
STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in (PROJECT / "stacks").glob("Pulumi.*.yaml"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_size_json_has_the_contract_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "size",
        "--model",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
        "--gpu",
        "H100-SXM-80GB",
        "--max-model-len",
        "32768",
        "--max-num-seqs",
        "1024",  # vLLM's H100 default, pinned: the model then needs TP 2
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    for key in (
        "tp",
        "pp",
        "gpus_per_replica",
        "nodes_per_replica",
        "fits",
        "memory",
        "kv_cache_tokens",
        "max_concurrency",
        "vllm_args",
        "env",
        "warnings",
    ):
        assert key in result
    assert set(result["memory"]) >= {"weights", "activation", "non_torch", "kv_cache", "usable"}
    assert (result["tp"], result["pp"], result["fits"]) == (2, 1, True)
    assert result["vllm_args"][0] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"


def test_size_explicit_shape_without_p2p(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "size",
        "--model",
        "Qwen/Qwen3-32B",
        "--gpu-memory-gib",
        "24",
        "--gpus-per-node",
        "8",
        "--nvlink-domain",
        "1",
        "--no-p2p",
        "--max-model-len",
        "32768",
        "--rope-scaling",
        "yarn:2",
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    assert result["env"] == {"NCCL_P2P_DISABLE": "1"}
    assert any(a.startswith("--hf-overrides") for a in result["vllm_args"])


def test_size_from_an_hf_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "torch_dtype": "bfloat16",
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code, out, _ = run(
        capsys,
        "size",
        "--config",
        str(path),
        "--params-b",
        "8.03",
        "--gpu",
        "L4-24GB",
        "--max-model-len",
        "8192",
        "--quantization",
        "fp8",
    )
    assert code == 0
    assert "FITS" in out and "TP 1 x PP 1" in out


def test_size_exits_2_with_one_line_when_nothing_fits(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        "size",
        "--model",
        "Qwen/Qwen2.5-32B-Instruct",
        "--gpu",
        "H100-SXM-80GB",
        "--gpus-per-node",
        "1",
        "--nodes",
        "1",
        "--max-model-len",
        "32768",
        "--max-num-seqs",
        "1024",
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("does not fit: Qwen/Qwen2.5-32B-Instruct does not fit 1 x H100-SXM-80GB")
    assert "quantization: fp8" in lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "Qwen/Qwen3-32B", "--gpu", "H100"], "--gpu: unknown GPU 'H100'; known GPUs: H100-SXM-80GB"),
        (["--model", "acme/unknown", "--gpu", "L4-24GB"], "--model: 'acme/unknown' is not in the model catalog"),
        (["--model", "Qwen/Qwen3-32B"], "--gpu: required"),
        (["--model", "Qwen/Qwen3-32B", "--gpu-memory-gib", "80"], "--gpus-per-node and --nvlink-domain: required"),
        (["--model", "Qwen/Qwen3-32B", "--gpu", "L4-24GB", "--rope-scaling", "linear:2"], "write yarn:<factor>"),
        (["--model", "Qwen/Qwen3-32B", "--gpu", "L4-24GB", "--max-model-len", "-5"], "--max-model-len: must be > 0"),
        (
            ["--model", "Qwen/Qwen3-32B", "--gpu", "H100-SXM-80GB", "--tensor-parallel", "3"],
            "size.tensorParallel: 3 does not divide 64 attention heads of Qwen/Qwen3-32B; use 1, 2, 4 or 8",
        ),
        (["--config", "/nonexistent/config.json", "--gpu", "L4-24GB"], "no such file"),
    ],
)
def test_size_bad_input_exits_1_naming_the_flag(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, "size", *argv)
    assert code == 1
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
def test_plan_prints_every_stack(capsys: pytest.CaptureFixture[str], stack: str, fmt: str) -> None:
    code, out, _ = run(capsys, "plan", "--stack", stack, "--format", fmt)
    assert code == 0
    if fmt == "json":
        plan = json.loads(out)
        assert plan["models"] and plan["pools"]
        assert all(m["tp"] * m["pp"] == m["gpus_per_replica"] for m in plan["models"])
    else:
        assert "Pools" in out and "Models" in out and "vllm serve" in out


def test_plan_of_an_unknown_stack_lists_the_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "--stack", "qa")
    assert code == 1
    assert "no such stack file; stacks: dev" in err


def test_stacks_reproduce_their_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    plans = {}
    for stack in ("dev", "staging", "prod"):
        code, out, _ = run(capsys, "plan", "--stack", stack, "--format", "json")
        assert code == 0
        plans[stack] = json.loads(out)
    dev = plans["dev"]["models"][0]
    assert (dev["model"], dev["min_replicas"], dev["max_replicas"], dev["autoscaling"]) == (
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        2,
        2,
        None,
    )
    staging = plans["staging"]["models"][0]
    assert staging["weight_dtype"] == "fp8" and staging["gpus_per_replica"] == 1
    assert staging["autoscaling"] == {
        "min_replicas": 1,
        "max_replicas": 3,
        "metric": "vllm:num_requests_running",
        "target": 50.0,
        "target_reason": "set in the stack",
        "scale_up_stabilization_seconds": 0,
        "scale_down_stabilization_seconds": 600,
    }
    for flag in (
        "--tokenizer-mode",
        "--config-format",
        "--load-format",
        "--tool-call-parser",
        "--enable-prefix-caching",
    ):
        assert flag in staging["vllm_args"]
    assert plans["staging"]["pools"][0]["instance_type"] == "h100-380"
    assert plans["staging"]["monitoring"]["retention"] == "15d"
    prod = {m["name"]: m for m in plans["prod"]["models"]}
    assert len(prod) == 10
    tasks = [m["task"] for m in prod.values()]
    assert (tasks.count("generate"), tasks.count("embed"), tasks.count("score")) == (6, 3, 1)
    for summariser in ("qwen2-5-32b-instruct", "t-pro-it-1-0"):
        assert prod[summariser]["max_model_len"] == 131072
        assert any(a.startswith("--hf-overrides") for a in prod[summariser]["vllm_args"])
    for coder in ("qwen2-5-coder-32b-instruct", "qwen2-5-coder-7b-instruct"):
        assert prod[coder]["autoscaling"] is None
    assert all(m["gpus_per_replica"] in (1, 2, 4) for m in prod.values())  # seed: one GPU, or 2-4 over NVLink
    assert all(m["env"].get("NCCL_P2P_DISABLE") == "1" for m in prod.values() if m["pool"] == "rtx4090")


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--stack", "dev", "--format", "markdown"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("## Capacity plan: stack `dev`")
