"""Decoder-based embedders judged by the real vLLM of every supported release: the pooling runner, the embed
conversion and the batch limits the plan emits for that release for a real sentence-transformers checkpoint outside
the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.catalog import load_gpu_catalog, load_hf_config
from components.planning.engine_versions import ENGINE_VERSIONS
from components.planning.sizing import size_model
from components.planning.types import GpuShape, SizingRequest
from tests.engine import engine_run
from tests.engine.engine_run import VllmContainer, run_engine

FIXTURES = Path(__file__).parents[1] / "catalog"
EMBEDDER = "Qwen/Qwen3-Embedding-0.6B"


@pytest.mark.parametrize("version", ENGINE_VERSIONS)
def test_vllm_runs_a_decoder_embedder_as_planned(version: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Qwen3-Embedding (Qwen3ForCausalLM + modules.json with last-token pooling) on an L4 and an H100: vLLM accepts
    the args, converts it to an embedder, keeps chunked prefill (causal, LAST pooling) and the plan's batch limits.
    Asked to generate, the same files run on the generate runner."""
    monkeypatch.setattr(engine_run, "CATALOG_DIR", FIXTURES)  # the offline HF cache is built from the fixtures
    arch = load_hf_config(FIXTURES / "configs" / EMBEDDER / "config.json", EMBEDDER)
    gpus = load_gpu_catalog()
    containers, plans = [], {}
    for name, gpu_id, task in (
        ("l4", "L4-24GB", None),
        ("h100", "H100-SXM-80GB", None),
        ("gen", "L4-24GB", "generate"),
    ):
        gpu = gpus[gpu_id]
        request = SizingRequest(arch=arch, task=task, vllm_version=version)
        plans[name] = plan = size_model(request, GpuShape.of(gpu, 1), max_nodes=1)
        containers.append(VllmContainer(name, plan.vllm_args, {}, gpu, 1, False, 32 * 2**30))
    answers = run_engine(containers, tmp_path, version)
    for name in ("l4", "h100"):
        answer, plan = answers[name], plans[name]
        assert "error" not in answer, answer["error"]
        assert (answer["runner"], answer["convert"], answer["pooling_type"]) == ("pooling", "embed", "LAST")
        assert answer["enable_chunked_prefill"] is True
        assert (answer["max_model_len"], answer["max_num_seqs"], answer["max_num_batched_tokens"]) == (
            plan.max_model_len,
            plan.max_num_seqs,
            plan.max_num_batched_tokens,
        )
    assert "error" not in answers["gen"], answers["gen"]["error"]
    assert (answers["gen"]["runner"], answers["gen"]["convert"]) == ("generate", "none")
