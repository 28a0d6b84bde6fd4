"""vLLM's own KV-cache allocator over a model's layers, no GPU. Runs inside `.venv-vllm` (vLLM 0.13.0).

Reads a JSON list of cases on stdin; each names every layer's kind (`full`, `sliding`, `chunked`, `mamba`,
`linear`, `none`) with its KV heads, head size, window and recurrent state numbers, and the layout (tp, pp, KV
dtype, max_model_len, max_num_batched_tokens, KV memory per GPU). For each it builds the KVCacheSpec of every
layer with vLLM's classes (vllm/v1/kv_cache_interface.py), the Mamba state shapes and dtypes with vLLM's
calculators (vllm/model_executor/layers/mamba/mamba_utils.py), the hybrid block size and page padding with
HybridAttentionMambaModelConfig.verify_and_update_config (vllm/model_executor/models/config.py), splits the layers
over pipeline stages with get_pp_indices (vllm/distributed/utils.py), and runs get_kv_cache_configs
(vllm/v1/core/kv_cache_utils.py). It prints one JSON object per case: the blocks, the "GPU KV cache size" and
"Maximum concurrency" figures vLLM logs, or vLLM's refusal.
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace
from typing import Any

import torch
from vllm.distributed.utils import get_pp_indices
from vllm.model_executor.layers.mamba.mamba_utils import MambaStateDtypeCalculator, MambaStateShapeCalculator
from vllm.model_executor.models import config as model_configs
from vllm.v1.core import kv_cache_utils
from vllm.v1.kv_cache_interface import (
    ChunkedLocalAttentionSpec,
    FullAttentionSpec,
    KVCacheSpec,
    MambaSpec,
    MLAAttentionSpec,
    SlidingWindowSpec,
)

MODEL_DTYPE = torch.bfloat16
# 0.33 moved the planner out of kv_cache_utils into kv_cache_planning.py.
NEW_PLANNER = not hasattr(kv_cache_utils, "get_kv_cache_configs")


def state_shape(state: dict[str, Any], tp: int) -> tuple[Any, Any]:
    """(shapes, dtypes) of one layer's state, by vLLM's calculators."""
    calc, dtypes = MambaStateShapeCalculator, MambaStateDtypeCalculator
    ssm = {4: "float32", 2: "float16"}.get(state["ssm_element_bytes"], "auto")
    if state["formula"] == "mamba1":
        shapes = calc.mamba1_state_shape(tp, state["intermediate"], state["state_size"], state["conv_kernel"])
        return shapes, dtypes.mamba1_state_dtype(MODEL_DTYPE, "auto", ssm)
    if state["formula"] == "mamba2":
        shapes = calc.mamba2_state_shape(
            tp,
            state["intermediate"],
            state["groups"],
            state["heads"],
            state["head_dim"],
            state["state_size"],
            state["conv_kernel"],
        )
        return shapes, dtypes.mamba2_state_dtype(MODEL_DTYPE, "auto", ssm)
    if state["formula"] == "gated_delta_net":
        shapes = calc.gated_delta_net_state_shape(
            tp, state["key_heads"], state["heads"], state["key_head_dim"], state["head_dim"], state["conv_kernel"]
        )
        return shapes, dtypes.gated_delta_net_state_dtype(MODEL_DTYPE, "auto")
    shapes = calc.linear_attention_state_shape(state["heads"], tp, state["head_dim"])
    return shapes, dtypes.linear_attention_state_dtype(MODEL_DTYPE, "auto")


def _resolve_to_state(shapes: Any, dtypes: Any) -> None:
    """Make vLLM's model registry resolve any architecture to a class that answers the Mamba state's shapes and
    dtypes, as the hybrid config hooks ask it (no model class is imported here)."""
    from vllm.model_executor.models import ModelRegistry

    class Probe:
        @classmethod
        def get_mamba_state_shape_from_config(cls, _config: Any) -> Any:
            return shapes

        @classmethod
        def get_mamba_state_dtype_from_config(cls, _config: Any) -> Any:
            return dtypes

    ModelRegistry.resolve_model_cls = lambda *_a, **_k: (Probe, "ProbeForCausalLM")


def hybrid_cache_config(case: dict[str, Any], shapes: Any, dtypes: Any) -> Any:
    """The cache config HybridAttentionMambaModelConfig leaves: attention block size and padded Mamba page."""
    tp = case["tp"]
    cache = SimpleNamespace(
        mamba_block_size=None,
        enable_prefix_caching=False,
        cache_dtype=case["kv_dtype"],
        block_size=None,
        mamba_page_size_padded=None,
    )
    model = SimpleNamespace(
        use_mla=False,
        dtype=MODEL_DTYPE,
        max_model_len=case["max_len"],
        architecture="ProbeForCausalLM",
        supports_mamba_prefix_caching=False,
        disable_cascade_attn=False,
        get_num_kv_heads=lambda _parallel: max(1, case["model_kv_heads"] // tp),
        get_head_size=lambda: case["model_head_dim"],
    )

    _resolve_to_state(shapes, dtypes)
    config = SimpleNamespace(
        cache_config=cache,
        model_config=model,
        attention_config=SimpleNamespace(backend=None),
        parallel_config=SimpleNamespace(tensor_parallel_size=tp),
    )
    model_configs.HybridAttentionMambaModelConfig.verify_and_update_config(config)
    return cache


def align_cache_config_033(case: dict[str, Any], shapes: Any, dtypes: Any) -> Any:
    """The cache config 0.33 leaves for a hybrid model on CUDA (SM 8.x/9.0, FlashAttention): prefix caching on
    (ModelConfig.is_prefix_caching_supported), so MambaModelConfig puts Mamba in `align` mode; then
    Platform._align_hybrid_block_size (vllm/platforms/interface.py) grows the attention block to hold a state, on
    the backend's kernel alignment and, for Qwen3-Next's gated delta nets (FlashInfer GDN prefill on Hopper), on
    the 64-token prefill checkpoint grid (FLASHINFER_GDN_CHECKPOINT_ALIGNMENT in
    vllm/v1/attention/backends/gdn_attn.py)."""
    from vllm.model_executor.layers.mamba import abstract as mamba_abstract
    from vllm.platforms.interface import Platform
    from vllm.v1.attention.backends.flash_attn import FlashAttentionBackend
    from vllm.v1.attention.backends.gdn_attn import FLASHINFER_GDN_CHECKPOINT_ALIGNMENT

    tp = case["tp"]
    gdn = any((layer["state"] or {}).get("formula") == "gated_delta_net" for layer in case["layers"])
    cache = SimpleNamespace(
        enable_prefix_caching=case.get("prefix_caching", True),
        mamba_cache_mode="none",
        mamba_block_size=None,
        block_size=FlashAttentionBackend.get_preferred_block_size(16),  # CacheConfig.DEFAULT_BLOCK_SIZE
        mamba_page_size_padded=None,
        cache_dtype=case["kv_dtype"],
    )
    model = SimpleNamespace(
        use_mla=False,
        dtype=MODEL_DTYPE,
        max_model_len=case["max_len"],
        architecture="ProbeForCausalLM",
        get_num_kv_heads=lambda _parallel: max(1, case["model_kv_heads"] // tp),
        get_head_size=lambda: case["model_head_dim"],
    )

    _resolve_to_state(shapes, dtypes)
    # No model is built here: the layers' answers (every attention layer on FlashAttention; the Mamba layers'
    # checkpoint alignment) are given instead of read from the forward context.
    alignment = FLASHINFER_GDN_CHECKPOINT_ALIGNMENT if gdn else None
    mamba_abstract.get_mamba_prefill_checkpoint_alignment = lambda _config: alignment
    Platform._find_non_ssm_backends = classmethod(lambda _cls, _config: [FlashAttentionBackend])
    config = SimpleNamespace(
        cache_config=cache,
        model_config=model,
        parallel_config=SimpleNamespace(tensor_parallel_size=tp),
        scheduler_config=SimpleNamespace(enable_chunked_prefill=True),
    )
    model_configs.HybridAttentionMambaModelConfig.verify_and_update_config(config)
    Platform._align_hybrid_block_size(config, FlashAttentionBackend)
    cache.checkpoint_blocks = 1 if gdn else 0  # Qwen3 GDN layers' get_kv_cache_spec (qwen_gdn_linear_attn.py)
    return cache


def layer_specs(case: dict[str, Any]) -> dict[int, KVCacheSpec]:
    tp = case["tp"]
    kv_dtype = torch.uint8 if case["kv_dtype"].startswith("fp8") else MODEL_DTYPE  # STR_DTYPE_TO_TORCH_DTYPE
    block, mamba_block, padded, state = 16, case["max_len"], None, None
    align, checkpoints = False, 0
    layers = case["layers"]
    stateful = [layer for layer in layers if layer["kind"] in ("mamba", "linear")]
    if stateful:
        state = state_shape(stateful[0]["state"], tp)
        if any(layer["kind"] in ("full", "sliding", "chunked") for layer in layers):
            cache = (align_cache_config_033 if NEW_PLANNER else hybrid_cache_config)(case, *state)
            block, mamba_block, padded = cache.block_size, cache.mamba_block_size, cache.mamba_page_size_padded
            align = getattr(cache, "mamba_cache_mode", "none") == "align"
            checkpoints = getattr(cache, "checkpoint_blocks", 0)
    specs: dict[int, KVCacheSpec] = {}
    for i, layer in enumerate(layers):
        kind = layer["kind"]
        heads, size = max(1, layer["kv_heads"] // tp), layer["head_dim"]
        # Keywords: 0.33's specs are keyword-only (vllm/v1/kv_cache_interface.py), 0.13's take them too.
        attention = {"block_size": block, "num_kv_heads": heads, "head_size": size, "dtype": kv_dtype}
        if kind == "full" and case["mla"]:
            specs[i] = MLAAttentionSpec(**{**attention, "num_kv_heads": 1, "head_size": case["mla"]})
        elif kind == "full":
            specs[i] = FullAttentionSpec(**attention)
        elif kind == "sliding":
            specs[i] = SlidingWindowSpec(**attention, sliding_window=layer["window"])
        elif kind == "chunked":
            specs[i] = ChunkedLocalAttentionSpec(**attention, attention_chunk_size=layer["window"])
        elif kind in ("mamba", "linear") and state is not None:
            mamba_type = "mamba1" if layer["state"]["formula"] == "mamba1" else "mamba2"
            extra: dict[str, Any] = {}
            if align:  # MambaBase.get_kv_cache_spec at 0.33 (vllm/model_executor/layers/mamba/abstract.py)
                extra = {"mamba_cache_mode": "align", "num_prefill_checkpoint_blocks": checkpoints}
                if checkpoints:
                    extra["prefill_checkpoint_alignment"] = mamba_block  # get_mamba_prefill_checkpoint_grid
            specs[i] = MambaSpec(
                block_size=mamba_block,
                shapes=state[0],
                dtypes=state[1],
                page_size_padded=padded,
                mamba_type=mamba_type,
                **extra,
            )
    return specs


def run(case: dict[str, Any]) -> dict[str, Any]:
    specs = layer_specs(case)
    pp = case["pp"]
    workers = []
    for rank in range(pp):
        start, end = get_pp_indices(len(case["layers"]), rank, pp)
        workers.append({f"model.layers.{i}.attn": specs[i] for i in range(start, end) if i in specs})
    if NEW_PLANNER:
        return allocate_033(case, workers)
    config = SimpleNamespace(
        model_config=SimpleNamespace(max_model_len=case["max_len"]),
        parallel_config=SimpleNamespace(decode_context_parallel_size=1, prefill_context_parallel_size=1),
        # A model with chunked local attention turns the hybrid allocator off by default (vllm/config/vllm.py).
        scheduler_config=SimpleNamespace(
            max_num_batched_tokens=case["batched"], disable_hybrid_kv_cache_manager=case["chunked"]
        ),
        cache_config=SimpleNamespace(num_gpu_blocks_override=None),
    )
    logged: list[tuple[Any, ...]] = []
    kv_cache_utils.logger.info_once = lambda msg, *args, **_kw: logged.append((msg, *args))
    try:
        configs = kv_cache_utils.get_kv_cache_configs(config, workers, [case["memory"]] * pp)
    except (ValueError, NotImplementedError) as exc:
        return {"error": str(exc)}
    tokens = next(int(args[0].replace(",", "")) for msg, *args in logged if "KV cache size" in msg)
    concurrency = next(float(args[1]) for msg, *args in logged if "concurrency" in msg)
    return {
        "num_blocks": configs[0].num_blocks,
        "groups": len(configs[0].kv_cache_groups),
        "tokens": tokens,
        "concurrency": concurrency,
    }


def allocate_033(case: dict[str, Any], workers: list[dict[str, KVCacheSpec]]) -> dict[str, Any]:
    """vLLM 0.33's planner (vllm/v1/core/kv_cache_planning.py): global groups of the merged specs, then the per-worker
    configs; the logged figures from get_kv_cache_capacity (vllm/v1/core/kv_cache_utils.py)."""
    from vllm.config.vllm import VllmConfig
    from vllm.v1.core import kv_cache_planning

    pp = case["pp"]
    # Prefix caching on for hybrid models puts their Mamba layers in align mode (MambaModelConfig).
    stateful = any(layer["kind"] in ("mamba", "linear") for layer in case["layers"])
    config = SimpleNamespace(
        model_config=SimpleNamespace(
            max_model_len=case["max_len"], original_max_model_len=case["max_len"], supports_kv_cache_grouping=False
        ),
        parallel_config=SimpleNamespace(
            decode_context_parallel_size=1,
            prefill_context_parallel_size=1,
            tensor_parallel_size=case["tp"],
            pipeline_parallel_size=pp,
        ),
        # VllmConfig.__post_init__ at 0.33 leaves the hybrid allocator on for chunked local attention
        # (VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE defaults to 1), and async scheduling on for a
        # generative model on the mp/uni executors; the V2 model runner is the default (use_v2_model_runner).
        scheduler_config=SimpleNamespace(
            max_num_batched_tokens=case["batched"], disable_hybrid_kv_cache_manager=False, async_scheduling=True
        ),
        cache_config=SimpleNamespace(
            num_gpu_blocks_override=None,
            prefix_cache_retention_interval=None,
            kv_cache_layout=None,
            # Prefix caching is on by default for hybrid models too (ModelConfig.is_prefix_caching_supported).
            enable_prefix_caching=case.get("prefix_caching", True),
            mamba_cache_mode="align" if stateful and case.get("prefix_caching", True) else "none",
        ),
        attention_config=SimpleNamespace(hisparse_config=None),
        kv_transfer_config=None,
        device_config=SimpleNamespace(device_type="cuda"),
        speculative_config=None,
        use_v2_model_runner=True,
        num_prefill_lookahead_tokens=0,
    )
    # The layout the engine core resolves (resolve_kv_cache_layout, vllm/v1/attention/backends/utils.py) when the
    # backends declare no preference (FlashAttention, vllm/v1/attention/backends/flash_attn.py): block-compact,
    # layer-outermost, so no block-outermost packing of mixed page sizes.
    from vllm.v1.attention.backends import utils as backend_utils

    preference = [layout.name for layout in backend_utils.get_supported_kv_cache_layouts([])]
    specs = [spec for worker in workers for spec in worker.values()]
    layout = backend_utils.resolve_kv_cache_layout(config, [preference], specs)
    config.cache_config.kv_cache_layout = layout.name
    config.cache_config.get_resolved_kv_cache_layout = lambda: layout
    # vLLM's own properties over the stand-in: in-flight tokens = concurrent batches x max_num_batched_tokens.
    config.max_concurrent_batches = VllmConfig.max_concurrent_batches.fget(config)
    config.max_in_flight_tokens = VllmConfig.max_in_flight_tokens.fget(config)
    try:
        groups = kv_cache_planning.get_global_kv_cache_groups(config, workers)
        configs = kv_cache_planning.get_kv_cache_configs(config, workers, [case["memory"]] * pp, groups)
    except (ValueError, NotImplementedError) as exc:
        return {"error": str(exc)}
    tokens, concurrency = kv_cache_utils.get_kv_cache_capacity(config, configs[0])
    return {
        "num_blocks": configs[0].num_blocks,
        "groups": len(configs[0].kv_cache_groups),
        "tokens": tokens,
        "concurrency": concurrency,
    }


def main() -> None:
    cases = json.load(sys.stdin)
    print(json.dumps([run(case) for case in cases]))


if __name__ == "__main__":
    main()
