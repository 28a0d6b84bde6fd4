"""`size` flags of issue 14: --model with --config, the batch limits, --task, --gpu-memory-gib's meaning, and
--nvlink-domain's default with --no-p2p."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from components.tools.cli import build_parser, main

CATALOG_CONFIGS = Path(__file__).resolve().parents[1] / "components" / "catalog" / "configs"


def size_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["size", *argv, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def test_model_with_config_names_the_served_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "configs" / "config.json"
    config.parent.mkdir()
    shutil.copy(CATALOG_CONFIGS / "meta-llama" / "Llama-3.1-8B-Instruct" / "config.json", config)
    code, s, err = size_json(
        capsys, "--model", "acme/llama-8b-finetune", "--config", str(config), "--params-b", "8.03", "--gpu", "L40S-48GB"
    )
    assert code == 0, err
    assert s["model"] == "acme/llama-8b-finetune"
    assert s["vllm_args"][0] == "acme/llama-8b-finetune"
    # Without --model the config's folder names it, as before.
    code, s, _ = size_json(capsys, "--config", str(config), "--params-b", "8.03", "--gpu", "L40S-48GB")
    assert code == 0 and s["model"] == "configs"


def test_model_or_config_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["size", "--gpu", "L40S-48GB"])
    assert code == 1
    assert "--model or --config: required" in capsys.readouterr().err


def test_batch_limit_flags_reach_the_plan_and_the_vllm_args(capsys: pytest.CaptureFixture[str]) -> None:
    code, s, err = size_json(
        capsys,
        "--model", "Qwen/Qwen2.5-Coder-7B-Instruct", "--gpu", "H100-SXM-80GB",
        "--max-num-seqs", "64", "--max-num-batched-tokens", "4096",
    )  # fmt: skip
    assert code == 0, err
    assert (s["max_num_seqs"], s["max_num_batched_tokens"]) == (64, 4096)
    args = s["vllm_args"]
    assert args[args.index("--max-num-seqs") + 1] == "64"
    assert args[args.index("--max-num-batched-tokens") + 1] == "4096"


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--max-num-seqs", "0", "--max-num-seqs: must be > 0"),
        ("--max-num-seqs", "65537", "--max-num-seqs: must be at most 65536"),
        ("--max-num-batched-tokens", "many", "--max-num-batched-tokens: 'many' is not a number"),
    ],
)
def test_batch_limit_flags_are_checked(flag: str, value: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["size", "--model", "Qwen/Qwen2.5-Coder-7B-Instruct", "--gpu", "H100-SXM-80GB", flag, value])
    assert code == 1
    assert said in capsys.readouterr().err


def test_default_batch_limits_are_printed(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["size", "--model", "Qwen/Qwen2.5-Coder-7B-Instruct", "--gpu", "L40S-48GB"])
    out = capsys.readouterr().out
    assert code == 0
    assert "batch limits: max_num_seqs 256, max_num_batched_tokens 2048" in out
    assert "--max-num-seqs 256 --max-num-batched-tokens 2048" in out


@pytest.mark.parametrize("task", ["embed", "score"])
def test_task_serves_a_pooling_model_either_way(task: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, s, err = size_json(capsys, "--model", "BAAI/bge-m3", "--gpu", "L4-24GB", "--task", task)
    assert code == 0, err
    assert s["task"] == task
    assert "pooling" in s["vllm_args"]


def test_gpu_memory_gib_says_it_is_the_drivers_total() -> None:
    text = " ".join(_size_help().split())  # argparse wraps help at the terminal's width
    assert "memory of one GPU as the driver reports it" in text and "total: MiB / 1024" in text


def _size_help() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return str(sub.choices["size"].format_help())


def test_no_p2p_defaults_the_nvlink_domain_to_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, s, err = size_json(
        capsys,
        "--model", "Qwen/Qwen2.5-Coder-7B-Instruct", "--gpu-memory-gib", "23.99", "--gpus-per-node", "4", "--no-p2p",
    )  # fmt: skip
    assert code == 0, err
    assert s["env"]["NCCL_P2P_DISABLE"] == "1"
    assert "NVLink domain 1" in _text(capsys, "--gpu-memory-gib", "23.99", "--gpus-per-node", "4", "--no-p2p")


def test_nvlink_domain_is_still_required_with_p2p(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["size", "--model", "Qwen/Qwen2.5-Coder-7B-Instruct", "--gpu-memory-gib", "80", "--gpus-per-node", "4"])
    assert code == 1
    assert "--nvlink-domain is 1 with --no-p2p" in capsys.readouterr().err


def _text(capsys: pytest.CaptureFixture[str], *shape: str) -> str:
    main(["size", "--model", "Qwen/Qwen2.5-Coder-7B-Instruct", *shape])
    return capsys.readouterr().out
