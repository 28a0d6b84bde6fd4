"""Causal-LM rerankers (components/catalog/rerankers.py, components/planning/rerankers.py): which generative
checkpoints can score, the conversion the plan emits for each supported vLLM release, and the refusals. The real
Qwen3-Reranker-0.6B config.json is in tests/catalog/configs; tests/engine/test_vllm_rerankers.py runs the emitted
args through the real vLLM of each release."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from components.catalog import ModelArch, arch_from_hf_config, load_gpu_catalog, load_hf_config
from components.catalog.rerankers import RERANKER_FAMILIES, reranker_family
from components.planning.engine_versions import ENGINE_VERSIONS
from components.planning.sizing import size_model
from components.planning.types import GpuShape, Sizing, SizingError, SizingRequest
from components.tools.cli import main

CONFIG = Path(__file__).parent / "catalog" / "configs" / "Qwen" / "Qwen3-Reranker-0.6B" / "config.json"
RERANKER = "Qwen/Qwen3-Reranker-0.6B"
L4 = GpuShape.of(load_gpu_catalog()["L4-24GB"], 1)


def reranker() -> ModelArch:
    return load_hf_config(CONFIG, RERANKER)


def size(arch: ModelArch, version: str = "0.13.0", **asked: Any) -> Sizing:
    return size_model(SizingRequest(arch=arch, vllm_version=version, **asked), L4, max_nodes=1)


def after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def overrides(args: list[str]) -> dict[str, Any]:
    """The --hf-overrides of either spelling (one JSON, or one dotted key per flag) as one dict."""
    found: dict[str, Any] = {}
    for i, arg in enumerate(args):
        if arg == "--hf-overrides":
            found.update(json.loads(args[i + 1]))
        elif arg.startswith("--hf-overrides."):
            found[arg.removeprefix("--hf-overrides.")] = json.loads(args[i + 1])
    return found


def test_a_qwen3_reranker_checkpoint_scores_through_vllms_classify_conversion() -> None:
    arch = reranker()
    assert (arch.architecture, arch.task, arch.generative) == ("Qwen3ForCausalLM", "score", True)
    for version in ENGINE_VERSIONS:
        sizing = size(arch, version)
        args = sizing.vllm_args
        assert (sizing.task, after(args, "--runner"), after(args, "--convert")) == ("score", "pooling", "classify")
        assert overrides(args) == {
            "architectures": ["Qwen3ForSequenceClassification"],
            "classifier_from_token": ["no", "yes"],
            "is_original_qwen3_reranker": True,
        }
    reason = next(r for r in size(arch).reasons if r.startswith("task score"))
    assert "a Qwen3-Reranker checkpoint" in reason and "--convert classify as Qwen3ForSequenceClassification" in reason


def test_asking_score_explicitly_gives_the_same_args() -> None:
    assert size(reranker(), task="score").vllm_args == size(reranker()).vllm_args


def test_a_reranker_may_still_be_served_as_the_language_model_or_an_embedder() -> None:
    generate = size(reranker(), task="generate").vllm_args
    assert "--runner" not in generate and not overrides(generate)
    embed = size(reranker(), task="embed").vllm_args
    assert after(embed, "--convert") == "embed" and not overrides(embed)


def test_the_score_model_has_a_kv_cache_and_no_sampler() -> None:
    score, generate = size(reranker()), size(reranker(), task="generate")
    assert score.memory.weights == generate.memory.weights
    assert score.memory.activation < generate.memory.activation  # no sampler logits for the vocabulary
    assert score.kv_cache_tokens and score.kv_cache_tokens >= (generate.kv_cache_tokens or 0)


@pytest.mark.parametrize(
    ("model_id", "architecture", "model_type", "expected"),
    [
        (
            "mixedbread-ai/mxbai-rerank-base-v2",
            "Qwen2ForCausalLM",
            "qwen2",
            {
                "architectures": ["Qwen2ForSequenceClassification"],
                "classifier_from_token": ["0", "1"],
                "method": "from_2_way_softmax",
            },
        ),
        (
            "BAAI/bge-reranker-v2-gemma",
            "GemmaForCausalLM",
            "gemma",
            {
                "architectures": ["GemmaForSequenceClassification"],
                "classifier_from_token": ["Yes"],
                "method": "no_post_processing",
            },
        ),
    ],
)
def test_other_documented_families_get_their_own_overrides(
    model_id: str, architecture: str, model_type: str, expected: dict[str, Any]
) -> None:
    config = {**json.loads(CONFIG.read_text()), "architectures": [architecture], "model_type": model_type}
    arch = arch_from_hf_config(config, model_id)
    assert arch.task == "score"
    for version in ENGINE_VERSIONS:
        assert overrides(size(arch, version).vllm_args) == expected


def test_a_name_alone_does_not_make_a_reranker() -> None:
    """The family needs both the repository name and the config's architecture."""
    assert reranker_family("acme/Qwen3-Reranker-4B", "Qwen3ForCausalLM") is not None
    assert reranker_family("acme/Qwen3-Reranker-4B", "Qwen2ForCausalLM") is None
    assert reranker_family("acme/Qwen3-Reranker-0.6B-seq-cls", "Qwen3ForSequenceClassification") is None
    assert reranker_family("Qwen3-Reranker-0.6B", "Qwen3ForCausalLM") is not None  # `size --config`: folder name


def test_a_generic_causal_lm_asked_to_score_is_refused_with_the_reason_and_the_fix() -> None:
    arch = load_hf_config(CONFIG, "acme/qwen3-chat")
    assert arch.task == "generate"
    with pytest.raises(SizingError) as refused:
        size(arch, task="score")
    message = str(refused.value)
    assert "model.task: acme/qwen3-chat (Qwen3ForCausalLM) has no classifier head to score with" in message
    assert "untrained score layer" in message and "Qwen3-Reranker (Qwen3ForCausalLM)" in message
    assert "set task: generate or embed, or serve its *ForSequenceClassification checkpoint" in message


def test_a_reranker_family_the_release_cannot_build_is_refused_naming_the_version() -> None:
    """Qwen3-VL-Reranker's is_original_qwen3_reranker hook exists in 0.33 only (engine_versions.py)."""
    vl = replace(reranker(), id="Qwen/Qwen3-VL-Reranker-2B", architecture="Qwen3VLForConditionalGeneration")
    with pytest.raises(SizingError, match=r"model.vllmVersion: vLLM 0.13.0 has no is_original_qwen3_reranker hook .* "
                       r"set vllmVersion: 0.33.0"):  # fmt: skip
        size(vl, "0.13.0")
    assert overrides(size(vl, "0.33.0").vllm_args)["architectures"] == ["Qwen3VLForSequenceClassification"]


def test_every_release_builds_the_qwen3_reranker_head() -> None:
    qwen3 = next(f for f in RERANKER_FAMILIES if f.name == "Qwen3-Reranker")
    for row in ENGINE_VERSIONS.values():
        assert qwen3.classifier_architecture in row.original_qwen3_reranker_architectures
        assert "classify" in row.converts
        assert "original_qwen3_reranker_architectures" in row.sources


def test_size_cli_scores_with_the_reranker_config(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["size", "--config", str(CONFIG), "--gpu", "L4-24GB", "--task", "score", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["fits"] and out["task"] == "score"
    assert out["vllm_args"][0] == "Qwen3-Reranker-0.6B" and after(out["vllm_args"], "--convert") == "classify"
    assert overrides(out["vllm_args"])["architectures"] == ["Qwen3ForSequenceClassification"]
