"""`plan --stack S --diff BASE`: the capacity diff a pull request shows."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.stacks import STACKS_DIR, load_stack, plan_for
from components.tools.capacity_diff import diff_plans
from components.tools.cli import base_plan, main


def test_a_changed_stack_file_shows_models_and_pool_gpus_before_and_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load((STACKS_DIR / "Pulumi.prod.yaml").read_text())
    models = document["config"]["llm-cluster:cluster"]["models"]
    summariser = next(m for m in models if m["name"] == "qwen2-5-32b-instruct")
    summariser["minConcurrency"] = 2  # the base asked for less KV: TP 2 instead of 4
    models[:] = [m for m in models if m["name"] != "bge-m3"]  # and did not serve bge-m3
    base = tmp_path / "Pulumi.prod.yaml"
    base.write_text(yaml.safe_dump(document))
    assert main(["plan", "--stack", "prod", "--diff", str(base)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"## Capacity diff: stack `prod` (base `{base}`)")
    assert "| `qwen2-5-32b-instruct` | changed | Qwen/Qwen2.5-32B-Instruct | h100 | 2x1 → 4x1 | 2 → 4 |" in out
    assert "| `bge-m3` | added |" in out
    assert "| `h100` | H100-SXM-80GB x8 | 4 | 32 | 12 → 14 | 22 → 26 |" in out
    assert "| `t-pro-it-1-0` |" not in out  # unchanged models are not listed


def test_a_git_ref_is_read_from_history() -> None:
    at_head = base_plan("prod", "HEAD")
    assert at_head is not None
    assert "No model changes." in diff_plans(at_head, at_head, "prod", "HEAD")


def test_a_stack_new_at_the_base_shows_everything_added() -> None:
    text = diff_plans(None, plan_for(load_stack("staging")), "staging", "main")
    assert "| `ministral-14b` | added | - → mistralai/Ministral-3-14B-Instruct-2512 |" in text
    assert "| `h100` (added) |" in text


def test_a_base_that_is_neither_file_nor_ref_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "prod", "--diff", "no-such-ref-or-file"]) == 1
    assert "--diff: 'no-such-ref-or-file' is neither a stack file nor a git ref" in capsys.readouterr().err
