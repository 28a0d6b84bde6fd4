"""KV-cache sizing per layer group (components/planning/kv_cache.py) in the plan: what changes for sliding-window,
chunked, NAS and hybrid models, and what stays as it was for full attention. tests/engine/test_kv_cache_layout.py
checks the same figures against vLLM's own allocator."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.catalog import load_gpu_catalog, load_model_catalog
from components.catalog.hf_config import load_hf_config
from components.planning.engine_versions import engine_version
from components.planning.kv_cache import kv_layout, pp_indices
from components.planning.memory import KV_BLOCK, kv_bytes_per_token
from components.planning.sizing import size_model
from components.planning.types import GpuShape, SizingRequest

MODELS = load_model_catalog()
GPUS = load_gpu_catalog()
FIXTURES = Path(__file__).parent / "catalog" / "configs"
H100 = GpuShape.of(GPUS["H100-SXM-80GB"], 8)
V13, V33 = engine_version("0.13.0").kv_cache, engine_version("0.33.0").kv_cache
SUPER = load_hf_config(
    FIXTURES / "nvidia/Llama-3_3-Nemotron-Super-49B-v1/config.json",
    "nvidia/Llama-3_3-Nemotron-Super-49B-v1",
    params_b=49.87,  # the model card's count
)


@pytest.mark.parametrize("model", ["Qwen/Qwen3-32B", "meta-llama/Llama-3.1-8B-Instruct", "deepseek-ai/DeepSeek-R1"])
@pytest.mark.parametrize(("tp", "pp", "kv_dtype"), [(1, 1, "auto"), (2, 1, "fp8"), (8, 1, "auto"), (2, 3, "auto")])
def test_full_attention_costs_what_it_did(model: str, tp: int, pp: int, kv_dtype: str) -> None:
    arch = MODELS[model]
    memory = 10 * 1024**3 + 12345
    per_token = kv_bytes_per_token(arch, tp, pp, kv_dtype)
    old, new = (kv_layout(arch, tp, pp, kv_dtype, 32768, 8192, rules) for rules in (V13, V33))
    assert old is not None and new is not None and old.groups == new.groups == 1
    assert old.bytes_per_token == new.bytes_per_token == per_token
    assert old.tokens(memory) == int(memory // per_token) // KV_BLOCK * KV_BLOCK
    assert old.needed(1) == 32768 * per_token
    # 0.33: the token figure is concurrency x max_model_len; the start-up check also holds back the null block.
    assert new.tokens(memory) == int(new.concurrency(memory) * 32768)
    assert new.needed(1) == 32768 * per_token + new.bytes_per_block


def test_nas_layers_without_attention_hold_no_kv() -> None:
    layout = kv_layout(SUPER, 1, 1, "auto", 131072, 8192, V13)
    as_if_full = kv_layout(replace(SUPER, layer_groups=()), 1, 1, "auto", 131072, 8192, V13)
    assert layout is not None and as_if_full is not None
    # 49 attention layers with 8 KV heads instead of 80 with 64: the ~13x of issue 14.
    assert as_if_full.needed(1) / layout.needed(1) == pytest.approx(80 * 64 / (49 * 8))


def test_nemotron_super_49b_fits_one_h100_in_fp8() -> None:
    req = SizingRequest(arch=SUPER, quantization="fp8", max_model_len=32768)
    s = size_model(req, H100)
    assert (s.fits, s.gpus_per_replica) == (True, 1)
    wrong = size_model(replace(req, arch=replace(SUPER, layer_groups=())), H100)
    assert wrong.gpus_per_replica > 1  # reading it as 64 KV heads on 80 layers asked for more GPUs


def test_gpt_oss_plan_states_its_layer_groups() -> None:
    arch = MODELS["openai/gpt-oss-120b"]
    s = size_model(SizingRequest(arch=arch, max_model_len=131072, vllm_version="0.13.0"), H100)
    assert any(r.startswith("KV layers: 18 sliding window (128 tokens) + 18 full attention") for r in s.reasons)
    assert not any("sized as full attention" in w for w in s.warnings)
    layout = kv_layout(arch, s.tp, s.pp, "auto", 131072, s.max_num_batched_tokens, V13)
    assert layout is not None and s.kv_cache_tokens is not None and s.max_concurrency is not None
    # vLLM 0.13 reports blocks per group: the 18 windowed layers' blocks are not counted as tokens.
    room = layout.blocks(s.memory.kv_cache * 1024**3 + 2**25) * layout.bytes_per_block
    assert s.kv_cache_tokens <= room / layout.bytes_per_token / layout.groups
    assert s.max_concurrency > s.kv_cache_tokens / 131072  # each request holds only a window in half the layers
    # 0.33 reports concurrency x max_model_len instead (get_kv_cache_capacity), so the two figures agree.
    new = size_model(SizingRequest(arch=arch, max_model_len=131072, vllm_version="0.33.0"), H100)
    assert new.kv_cache_tokens is not None and new.max_concurrency is not None
    assert new.kv_cache_tokens // 131072 == int(new.max_concurrency)


@pytest.mark.parametrize(
    ("version", "pp", "steps"), [("0.13.0", 1, 1), ("0.13.0", 2, 1), ("0.33.0", 1, 2), ("0.33.0", 2, 3)]
)
def test_sliding_layers_hold_the_window_and_the_steps_in_flight(version: str, pp: int, steps: int) -> None:
    arch, rules = MODELS["openai/gpt-oss-120b"], engine_version(version).kv_cache
    small, large = (kv_layout(arch, 1, pp, "auto", 131072, batched, rules) for batched in (2048, 8192))
    assert small is not None and large is not None
    # SlidingWindowSpec: cdiv(window - 1 + tokens in flight, 16) + 1 blocks per sliding layer; in flight: one
    # max_num_batched_tokens in 0.13, PP + 1 of them with 0.33's async scheduling (VllmConfig.max_in_flight_tokens).
    assert large.blocks_per_request - small.blocks_per_request == steps * (8192 - 2048) // 16


def test_llama4_chunked_layers_are_sized_as_full_attention() -> None:
    # vLLM 0.13 turns the hybrid allocator off for chunked local attention by default (vllm/config/vllm.py).
    arch = load_hf_config(
        FIXTURES / "meta-llama/Llama-4-Scout-17B-16E-Instruct/config.json", "meta-llama/Llama-4-Scout-17B-16E-Instruct"
    )
    assert any(g.kind == "chunked" for g in arch.layer_groups)
    chunked = kv_layout(arch, 8, 1, "auto", 1048576, 8192, V13)
    full = kv_layout(replace(arch, layer_groups=()), 8, 1, "auto", 1048576, 8192, V13)
    assert chunked is not None and full is not None
    assert (chunked.bytes_per_block, chunked.blocks_per_request, chunked.groups) == (
        full.bytes_per_block,
        full.blocks_per_request,
        full.groups,
    )
    # Only vLLM's start-up check still sees the chunks (it sums the layers' own specs).
    assert chunked.check_bytes < full.check_bytes == chunked.needed(1)
    # 0.33 keeps its hybrid allocator on for them (VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE defaults to 1):
    # 36 chunked + 12 full layers in 3 + 1 groups, a request holding a chunk in three of them.
    grouped = kv_layout(arch, 8, 1, "auto", 1048576, 8192, V33)
    assert grouped is not None and grouped.groups == 4 and grouped.needed(1) < full.needed(1) / 3


@pytest.mark.parametrize(
    ("layers", "pp", "sizes"),
    [(46, 4, [11, 12, 12, 11]), (80, 3, [27, 27, 26]), (36, 2, [18, 18]), (7, 4, [2, 2, 2, 1])],
)
def test_stages_split_layers_as_vllm(layers: int, pp: int, sizes: list[int]) -> None:
    # get_pp_indices (vllm/distributed/utils.py): the remainder goes to the stages before the last.
    assert [end - start for start, end in (pp_indices(layers, r, pp) for r in range(pp))] == sizes
    assert pp_indices(layers, pp - 1, pp)[1] == layers


@given(
    model=st.sampled_from(["openai/gpt-oss-120b", "google/gemma-2-27b-it", "Qwen/Qwen3-32B"]),
    tp=st.sampled_from([1, 2, 4, 8]),
    pp=st.integers(1, 4),
    max_len=st.integers(1, 131072),
    memory=st.integers(0, 80 * 1024**3),
    more=st.integers(0, 10 * 1024**3),
)
def test_more_memory_never_holds_less(model: str, tp: int, pp: int, max_len: int, memory: int, more: int) -> None:
    for rules in (V13, V33):
        layout = kv_layout(MODELS[model], tp, pp, "auto", max_len, 8192, rules)
        assert layout is not None
        assert layout.tokens(memory + more) >= layout.tokens(memory)
        assert layout.concurrency(memory + more) >= layout.concurrency(memory)
        assert layout.concurrency(layout.needed(1)) >= 1.0


def test_cuda_graphs_come_out_of_the_kv_room_where_the_release_profiles_them() -> None:
    # 0.33 subtracts its CUDA-graph estimate from the budget before the KV cache (gpu_worker.py
    # determine_available_memory); 0.13 captures the graphs after it, outside the budget.
    req = SizingRequest(arch=MODELS["Qwen/Qwen3-32B"], max_model_len=32768)
    old, new = (size_model(replace(req, vllm_version=v), H100) for v in ("0.13.0", "0.33.0"))
    assert (old.tp, old.max_num_seqs, old.memory.usable) == (new.tp, new.max_num_seqs, new.memory.usable)
    assert (old.memory.cuda_graphs, new.memory.cuda_graphs) == (0.0, 1.0)
    assert old.memory.kv_cache - new.memory.kv_cache == pytest.approx(1.0, abs=0.011)
    # No graphs (--enforce-eager), or vLLM's estimate turned off: nothing comes out.
    eager = size_model(replace(req, extra_args=("--enforce-eager",)), H100)
    unestimated = size_model(replace(req, env=(("VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS", "0"),)), H100)
    assert eager.memory.cuda_graphs == unestimated.memory.cuda_graphs == 0.0
    assert eager.memory.kv_cache == old.memory.kv_cache
