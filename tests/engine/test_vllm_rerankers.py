"""Causal-LM rerankers judged by the real vLLM of every supported release: the real Qwen3-Reranker-0.6B config.json
(Qwen3ForCausalLM, tests/catalog/configs) with the args the plan emits is built into a Qwen3ForSequenceClassification
cross-encoder with one label (the score API), on the pooling runner with the plan's batch limits; without the
family's overrides the same `--convert classify` gives a two-label head that cannot score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.catalog import load_gpu_catalog, load_hf_config
from components.planning.engine_versions import ENGINE_VERSIONS
from components.planning.sizing import size_model
from components.planning.types import GpuShape, Sizing, SizingRequest
from tests.engine import engine_run
from tests.engine.engine_run import VllmContainer, run_engine

FIXTURES = Path(__file__).parents[1] / "catalog"
RERANKER = "Qwen/Qwen3-Reranker-0.6B"
STANDIN = Path(__file__).with_name("score_standin.py")


def without_overrides(args: list[str]) -> list[str]:
    """The args with every `--hf-overrides` flag and its value removed (both spellings)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("--hf-overrides"):
            skip = True
        else:
            kept.append(arg)
    return kept


def plan(version: str, gpu_id: str, **asked: Any) -> Sizing:
    arch = load_hf_config(FIXTURES / "configs" / RERANKER / "config.json", RERANKER)
    request = SizingRequest(arch=arch, vllm_version=version, **asked)
    return size_model(request, GpuShape.of(load_gpu_catalog()[gpu_id], 1), max_nodes=1)


@pytest.mark.parametrize("version", ENGINE_VERSIONS)
def test_vllm_builds_the_planned_reranker(version: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_run, "CATALOG_DIR", FIXTURES)  # the offline HF cache is built from the fixtures
    monkeypatch.setattr(engine_run, "STANDIN", STANDIN)
    gpus = load_gpu_catalog()
    plans = {
        "l4": plan(version, "L4-24GB"),  # the family makes it a score model without being asked
        "h100": plan(version, "H100-SXM-80GB", task="score"),
        "yarn": plan(version, "L4-24GB", rope_factor=2.0, max_model_len=65536),  # one override for both
        "gen": plan(version, "L4-24GB", task="generate"),
    }
    gpu_of = {"h100": "H100-SXM-80GB"}
    containers = [
        VllmContainer(name, p.vllm_args, {}, gpus[gpu_of.get(name, "L4-24GB")], 1, False, 32 * 2**30)
        for name, p in plans.items()
    ]
    # What vLLM makes of a generic causal LM asked to classify: the plan refuses this (rerankers.py).
    containers.append(VllmContainer("bare", without_overrides(plans["l4"].vllm_args), {}, gpus["L4-24GB"], 1, False,
                                    32 * 2**30))  # fmt: skip
    answers = run_engine(containers, tmp_path, version)
    for name in ("l4", "h100", "yarn"):
        answer, planned = answers[name], plans[name]
        assert "error" not in answer, answer
        assert (answer["runner"], answer["convert"], answer["architecture"]) == (
            "pooling",
            "classify",
            "Qwen3ForSequenceClassification",
        )
        assert answer["model_class"] == "Qwen3ForSequenceClassification"
        assert (answer["num_labels"], answer["score_method"], answer["scores"]) == (1, "from_2_way_softmax", True)
        # Causal attention, last-token pooling: chunked prefill as the plan's memory model assumes.
        assert answer["enable_chunked_prefill"] is True and planned.task == "score"
        assert (answer["max_model_len"], answer["max_num_seqs"], answer["max_num_batched_tokens"]) == (
            planned.max_model_len,
            planned.max_num_seqs,
            planned.max_num_batched_tokens,
        )
    assert answers["yarn"]["rope_type"] == "yarn" and answers["yarn"]["max_model_len"] == 65536
    assert "error" not in answers["gen"], answers["gen"]
    assert (answers["gen"]["runner"], answers["gen"]["convert"], answers["gen"]["scores"]) == (
        "generate",
        "none",
        False,
    )
    bare = answers["bare"]
    assert "error" not in bare, bare
    assert (bare["convert"], bare["num_labels"], bare["score_method"], bare["scores"]) == ("classify", 2, None, False)
