"""The memory model: bytes of weights, KV cache and activation per GPU, as vLLM accounts them.

budget = GPU memory x gpu_memory_utilization; the profiling run takes weights + peak activation + non-torch
memory (NCCL, cuBLAS), and, where the release profiles them inside the budget (0.33), the CUDA graphs' estimate
(cuda_graph_bytes); the KV cache gets the rest and must hold at least one request of `max_model_len`
tokens (vLLM refuses to start otherwise), more for the throughput objective.
"""

from __future__ import annotations

import math

from components.catalog import ModelArch
from components.catalog.quantization import DEFAULT_FORMATS, ONLINE_FORMATS
from components.catalog.types import WeightFormat
from components.catalog.weights import checkpoint_split, weight_split
from components.planning.types import (
    SizingError,
    SizingRequest,
)
from components.planning.vllm import vllm_flag

GIB = 1024**3

# Peak activation of vLLM's profiling run is set by the sampler's dummy pass: max_num_seqs x vocab
# float32 logits, about 9.7 copies. Fitted to llm-d's measurements on H100 (Llama-3.1-8B 4.76 GiB,
# Qwen3-32B 5.64 GiB, gpt-oss-120b 7.38 GiB, all with max_num_seqs 1024); the forward pass of
# max_num_batched_tokens dominates only for pooling models, which do not sample.
SAMPLER_LOGIT_COPIES = 9.7
ACTIVATION_FLOOR = 0.25 * GIB
# Non-torch memory measured by vLLM: cuBLAS workspaces alone, plus NCCL buffers with >1 GPU.
NON_TORCH_ONE_GPU = 0.15 * GIB
NON_TORCH_MULTI_GPU = 0.6 * GIB
# CUDA graphs: measured -0.9..+1.0 GiB on H100 under vLLM 0.13, which captures them after the KV cache, outside the
# budget. Releases that profile them inside the budget (EngineVersion.cudagraph_memory_in_budget) take vLLM's own
# estimate out of it before the KV cache; the plan reserves this upper end for it (cuda_graph_bytes).
CUDA_GRAPH_RESERVE_GIB = 1.0
# What turns that estimate off: no graphs at all (--enforce-eager sets cudagraph_mode NONE, VllmConfig in
# vllm/config/vllm.py), or vLLM's opt-out env var (vllm/envs.py at 0.33.0).
EAGER_FLAG = "--enforce-eager"
ESTIMATE_ENV = "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS"
# Skips the profiling and the budget: the KV cache is this many bytes (determine_available_memory).
KV_BYTES_FLAG = "--kv-cache-memory-bytes"
# vLLM allocates KV in blocks of 16 tokens.
KV_BLOCK = 16
# Bytes per linear-layer weight of each format at its default layout (4-bit AWQ/GPTQ in groups of 128, NVFP4 with
# fp8 scales per 16, ...), derived from the scheme by components/catalog/quantization.py; a checkpoint's own
# quantization_config (bits, group, block, skipped modules) replaces it when sizing (held_format).
BYTES_PER_PARAM = {method: fmt.bits / 8 for method, fmt in DEFAULT_FORMATS.items()}
SIXTEEN_BIT = ("bf16", "fp16")
UNQUANTIZED = ("bf16", "fp16", "fp32")
# What the stack's `quantization` may ask of a 16-bit checkpoint: vLLM's online quantization (--quantization).
ONLINE = ("fp8", "bitsandbytes")


def weight_dtype_for(req: SizingRequest, arch: ModelArch) -> tuple[str, list[str]]:
    """The dtype weights are held in, and the flags that make vLLM hold them so. `quantization` selects online
    quantization only: a pre-quantized checkpoint runs as its quantization_config says (`auto`); vLLM refuses a
    --quantization that differs from it ("does not match the quantization method specified in the `quantization`
    argument", ModelConfig._verify_quantization in vllm/config/model.py)."""
    ckpt, asked, at = arch.checkpoint_dtype, req.quantization, f"{req.field}.quantization"
    if asked == "auto" or (asked == ckpt and ckpt not in UNQUANTIZED):
        if ckpt == "fp32":
            # vLLM's dtype auto downcasts fp32 checkpoints: pooling models to fp16, others to bf16 on every
            # GPU of the catalog (compute >= 8.0) (_resolve_auto_dtype in vllm/config/model.py).
            return ("bf16" if arch.task == "generate" else "fp16"), []
        return ckpt, []  # vLLM detects a pre-quantized checkpoint from its quantization_config
    if ckpt not in UNQUANTIZED:
        scheme = arch.weights.detail or ckpt
        if asked in SIXTEEN_BIT:
            raise SizingError(
                [
                    f"{at}: {req.arch.id} is a {ckpt} checkpoint; serve it as `auto` or use its 16-bit checkpoint "
                    f"id (its weights are {scheme}, read from its quantization_config)"
                ]
            )
        raise SizingError(
            [
                f"{at}: cannot turn the {ckpt} checkpoint of {req.arch.id} into {asked} at load time: it is already "
                f"quantized ({scheme}) and vLLM runs it as its quantization_config says; set quantization: auto, or "
                f"name the model's 16-bit checkpoint in `model` to quantize it online with {asked}"
            ]
        )
    if asked in SIXTEEN_BIT:
        return asked, ["--dtype", "bfloat16" if asked == "bf16" else "float16"]
    if asked in ONLINE:
        return asked, ["--quantization", asked]  # vLLM quantizes the 16-bit weights while loading them
    raise SizingError(
        [
            f"{at}: cannot turn the {ckpt} checkpoint of {req.arch.id} into {asked} at load time (vLLM quantizes "
            f"online only to {' or '.join(ONLINE)}); use a pre-quantized {asked.upper()} checkpoint id in `model` "
            "with quantization: auto, or quantize online with fp8 or bitsandbytes"
        ]
    )


def held_format(arch: ModelArch, dtype: str) -> WeightFormat:
    """The weight format of `dtype`: the checkpoint's own when it runs as it is, else vLLM's online one."""
    if dtype == arch.weights.method:
        return arch.weights
    return ONLINE_FORMATS.get(dtype) or DEFAULT_FORMATS.get(dtype, DEFAULT_FORMATS["bf16"])


def weight_bytes(arch: ModelArch, dtype: str, tp: int, pp: int) -> tuple[float, float]:
    """(bytes on the most loaded GPU, bytes of the whole model). The checkpoint's own size (index total_size) when
    it is known and runs as it is; else the parts the config sizes, each in the format it is held in."""
    fmt = held_format(arch, dtype)
    if arch.checkpoint_bytes and fmt == arch.weights:
        split = checkpoint_split(arch)
    elif arch.checkpoint_bytes and arch.weights.method in UNQUANTIZED:
        # Online quantization or a dtype change: the 16-bit file still gives the exact parameter count.
        per_param = 4.0 if arch.weights.method == "fp32" else 2.0
        split = weight_split(arch, fmt, arch.checkpoint_bytes / per_param)
    else:
        split = weight_split(arch, fmt)
    layers_on_stage = math.ceil(arch.layers / pp)
    # The first stage holds the embedding (and a vision tower), the last the lm_head; one stage holds all at PP 1.
    first = split.embed + split.vision
    edges = first + split.head if pp == 1 else max(first, split.head)
    stage = split.layers * layers_on_stage / arch.layers + edges
    return stage / tp, split.total


def cuda_graph_bytes(req: SizingRequest) -> float:
    """Bytes of CUDA graphs vLLM takes out of the gpu_memory_utilization budget before the KV cache.

    vLLM 0.33.0 (vllm/v1/worker/gpu_worker.py determine_available_memory): after the profiling run it captures the
    first two graphs of each mode into a scratch pool (gpu_model_runner.py profile_cudagraph_memory: first capture
    + (graphs - 1) x the second's), and subtracts that estimate with the weights, peak activation and non-torch
    memory from `gpu_memory_utilization x total`; the real graphs are captured after the KV cache into that room.
    vLLM 0.13.0 captures them after the KV cache outside the budget: 0 here (engine_args.py warns instead).
    --kv-cache-memory-bytes skips the profiling and the budget alike (the KV cache is what it says): 0 here too.
    """
    flags = {vllm_flag(arg) for arg in req.extra_args}
    if EAGER_FLAG in flags or KV_BYTES_FLAG in flags or dict(req.env).get(ESTIMATE_ENV) == "0":
        return 0.0
    return req.engine.cudagraph_budget_gib(CUDA_GRAPH_RESERVE_GIB) * GIB


def bytes_per_param(arch: ModelArch, dtype: str) -> float:
    """Bytes per quantized linear-layer weight, scales and zero points included, in the format held."""
    return held_format(arch, dtype).bits / 8


def kv_bytes_per_token(arch: ModelArch, tp: int, pp: int, kv_dtype: str) -> float:
    """KV-cache bytes one token costs on one GPU of the most loaded stage when every layer is full attention;
    kv_cache.py sizes models with layer groups (windows, chunks, NAS, Mamba) the way vLLM allocates them."""
    if arch.attention == "encoder":
        return 0.0  # bidirectional encoders keep no KV cache
    element = 1.0 if kv_dtype.startswith("fp8") else 2.0
    layers = math.ceil(arch.layers / pp)
    if arch.attention == "mla":
        # The compressed latent is shared by all heads and replicated on every TP rank.
        return layers * (arch.kv_lora_rank + arch.qk_rope_head_dim) * element
    kv_heads_per_rank = arch.kv_heads // tp if arch.kv_heads >= tp else 1  # replicated when TP > KV heads
    return 2.0 * layers * kv_heads_per_rank * arch.head_dim * element


def activation_bytes(arch: ModelArch, tp: int, max_num_seqs: int, batched_tokens: int) -> float:
    """Peak activation of the profiling run on one GPU."""
    moe_mlp = (arch.experts_per_token + arch.shared_experts) * arch.moe_intermediate
    mlp = moe_mlp if arch.is_moe else arch.intermediate
    forward = batched_tokens * (4 * arch.hidden + 3 * mlp / tp) * 2.0
    sampler = SAMPLER_LOGIT_COPIES * max_num_seqs * arch.vocab * 4.0 if arch.task == "generate" else 0.0
    return max(forward, sampler, ACTIVATION_FLOOR)


def tp_problem(arch: ModelArch, tp: int, weight_dtype: str) -> str | None:
    """Why vLLM would reject this TP for this model, or None."""
    if arch.heads % tp:
        return f"{tp} does not divide {arch.heads} attention heads of {arch.id}"
    if arch.attention != "mla" and arch.kv_heads % tp and tp % arch.kv_heads:
        return f"{tp} and the {arch.kv_heads} KV heads of {arch.id} do not divide one another"
    if arch.intermediate % tp:
        return f"{tp} does not divide the MLP intermediate size {arch.intermediate} of {arch.id}"
    if arch.is_moe and arch.moe_intermediate % tp:
        return f"{tp} does not divide the expert intermediate size {arch.moe_intermediate} of {arch.id}"
    fmt = held_format(arch, weight_dtype)
    block = fmt.block or (arch.fp8_block if weight_dtype == "fp8" else 0)
    if block and weight_dtype == "fp8":
        # validate_fp8_block_shape (vllm/model_executor/layers/quantization/utils/fp8_utils.py).
        for size in (arch.intermediate, arch.moe_intermediate or arch.intermediate):
            if (size // tp) % block:
                return f"{size}/{tp} is not a multiple of the FP8 block {block} of {arch.id}"
    group = fmt.group if fmt.group > 0 and fmt.scope == "linear" else 0
    if group:
        # Row-parallel layers (o_proj, down_proj, the experts' w2) split their input over TP; each slice must hold
        # whole groups: AWQ/GPTQ ("The input size is not aligned with the quantized weight shape", awq.py/gptq.py
        # create_weights), compressed-tensors WNA16 (compressed_tensors_wNa16.py), NVFP4 ("in features size is not
        # multiple of 16", modelopt.py). MXFP4 pads the experts' slices instead (mxfp4.py create_weights).
        for size in (arch.heads * arch.head_dim, arch.intermediate, arch.moe_intermediate or arch.intermediate):
            if (size // tp) % group:
                return f"{size}/{tp} is not a multiple of the {weight_dtype.upper()} group {group} of {arch.id}"
    return None


def valid_tps(arch: ModelArch, upto: int, weight_dtype: str) -> list[int]:
    return [tp for tp in range(1, upto + 1) if tp_problem(arch, tp, weight_dtype) is None]
