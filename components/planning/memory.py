"""The memory model: bytes of weights, KV cache and activation per GPU, as vLLM accounts them.

budget = GPU memory x gpu_memory_utilization; the profiling run takes weights + peak activation + non-torch
memory (NCCL, cuBLAS); the KV cache gets the rest and must hold at least one request of `max_model_len`
tokens (vLLM refuses to start otherwise), more for the throughput objective.
"""

from __future__ import annotations

import math

from components.catalog import ModelArch
from components.planning.types import (
    SizingError,
    SizingRequest,
)

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
# CUDA graphs are captured outside the budget (measured -0.9..+1.0 GiB on H100).
CUDA_GRAPH_RESERVE_GIB = 1.0
# vLLM allocates KV in blocks of 16 tokens.
KV_BLOCK = 16
# Bytes per linear-layer parameter. Embeddings and lm_head stay 16-bit in FP8 and int4 checkpoints.
# mxfp4 is 4.25 bits for experts with 16-bit attention: gpt-oss-120b measured 64.38 GiB -> ~0.57.
BYTES_PER_PARAM = {
    "fp32": 4.0,  # held so only with --dtype float32; dtype auto downcasts fp32 checkpoints to 16 bits
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "awq": 0.53,
    "gptq": 0.53,
    "bitsandbytes": 0.53,
    "mxfp4": 0.57,
}
# The 4-bit AWQ/GPTQ figure above is 0.5 B of packed weight plus scales and zeros; other bit widths keep that
# overhead around their own packed size.
INT4_PACKED = 0.5
SIXTEEN_BIT = ("bf16", "fp16")
UNQUANTIZED = ("bf16", "fp16", "fp32")


def weight_dtype_for(req: SizingRequest, arch: ModelArch) -> tuple[str, list[str]]:
    """The dtype weights are held in, and the flags that make vLLM hold them so."""
    ckpt, asked, at = arch.checkpoint_dtype, req.quantization, f"{req.field}.quantization"
    if asked == "auto":
        if ckpt == "fp32":
            # vLLM's dtype auto downcasts fp32 checkpoints: pooling models to fp16, others to bf16 on every
            # GPU of the catalog (compute >= 8.0) (_resolve_auto_dtype in vllm/config/model.py).
            return ("bf16" if arch.task == "generate" else "fp16"), []
        return ckpt, []
    if asked in SIXTEEN_BIT:
        if ckpt not in UNQUANTIZED:
            raise SizingError(
                [f"{at}: {req.arch.id} is a {ckpt} checkpoint; serve it as `auto` or use its 16-bit checkpoint id"]
            )
        return asked, ["--dtype", "bfloat16" if asked == "bf16" else "float16"]
    if asked == "fp8":
        if ckpt == "fp8":
            return "fp8", []
        if ckpt in UNQUANTIZED:
            return "fp8", ["--quantization", "fp8"]  # vLLM's dynamic FP8 of an unquantized checkpoint
    if asked == "bitsandbytes" and ckpt in UNQUANTIZED:
        return "bitsandbytes", ["--quantization", "bitsandbytes"]
    if asked == ckpt:
        return ckpt, []  # a pre-quantized checkpoint (awq, gptq) is detected from its config
    raise SizingError(
        [
            f"{at}: cannot turn the {ckpt} checkpoint of {req.arch.id} into {asked} at load time; "
            + (
                f"use a pre-quantized {asked.upper()} checkpoint id in `model`"
                if asked in ("awq", "gptq", "mxfp4")
                else "use `auto` or a 16-bit checkpoint"
            )
        ]
    )


def weight_bytes(arch: ModelArch, dtype: str, tp: int, pp: int) -> tuple[float, float]:
    """(bytes on the most loaded GPU, bytes of the whole model)."""
    params = arch.params_b * 1e9
    embed = arch.vocab * arch.hidden
    head = arch.vocab * arch.hidden if arch.task == "generate" and not arch.tie_embeddings else 0
    layer_bytes = max(params - embed - head, 0.0) * bytes_per_param(arch, dtype)
    edge_bytes = 4.0 if dtype == "fp32" else 2.0
    total = layer_bytes + edge_bytes * (embed + head)
    layers_on_stage = math.ceil(arch.layers / pp)
    # The first stage holds the embedding, the last the lm_head; one stage holds both when PP is 1.
    edges = edge_bytes * (embed + head if pp == 1 else max(embed, head))
    stage = layer_bytes * layers_on_stage / arch.layers + edges
    return stage / tp, total


def bytes_per_param(arch: ModelArch, dtype: str) -> float:
    """Bytes per linear-layer weight: the table's, at the checkpoint's own bit width for AWQ/GPTQ."""
    per_param = BYTES_PER_PARAM[dtype]
    if dtype in ("awq", "gptq") and dtype == arch.checkpoint_dtype and arch.quant_bits:
        return per_param - INT4_PACKED + arch.quant_bits / 8
    return per_param


def kv_bytes_per_token(arch: ModelArch, tp: int, pp: int, kv_dtype: str) -> float:
    """KV-cache bytes one token costs on one GPU of the most loaded stage."""
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
    if arch.fp8_block and weight_dtype == "fp8":
        for size in (arch.intermediate, arch.moe_intermediate or arch.intermediate):
            if (size // tp) % arch.fp8_block:
                return f"{size}/{tp} is not a multiple of the FP8 block {arch.fp8_block} of {arch.id}"
    if weight_dtype in ("awq", "gptq") and arch.quant_group > 0:
        # Row-parallel layers (o_proj, down_proj) split their input over TP; each slice must hold whole groups
        # ("The input size is not aligned with the quantized weight shape", vllm awq.py / gptq.py create_weights).
        for size in (arch.heads * arch.head_dim, arch.intermediate, arch.moe_intermediate or arch.intermediate):
            if (size // tp) % arch.quant_group:
                return (
                    f"{size}/{tp} is not a multiple of the {weight_dtype.upper()} group {arch.quant_group} of {arch.id}"
                )
    return None


def valid_tps(arch: ModelArch, upto: int, weight_dtype: str) -> list[int]:
    return [tp for tp in range(1, upto + 1) if tp_problem(arch, tp, weight_dtype) is None]
