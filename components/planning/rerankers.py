"""Scoring with a generative checkpoint: the conversion vLLM runs for it, or why it cannot score.

vLLM's `--convert classify` wraps any causal LM in as_seq_cls_model (vllm/model_executor/models/adapters.py, 0.13.0
and 0.33.0), whose `score` layer loads from the checkpoint; a plain *ForCausalLM checkpoint has none, so the head
would stay untrained. Only the reranker families of components/catalog/rerankers.py get a real head, derived from
lm_head at load time through their `--hf-overrides`.
"""

from __future__ import annotations

from typing import Any

from components.catalog import ModelArch
from components.catalog.rerankers import RerankerFamily, family_names, reranker_family
from components.planning.engine_versions import ENGINE_VERSIONS, EngineVersion
from components.planning.types import SizingError


def generative_score_problem(arch: ModelArch) -> str | None:
    """Why `task: score` cannot be served from this generative checkpoint, or None for a known reranker."""
    if reranker_family(arch.id, arch.architecture) is not None:
        return None
    tasks = "embed" if arch.task == "embed" else f"{arch.task} or embed"
    return (
        f"{arch.id} ({arch.architecture}) has no classifier head to score with: vLLM's --convert classify would "
        "give it an untrained score layer (as_seq_cls_model in vllm/model_executor/models/adapters.py), and it is "
        f"not a reranker whose head vLLM derives from lm_head ({family_names()}); set task: {tasks}, "
        "or serve its *ForSequenceClassification checkpoint"
    )


def score_family(arch: ModelArch, engine: EngineVersion, field: str) -> RerankerFamily | None:
    """The reranker family a generative checkpoint scores as, None for any other model; refused where the
    release cannot build its score head."""
    if arch.task != "score" or not arch.generative:
        return None
    family = reranker_family(arch.id, arch.architecture)
    if family is None:  # task_problem refuses these first; kept for callers that skip it
        raise SizingError([f"{field}.task: {generative_score_problem(arch)}"])
    hooks = engine.original_qwen3_reranker_architectures
    if family.original_qwen3 and family.classifier_architecture not in hooks:
        releases = [
            v
            for v, row in ENGINE_VERSIONS.items()
            if family.classifier_architecture in row.original_qwen3_reranker_architectures
        ]
        raise SizingError(
            [
                f"{field}.vllmVersion: vLLM {engine.version} has no is_original_qwen3_reranker hook for "
                f"{family.classifier_architecture} (MODELS_CONFIG_MAP in vllm/model_executor/models/config.py), "
                f"so {arch.id} would load without a score head; set vllmVersion: {' or '.join(releases)}"
            ]
        )
    return family


def pooling_flags(arch: ModelArch, engine: EngineVersion, field: str) -> list[str]:
    """The runner and conversion of a pooling task: a generative architecture embeds through vLLM's embedding
    adapter, or scores through its classification adapter when it is a known reranker."""
    flags = list(engine.pooling_runner_flags)
    if arch.generative:
        flags += [engine.convert_flag, "classify" if score_family(arch, engine, field) else "embed"]
    return flags


def score_overrides(arch: ModelArch, engine: EngineVersion, field: str) -> dict[str, Any]:
    """The `--hf-overrides` keys a reranker checkpoint needs ({} for any other model)."""
    family = score_family(arch, engine, field)
    return family.overrides() if family else {}


def pooling_flags_text(arch: ModelArch) -> str:
    """The conversion as the plan's reasons show it (the same in every supported release)."""
    if not arch.generative:
        return "--runner pooling"
    family = reranker_family(arch.id, arch.architecture) if arch.task == "score" else None
    if family is None:
        return "--runner pooling --convert embed"
    return (
        f"--runner pooling --convert classify as {family.classifier_architecture} "
        f"(--hf-overrides of the {family.name} family: score head from lm_head's {'/'.join(family.tokens)} rows)"
    )


def reranker_source(arch: ModelArch) -> str | None:
    """Why a generative checkpoint scores without being asked: it is a known reranker."""
    family = reranker_family(arch.id, arch.architecture) if arch.task == "score" else None
    return f"a {family.name} checkpoint ({family.source})" if family else None
