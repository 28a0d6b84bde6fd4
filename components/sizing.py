"""How each model must run: memory model, valid TP/PP, NVLink rules, placement onto pools.

Pure functions, no Pulumi. `size_model` sizes one model on one GPU shape; `plan_cluster` sizes every
model of a stack on its pool, places the replicas on the pool's nodes and returns a `ClusterPlan`,
the only thing the Pulumi components read. Every decision carries its reason.

Memory per GPU follows vLLM's own accounting (facts in the reference sizing notes):
budget = GPU memory x gpu_memory_utilization; the profiling run takes weights + peak activation +
non-torch memory (NCCL, cuBLAS); the KV cache gets the rest and must hold at least one request of
`max_model_len` tokens (vLLM refuses to start otherwise), more for the throughput objective.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from components.catalog import CatalogError, GpuType, ModelArch, load_hf_config
from components.spec import (
    AuthSpec,
    AutoscalingSpec,
    ClusterSpec,
    ExistingBackendSpec,
    GatewaySpec,
    GkeBackendSpec,
    GpuPoolSpec,
    ImagesSpec,
    KarpenterBackendSpec,
    ModelAutoscalingSpec,
    ModelSloSpec,
    ModelSpec,
    MonitoringSpec,
    OvhBackendSpec,
    SpecError,
)

VLLM_VERSION = "0.13.0"
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
SIXTEEN_BIT = ("bf16", "fp16")
UNQUANTIZED = ("bf16", "fp16", "fp32")
# vLLM's own defaults for the OpenAI server: GPUs with >= 70 GiB (A100 excepted) get larger batches.
LARGE_GPU_THRESHOLD_GIB = 70.0
LARGE_GPU_DEFAULTS = (1024, 8192)  # (max_num_seqs, max_num_batched_tokens)
SMALL_GPU_DEFAULTS = (256, 2048)
# Compute capabilities vLLM 0.13's batch-invariant mode has kernels for: its own matmuls on 8.0, 8.9 and
# the 10.x family, cuBLAS without split-K on 9.0 (enable_batch_invariant_mode in
# vllm/model_executor/layers/batch_invariant.py). Other GPUs get no invariant matmul.
BATCH_INVARIANT_CAPABILITIES = ("8.0", "8.9", "9.0")
BATCH_INVARIANT_FAMILIES = ("10",)
# How far the CLI looks for multi-node shapes when no pool bounds it.
CLI_MAX_NODES = 16

Objective = Literal["throughput", "latency"]

# Flags the plan owns, and the spec field that sets each.
PLAN_FLAGS = {
    "--model": "model",
    "--served-model-name": "name",
    "--revision": "revision",
    "--tensor-parallel-size": "tensorParallel",
    "-tp": "tensorParallel",
    "--pipeline-parallel-size": "pipelineParallel",
    "-pp": "pipelineParallel",
    "--data-parallel-size": "replicas (each replica is its own pod)",
    "-dp": "replicas (each replica is its own pod)",
    "--max-model-len": "maxModelLen",
    "--gpu-memory-utilization": "gpuMemoryUtilization",
    "--quantization": "quantization",
    "-q": "quantization",
    "--dtype": "quantization",
    "--kv-cache-dtype": "kvCacheDtype",
    "--hf-overrides": "ropeScaling",
    "--rope-scaling": "ropeScaling",
    "--seed": "seed",
    "--enable-prefix-caching": "prefixCaching",
    "--no-enable-prefix-caching": "prefixCaching",
    "--enable-auto-tool-choice": "toolCallParser",
    "--tool-call-parser": "toolCallParser",
    "--trust-remote-code": "trustRemoteCode",
    "--task": "task",
    "--runner": "task",
    "--convert": "task",
}
# Flags the components set, and which.
COMPONENT_FLAGS = {
    "--host": "the serving component sets it",
    "--port": "the serving component sets it",
    "--distributed-executor-backend": "the plan picks it for multi-node replicas",
}
PLAN_ENV = ("NCCL_P2P_DISABLE", "VLLM_BATCH_INVARIANT", "HF_TOKEN", "HF_HOME")


class SizingError(SpecError):
    """A model that cannot run as asked; one line per problem, each naming the field and the fix."""


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class GpuShape:
    """What sizing needs to know about a node: its GPU, how many, and how they are wired."""

    gpu_id: str
    gpu_name: str
    memory_mib: int
    gpus_per_node: int
    nvlink_domain: int
    peer_to_peer: bool
    native_fp8: bool
    compute_capability: str

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024

    @classmethod
    def of(cls, gpu: GpuType, gpus_per_node: int, nvlink_domain: int | None = None) -> GpuShape:
        domain = nvlink_domain or math.gcd(gpu.nvlink_domain, gpus_per_node)
        return cls(
            gpu_id=gpu.id,
            gpu_name=gpu.name,
            memory_mib=gpu.memory_mib,
            gpus_per_node=gpus_per_node,
            nvlink_domain=domain,
            peer_to_peer=gpu.peer_to_peer,
            native_fp8=gpu.native_fp8,
            compute_capability=gpu.compute_capability,
        )

    @property
    def batch_defaults(self) -> tuple[int, int]:
        big = self.memory_gib >= LARGE_GPU_THRESHOLD_GIB and "A100" not in self.gpu_name.upper()
        return LARGE_GPU_DEFAULTS if big else SMALL_GPU_DEFAULTS


@dataclass(frozen=True)
class SizingRequest:
    """One model as the operator asked for it (from a ModelSpec or the `size` CLI)."""

    arch: ModelArch
    field: str = "model"  # where errors point: "models[3]" in a stack, "--model" in the CLI
    served_name: str | None = None
    revision: str | None = None
    task: str | None = None
    quantization: str = "auto"
    kv_cache_dtype: str = "auto"
    max_model_len: int | None = None
    rope_factor: float | None = None
    rope_original: int | None = None
    objective: Objective = "throughput"
    min_concurrency: int = 1
    gpu_memory_utilization: float = 0.9
    tensor_parallel: int | None = None
    pipeline_parallel: int | None = None
    deterministic: bool = False
    seed: int = 0
    prefix_caching: bool | None = None
    tool_call_parser: str | None = None
    trust_remote_code: bool | None = None
    extra_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_spec(cls, model: ModelSpec, arch: ModelArch, index: int) -> SizingRequest:
        rope = model.rope_scaling
        return cls(
            arch=arch,
            field=f"models[{index}]",
            served_name=model.name,
            revision=model.revision,
            task=model.task,
            quantization=model.quantization,
            kv_cache_dtype=model.kv_cache_dtype,
            max_model_len=model.max_model_len,
            rope_factor=rope.factor if rope else None,
            rope_original=rope.original_max_position if rope else None,
            objective=model.objective,
            min_concurrency=model.min_concurrency,
            gpu_memory_utilization=model.gpu_memory_utilization,
            tensor_parallel=model.tensor_parallel,
            pipeline_parallel=model.pipeline_parallel,
            deterministic=model.deterministic,
            seed=model.seed,
            prefix_caching=model.prefix_caching,
            tool_call_parser=model.tool_call_parser,
            trust_remote_code=model.trust_remote_code,
            extra_args=tuple(model.extra_args),
            env=tuple(sorted(model.env.items())),
        )


# ---------------------------------------------------------------- outputs


class PlanModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MemoryPlan(PlanModel):
    """GiB per GPU of the most loaded pipeline stage."""

    gpu_total: float
    usable: float  # vLLM's budget: gpu_total x gpu_memory_utilization
    weights: float
    activation: float
    non_torch: float
    kv_cache: float  # what is left for the KV cache
    kv_needed: float  # KV of min_concurrency full-length requests


class Sizing(PlanModel):
    """How one model runs on one GPU shape."""

    model: str
    task: str
    gpu: str
    objective: str
    fits: bool
    tp: int
    pp: int
    gpus_per_replica: int
    nodes_per_replica: int
    weight_dtype: str
    kv_cache_dtype: str
    weights_total_gib: float  # in GPU memory, all GPUs of a replica
    checkpoint_gib: float  # on disk, as downloaded (a 16-bit checkpoint quantized at load time stays 16-bit)
    gpus_per_pod: int
    max_model_len: int
    rope_type: str  # as vLLM names it: the config's own (default, llama3, yarn, none), or yarn from ropeScaling
    max_num_seqs: int
    max_num_batched_tokens: int
    memory: MemoryPlan
    kv_cache_tokens: int | None
    max_concurrency: float | None
    vllm_args: list[str]
    env: dict[str, str]
    warnings: list[str]
    reasons: list[str]


class ModelPlan(Sizing):
    """A sized model of a stack, with its pool and replica bounds."""

    name: str
    revision: str | None
    pool: str
    min_replicas: int
    max_replicas: int
    autoscaling: ModelAutoscalingSpec | None
    slo: ModelSloSpec


class PoolPlan(PlanModel):
    name: str
    gpu: str
    gfd_product: str
    backend: str
    backend_config: ExistingBackendSpec | KarpenterBackendSpec | GkeBackendSpec | OvhBackendSpec
    node_names: list[str]  # existing nodes; empty for cloud backends
    instance_types: list[str]  # cloud shapes the pool may use (Karpenter: several; GKE, OVHcloud: one)
    accelerator: str | None  # GKE guest accelerator type
    # GKE: nodes of a pool that hosts multi-node replicas are placed close together.
    compact_placement: bool
    taint: bool
    install_driver: bool
    install_toolkit: bool
    instance_type: str | None
    gpus_per_node: int
    nvlink_domain: int
    peer_to_peer: bool
    min_nodes: int
    max_nodes: int
    gpus_total: int  # at max nodes
    gpus_used_min: int
    gpus_used_max: int
    nodes_used_min: int
    nodes_used_max: int
    models: list[str]


class ClusterPlan(PlanModel):
    """What will run. Components read this, never raw config."""

    vllm_version: str
    kubernetes_version: str
    namespace: str
    storage_class: str | None
    weights_storage_class: str
    weights_cache: str
    pools: list[PoolPlan]
    models: list[ModelPlan]
    gateway: GatewaySpec
    auth: AuthSpec
    autoscaling: AutoscalingSpec
    monitoring: MonitoringSpec
    images: ImagesSpec
    warnings: list[str]


# ---------------------------------------------------------------- model arithmetic


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
                if asked in ("awq", "gptq")
                else "use `auto` or a 16-bit checkpoint"
            )
        ]
    )


def weight_bytes(arch: ModelArch, dtype: str, tp: int, pp: int) -> tuple[float, float]:
    """(bytes on the most loaded GPU, bytes of the whole model)."""
    params = arch.params_b * 1e9
    embed = arch.vocab * arch.hidden
    head = arch.vocab * arch.hidden if arch.task == "generate" and not arch.tie_embeddings else 0
    layer_bytes = max(params - embed - head, 0.0) * BYTES_PER_PARAM[dtype]
    edge_bytes = 4.0 if dtype == "fp32" else 2.0
    total = layer_bytes + edge_bytes * (embed + head)
    layers_on_stage = math.ceil(arch.layers / pp)
    # The first stage holds the embedding, the last the lm_head; one stage holds both when PP is 1.
    edges = edge_bytes * (embed + head if pp == 1 else max(embed, head))
    stage = layer_bytes * layers_on_stage / arch.layers + edges
    return stage / tp, total


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
    return None


def valid_tps(arch: ModelArch, upto: int, weight_dtype: str) -> list[int]:
    return [tp for tp in range(1, upto + 1) if tp_problem(arch, tp, weight_dtype) is None]


def _or_list(values: list[int]) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


# ---------------------------------------------------------------- one candidate


@dataclass(frozen=True)
class Candidate:
    tp: int
    pp: int
    fits: bool
    max_num_seqs: int
    batched_tokens: int
    weights: float
    activation: float
    non_torch: float
    kv_room: float
    kv_per_token: float
    kv_tokens: int | None
    kv_needed: float
    weights_total: float


@dataclass(frozen=True)
class Resolved:
    """Request facts every candidate shares."""

    arch: ModelArch
    weight_dtype: str
    quant_flags: tuple[str, ...]
    max_model_len: int
    rope_original: int | None
    kv_dtype: str
    # (max_num_seqs, max_num_batched_tokens, budget the fit is judged against), tried in order
    rungs: tuple[tuple[int, int, float], ...]
    budget: float
    min_concurrency: int


def evaluate(r: Resolved, tp: int, pp: int) -> Candidate:
    weights, total = weight_bytes(r.arch, r.weight_dtype, tp, pp)
    non_torch = NON_TORCH_ONE_GPU if tp * pp == 1 else NON_TORCH_MULTI_GPU
    per_token = kv_bytes_per_token(r.arch, tp, pp, r.kv_dtype)
    needed_tokens = r.min_concurrency * r.max_model_len if per_token else 0
    best: Candidate | None = None
    for seqs, batched, judged_budget in r.rungs:
        activation = activation_bytes(r.arch, tp, seqs, batched)
        kv_need = needed_tokens * per_token
        fits = judged_budget - weights - activation - non_torch >= kv_need
        room = r.budget - weights - activation - non_torch
        tokens = int(room // per_token) // KV_BLOCK * KV_BLOCK if per_token and room > 0 else (0 if per_token else None)
        candidate = Candidate(
            tp, pp, fits, seqs, batched, weights, activation, non_torch, room, per_token, tokens, kv_need, total
        )
        best = best or candidate
        if fits:
            return candidate
    assert best is not None
    return best


def resolve(req: SizingRequest, shape: GpuShape) -> Resolved:
    arch = req.arch
    if req.task and req.task != arch.task:
        if arch.task == "generate" or req.task == "generate":
            raise SizingError([f"{req.field}.task: {arch.id} is a {arch.task} model; set task: {arch.task}"])
        arch = replace(arch, task=req.task)  # type: ignore[arg-type]
    weight_dtype, quant_flags = weight_dtype_for(req, arch)
    if arch.task != "generate" and req.tool_call_parser:
        raise SizingError([f"{req.field}.toolCallParser: {arch.id} is a {arch.task} model; remove it"])
    if req.rope_factor and not arch.rope_theta:
        raise SizingError(
            [
                f"{req.field}.ropeScaling: {arch.id} learns absolute positions (no RoPE), "
                "which YaRN cannot extend; remove it"
            ]
        )

    native = arch.max_position
    rope_original: int | None = None
    limit = native
    if req.rope_factor:
        rope_original = req.rope_original or arch.yarn_original_max_position or native
        limit = int(rope_original * req.rope_factor)
    max_len = req.max_model_len or limit
    if max_len > limit:
        if req.rope_factor:
            need = math.ceil(max_len / (rope_original or native))
            raise SizingError(
                [
                    f"{req.field}.maxModelLen: {max_len} exceeds {rope_original} x YaRN factor "
                    f"{req.rope_factor:g} = {limit}; raise ropeScaling.factor to {need} or lower maxModelLen"
                ]
            )
        original = arch.yarn_original_max_position or native
        raise SizingError(
            [
                f"{req.field}.maxModelLen: {max_len} exceeds the {native} positions {arch.id} was trained on; "
                f"lower it to {native}"
                + (f" or add ropeScaling: {{factor: {-(-max_len // original)}}} (YaRN)" if arch.rope_theta else "")
            ]
        )

    budget = shape.memory_mib * 1024**2 * req.gpu_memory_utilization
    asked_seqs = _flag_int(req.extra_args, "--max-num-seqs")
    asked_tokens = _flag_int(req.extra_args, "--max-num-batched-tokens")
    default_seqs, default_tokens = shape.batch_defaults
    rungs = [(asked_seqs or default_seqs, asked_tokens or default_tokens, budget)]
    if shape.batch_defaults == LARGE_GPU_DEFAULTS and asked_seqs is None and asked_tokens is None:
        # vLLM's large-GPU batch defaults cost ~4 GiB more sampler memory than the small-GPU ones. A
        # larger card must never need more GPUs than a smaller one, so when the small-GPU defaults
        # would fit on a card just under the threshold, the plan passes them instead.
        small_budget = min(budget, LARGE_GPU_THRESHOLD_GIB * GIB * req.gpu_memory_utilization)
        rungs.append((*SMALL_GPU_DEFAULTS, small_budget))
    if arch.task != "generate":
        rungs = [(seqs, max(tokens, max_len), b) for seqs, tokens, b in rungs]  # no chunked prefill in pooling
    return Resolved(
        arch=arch,
        weight_dtype=weight_dtype,
        quant_flags=tuple(quant_flags),
        max_model_len=max_len,
        rope_original=rope_original,
        kv_dtype=req.kv_cache_dtype,
        rungs=tuple(rungs),
        budget=budget,
        min_concurrency=req.min_concurrency,
    )


def _flag_int(args: tuple[str, ...], flag: str) -> int | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return int(args[i + 1])
        if arg.startswith(flag + "="):
            return int(arg.split("=", 1)[1])
    return None


# ---------------------------------------------------------------- choosing TP x PP


def candidate_shapes(req: SizingRequest, r: Resolved, shape: GpuShape, max_nodes: int) -> Iterator[tuple[int, int]]:
    """(TP, PP) pairs in the order the objective prefers them; the first that fits wins.

    A replica either divides one node (GPUs per replica divides GPUs per node, so replicas tile
    nodes) or takes whole nodes. TP stays inside one NVLink domain unless the operator pins it; PP
    spans domains and nodes.
    """
    n, domain = shape.gpus_per_node, shape.nvlink_domain
    pp_ok = r.arch.attention != "encoder"
    single = [g for g in range(1, n + 1) if n % g == 0]

    def pps_for(tp: int) -> Iterator[int]:
        for g in single:
            if g % tp == 0:
                yield g // tp
        for nodes in range(2, max_nodes + 1):
            if n % tp == 0:
                yield nodes * n // tp

    if req.tensor_parallel and req.pipeline_parallel:
        yield req.tensor_parallel, req.pipeline_parallel
        return
    if req.tensor_parallel:
        for pp in pps_for(req.tensor_parallel):
            if pp == 1 or (pp_ok and pp <= r.arch.layers):
                yield req.tensor_parallel, pp
        return

    tps = valid_tps(r.arch, min(domain, n), r.weight_dtype)
    if req.pipeline_parallel:
        pp = req.pipeline_parallel
        for tp in sorted(tps, reverse=req.objective == "latency"):
            g = tp * pp
            if n % g == 0 or (g % n == 0 and n % tp == 0):
                yield tp, pp
        return

    if req.objective == "latency":
        tp = max(t for t in tps if n % t == 0)
        for pp in pps_for(tp):
            if pp == 1 or (pp_ok and pp <= r.arch.layers):
                yield tp, pp
        return

    # throughput: the fewest GPUs; among equal counts the largest TP (less pipeline bubble)
    for g in single:
        for tp in sorted((t for t in tps if g % t == 0), reverse=True):
            pp = g // tp
            if pp == 1 or (pp_ok and pp <= r.arch.layers):
                yield tp, pp
                break
    for nodes in range(2, max_nodes + 1):
        node_tps = [t for t in tps if n % t == 0]
        if node_tps and pp_ok:
            tp = max(node_tps)
            if nodes * n // tp <= r.arch.layers:
                yield tp, nodes * n // tp


def check_parallel_overrides(req: SizingRequest, r: Resolved, shape: GpuShape) -> list[str]:
    errors = []
    n = shape.gpus_per_node
    if req.tensor_parallel:
        tp = req.tensor_parallel
        problem = tp_problem(r.arch, tp, r.weight_dtype)
        if problem:
            tiling = [t for t in valid_tps(r.arch, n, r.weight_dtype) if n % t == 0]
            errors.append(f"{req.field}.tensorParallel: {problem}; use {_or_list(tiling)}")
        elif tp > n:
            errors.append(
                f"{req.field}.tensorParallel: {tp} is more than the {n} GPUs of one node and TP never spans "
                f"nodes; use at most {n} and pipelineParallel for more nodes"
            )
        elif n % tp:
            errors.append(
                f"{req.field}.tensorParallel: {tp} does not divide the {n} GPUs of a node, so replicas "
                f"cannot tile nodes; use {_or_list([t for t in valid_tps(r.arch, n, r.weight_dtype) if n % t == 0])}"
            )
    if req.pipeline_parallel:
        pp = req.pipeline_parallel
        if pp > 1 and r.arch.attention == "encoder":
            errors.append(f"{req.field}.pipelineParallel: vLLM has no pipeline parallelism for encoder models; use 1")
        elif pp > r.arch.layers:
            errors.append(f"{req.field}.pipelineParallel: {pp} is more than the {r.arch.layers} layers of {r.arch.id}")
        elif req.tensor_parallel and not errors:
            g = req.tensor_parallel * pp
            if n % g and g % n:
                errors.append(
                    f"{req.field}.pipelineParallel: TP {req.tensor_parallel} x PP {pp} = {g} GPUs neither "
                    f"divides nor fills whole {n}-GPU nodes; pick a PP that does"
                )
    return errors


# ---------------------------------------------------------------- size_model


def size_model(req: SizingRequest, shape: GpuShape, max_nodes: int = CLI_MAX_NODES) -> Sizing:
    """Size one model on one GPU shape. `fits` is False (with a reason) when no shape within `max_nodes` fits."""
    _check_extra_args(req)
    r = resolve(req, shape)
    errors = check_parallel_overrides(req, r, shape)
    if errors:
        raise SizingError(errors)
    tried: list[Candidate] = []
    chosen: Candidate | None = None
    for tp, pp in candidate_shapes(req, r, shape, max_nodes):
        candidate = evaluate(r, tp, pp)
        tried.append(candidate)
        if candidate.fits:
            chosen = candidate
            break
    if chosen is None:
        largest = tried[-1] if tried else evaluate(r, 1, 1)
        return _sizing(req, r, shape, largest, fits=False, reasons=[not_fit_reason(req, r, shape, largest, max_nodes)])
    reasons = _reasons(req, r, shape, chosen, tried[:-1])
    return _sizing(req, r, shape, chosen, fits=True, reasons=reasons)


def _sizing(req: SizingRequest, r: Resolved, shape: GpuShape, c: Candidate, fits: bool, reasons: list[str]) -> Sizing:
    gpus = c.tp * c.pp
    nodes = max(1, gpus // shape.gpus_per_node) if gpus > shape.gpus_per_node else 1
    args, env, warnings = serving_config(req, r, shape, c, nodes)
    concurrency = round(c.kv_tokens / r.max_model_len, 2) if c.kv_tokens is not None else float(c.max_num_seqs)
    return Sizing(
        model=r.arch.id,
        task=r.arch.task,
        gpu=shape.gpu_id,
        objective=req.objective,
        fits=fits,
        tp=c.tp,
        pp=c.pp,
        gpus_per_replica=gpus,
        nodes_per_replica=nodes,
        weight_dtype=r.weight_dtype,
        kv_cache_dtype=r.kv_dtype if r.kv_dtype != "auto" else ("fp16" if r.weight_dtype == "fp16" else "bf16"),
        weights_total_gib=round(c.weights_total / GIB, 2),
        checkpoint_gib=round(weight_bytes(r.arch, _on_disk(r.arch.checkpoint_dtype), 1, 1)[1] / GIB, 2),
        gpus_per_pod=gpus // nodes,
        max_model_len=r.max_model_len,
        rope_type="yarn" if r.rope_original else r.arch.rope_type,
        max_num_seqs=c.max_num_seqs,
        max_num_batched_tokens=c.batched_tokens,
        memory=MemoryPlan(
            gpu_total=round(shape.memory_gib, 2),
            usable=round(r.budget / GIB, 2),
            weights=round(c.weights / GIB, 2),
            activation=round(c.activation / GIB, 2),
            non_torch=round(c.non_torch / GIB, 2),
            kv_cache=round(max(c.kv_room, 0) / GIB, 2),
            kv_needed=round(c.kv_needed / GIB, 2),
        ),
        kv_cache_tokens=c.kv_tokens,
        max_concurrency=concurrency if fits else None,
        vllm_args=args,
        env=env,
        warnings=warnings,
        reasons=reasons,
    )


def _on_disk(checkpoint_dtype: str) -> str:
    return checkpoint_dtype if checkpoint_dtype in BYTES_PER_PARAM else "bf16"


def _gib(value: float) -> str:
    return f"{value / GIB:.1f} GiB"


def _reasons(req: SizingRequest, r: Resolved, shape: GpuShape, c: Candidate, rejected: list[Candidate]) -> list[str]:
    a = r.arch
    gpus = c.tp * c.pp
    reasons = [
        f"weights: {a.params_b:g}B params as {r.weight_dtype} = {_gib(c.weights_total)}"
        + (f", {_gib(c.weights)} per GPU" if gpus > 1 else ""),
    ]
    need = (
        f"weights + activation + KV for {r.min_concurrency} x {r.max_model_len} tokens"
        if c.kv_per_token
        else "weights + activation (encoder: no KV cache)"
    )
    if req.tensor_parallel or req.pipeline_parallel:
        reasons.append(f"TP {c.tp} x PP {c.pp}: pinned in the stack ({need} fit)")
    elif req.objective == "latency":
        reasons.append(
            f"TP {c.tp}: latency objective takes the largest valid TP inside the NVLink domain "
            f"({shape.nvlink_domain} GPU{'s' if shape.nvlink_domain > 1 else ''} of {shape.gpu_id})"
        )
    else:
        reasons.append(
            f"{gpus} GPU{'s' if gpus > 1 else ''}: throughput objective takes the fewest GPUs that hold {need}"
        )
    for bad in rejected:
        short = (
            f"{_gib(bad.kv_needed - bad.kv_room)} of KV" if bad.kv_room >= 0 else f"{_gib(-bad.kv_room)} before any KV"
        )
        reasons.append(f"TP {bad.tp} x PP {bad.pp} rejected: short by {short} per GPU")
    if c.pp > 1:
        where = "nodes" if gpus > shape.gpus_per_node else "NVLink domains inside the node"
        reasons.append(f"PP {c.pp}: the model needs more GPUs than one NVLink domain; stages span {where}")
    if r.rope_original:
        reasons.append(f"max_model_len {r.max_model_len}: YaRN x{req.rope_factor:g} over {r.rope_original}")
    if c.kv_tokens is not None:
        reasons.append(
            f"KV cache: {_gib(c.kv_room)} per GPU = {c.kv_tokens} tokens "
            f"({c.kv_tokens / r.max_model_len:.2f} x {r.max_model_len})"
        )
    if not shape.peer_to_peer:
        reasons.append(f"NCCL_P2P_DISABLE=1: {shape.gpu_id} peer-to-peer is broken; NCCL hangs or sums wrong")
    return reasons


def not_fit_reason(req: SizingRequest, r: Resolved, shape: GpuShape, c: Candidate, max_nodes: int) -> str:
    """One line: what does not fit, and what would."""
    gpus = c.tp * c.pp
    short = c.kv_needed - max(c.kv_room, 0) if c.kv_room >= 0 else -c.kv_room + c.kv_needed
    head = (
        f"{r.arch.id} does not fit {gpus} x {shape.gpu_id} (TP {c.tp} x PP {c.pp}, {max_nodes} node(s) max): "
        f"short by {_gib(short)} per GPU"
    )
    options = []
    if r.weight_dtype in UNQUANTIZED and req.quantization in ("auto", *SIXTEEN_BIT):
        alt = _first_fit(replace(req, quantization="fp8"), shape, max_nodes)
        if alt:
            options.append(f"quantization: fp8 ({alt})")
    if r.kv_dtype == "auto" and c.kv_per_token:
        alt = _first_fit(replace(req, kv_cache_dtype="fp8"), shape, max_nodes)
        if alt:
            options.append(f"kvCacheDtype: fp8 ({alt})")
    if c.kv_per_token:
        longest = _longest_context(req, r, shape, max_nodes)
        if longest:
            options.append(f"maxModelLen <= {longest}")
    for nodes in (max_nodes * 2, max_nodes * 4, 64):
        alt = _first_fit(req, shape, nodes)
        if alt:
            options.append(f"more GPUs ({alt})")
            break
    return head + ("; would fit with " + ", or ".join(options) if options else "; no smaller setting fits")


def _first_fit(req: SizingRequest, shape: GpuShape, max_nodes: int) -> str | None:
    try:
        r = resolve(req, shape)
    except SizingError:
        return None
    for tp, pp in candidate_shapes(req, r, shape, max_nodes):
        if evaluate(r, tp, pp).fits:
            return f"{tp * pp} GPU{'s' if tp * pp > 1 else ''}, TP {tp} x PP {pp}"
    return None


def _longest_context(req: SizingRequest, r: Resolved, shape: GpuShape, max_nodes: int) -> int | None:
    """The longest max_model_len (multiple of 1024) that fits within max_nodes, by bisection."""
    lo, hi = 0, r.max_model_len // 1024
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _first_fit(replace(req, max_model_len=mid * 1024), shape, max_nodes):
            lo = mid
        else:
            hi = mid - 1
    return lo * 1024 if lo else None


# ---------------------------------------------------------------- vLLM arguments and environment


def _check_extra_args(req: SizingRequest) -> None:
    errors = []
    for arg in req.extra_args:
        flag = arg.split("=", 1)[0]
        if flag in PLAN_FLAGS:
            errors.append(
                f"{req.field}.extraArgs: {flag} contradicts the plan, which sets it; set {PLAN_FLAGS[flag]} instead"
            )
        elif flag in COMPONENT_FLAGS:
            errors.append(f"{req.field}.extraArgs: {flag} is set by the plan; remove it ({COMPONENT_FLAGS[flag]})")
    for flag in ("--max-num-seqs", "--max-num-batched-tokens"):
        try:
            _flag_int(req.extra_args, flag)
        except ValueError:
            errors.append(f"{req.field}.extraArgs: {flag} needs a whole number after it")
    for key, _ in req.env:
        if key in PLAN_ENV:
            errors.append(f"{req.field}.env.{key}: set by the plan from the GPU and the spec; remove it")
    if errors:
        raise SizingError(errors)


def yarn_overrides(a: ModelArch, req: SizingRequest, r: Resolved) -> dict[str, Any]:
    """YaRN as vLLM 0.13 applies it: a dict override replaces the config attribute after vLLM has already
    turned `rope_scaling` into `rope_parameters` (ModelConfig._apply_dict_overrides, patch_rope_parameters), so
    the override must be `rope_parameters` itself, with the model's rope_theta, which it replaces too."""
    return {
        "rope_parameters": {
            "rope_type": "yarn",
            "factor": req.rope_factor,
            "original_max_position_embeddings": r.rope_original,
            "rope_theta": a.rope_theta,
        }
    }


def has_batch_invariant_kernels(compute_capability: str) -> bool:
    family = compute_capability.split(".")[0]
    return compute_capability in BATCH_INVARIANT_CAPABILITIES or family in BATCH_INVARIANT_FAMILIES


def serving_config(
    req: SizingRequest, r: Resolved, shape: GpuShape, c: Candidate, nodes: int
) -> tuple[list[str], dict[str, str], list[str]]:
    """vLLM arguments (for `vllm serve`, model first), environment and warnings."""
    a = r.arch
    args = [a.id]
    if req.served_name:
        args += ["--served-model-name", req.served_name]
    if req.revision:
        args += ["--revision", req.revision]
    args += [
        "--tensor-parallel-size",
        str(c.tp),
        "--pipeline-parallel-size",
        str(c.pp),
        "--max-model-len",
        str(r.max_model_len),
        "--gpu-memory-utilization",
        f"{req.gpu_memory_utilization:g}",
    ]
    args += list(r.quant_flags)
    if r.kv_dtype != "auto":
        args += ["--kv-cache-dtype", r.kv_dtype]
    if (c.max_num_seqs, c.batched_tokens) != shape.batch_defaults and r.rungs[0][:2] == shape.batch_defaults:
        args += ["--max-num-seqs", str(c.max_num_seqs), "--max-num-batched-tokens", str(c.batched_tokens)]
    if r.rope_original:
        args += ["--hf-overrides", json.dumps(yarn_overrides(a, req, r), separators=(",", ":"))]
    if a.task != "generate":
        args += ["--runner", "pooling"]
    if req.trust_remote_code if req.trust_remote_code is not None else a.trust_remote_code:
        args += ["--trust-remote-code"]
    args += list(a.vllm_args)
    if req.deterministic:
        args += ["--seed", str(req.seed), "--no-enable-prefix-caching"]
    elif req.prefix_caching is True:
        args += ["--enable-prefix-caching"]
    elif req.prefix_caching is False:
        args += ["--no-enable-prefix-caching"]
    if req.tool_call_parser:
        args += ["--enable-auto-tool-choice", "--tool-call-parser", req.tool_call_parser]
    args += list(req.extra_args)

    env: dict[str, str] = {}
    warnings: list[str] = []
    if not shape.peer_to_peer:
        env["NCCL_P2P_DISABLE"] = "1"
    if req.deterministic:
        if has_batch_invariant_kernels(shape.compute_capability):
            env["VLLM_BATCH_INVARIANT"] = "1"
        else:
            warnings.append(
                f"deterministic: {shape.gpu_id} (compute {shape.compute_capability}) has no batch-invariant "
                "kernels in vLLM " + VLLM_VERSION + "; answers can differ across replicas and under load"
            )
    env.update(dict(req.env))

    if req.revision is None:
        warnings.append("no revision pin: the weights follow the repository's main branch; set revision to a commit")
    if c.tp > shape.nvlink_domain:
        warnings.append(
            f"TP {c.tp} spans {c.tp // shape.nvlink_domain} NVLink domains of {shape.gpu_id}: every all-reduce "
            "crosses PCIe" + (" host-staged (13x slower measured at 16 MiB)" if not shape.peer_to_peer else "")
        )
    if a.attention not in ("mla", "encoder") and c.tp > a.kv_heads:
        warnings.append(f"TP {c.tp} > {a.kv_heads} KV heads: KV heads are replicated, wasting KV memory")
    if c.max_num_seqs < shape.batch_defaults[0] and r.rungs[0][0] == shape.batch_defaults[0]:
        warnings.append(
            f"max_num_seqs {c.max_num_seqs} / max_num_batched_tokens {c.batched_tokens} (vLLM's small-GPU defaults) "
            f"instead of {shape.batch_defaults[0]} / {shape.batch_defaults[1]}: the large-GPU sampler would not "
            "leave room for the KV cache"
        )
    outside = shape.memory_gib * (1 - req.gpu_memory_utilization)
    if outside < CUDA_GRAPH_RESERVE_GIB:
        warnings.append(
            f"gpu_memory_utilization {req.gpu_memory_utilization:g} leaves {outside:.2f} GiB outside vLLM's budget; "
            f"CUDA graphs can take up to {CUDA_GRAPH_RESERVE_GIB} GiB there"
        )
    if r.weight_dtype == "fp8" and not shape.native_fp8:
        warnings.append(
            f"{shape.gpu_id} has no FP8 tensor cores: FP8 weights run weight-only (Marlin), saving memory, not compute"
        )
    if a.sliding_window_layers:
        warnings.append(
            f"{a.sliding_window_layers} of {a.layers} layers use a {a.sliding_window}-token sliding window; KV is "
            "sized as full attention, so vLLM may report more tokens"
        )
    if a.params_estimated:
        warnings.append(
            f"parameter count estimated from the config ({a.params_b:g}B); pass paramsB for the published one"
        )
    return args, env, warnings


# ---------------------------------------------------------------- pools


@dataclass(frozen=True)
class PoolShape:
    index: int
    spec: GpuPoolSpec
    gpu: GpuType
    shape: GpuShape
    instance_type: str | None
    instance_types: tuple[str, ...]
    accelerator: str | None
    min_nodes: int
    max_nodes: int


_BACKEND_CLOUD = {"karpenter": "aws", "gke": "gcp", "ovh": "ovh"}


def resolve_pool(pool: GpuPoolSpec, index: int, gpus: dict[str, GpuType]) -> PoolShape:
    at = f"pools[{index}]"
    gpu = gpus.get(pool.gpu)
    if gpu is None:
        raise SizingError([f"{at}.gpu: unknown GPU {pool.gpu!r}; known GPUs: {', '.join(gpus)}"])
    backend = pool.backend
    instance_type: str | None = None
    gpn = pool.gpus_per_node
    domain = pool.nvlink_domain
    instance_types: list[str] = []
    accelerator: str | None = None
    if isinstance(backend, ExistingBackendSpec):
        assert gpn is not None  # the spec requires it for existing nodes
        min_nodes = max_nodes = len(backend.node_names)
    else:
        cloud = _BACKEND_CLOUD[backend.kind]
        offered = gpu.instances_on(cloud)  # type: ignore[arg-type]
        if not offered:
            others = [g.id for g in gpus.values() if g.instances_on(cloud)]  # type: ignore[arg-type]
            raise SizingError(
                [f"{at}.gpu: {gpu.id} is not offered on {backend.kind} ({cloud}); GPUs it offers: {', '.join(others)}"]
            )
        wanted: list[str] = []
        if isinstance(backend, KarpenterBackendSpec):
            wanted = backend.instance_types
        elif isinstance(backend, GkeBackendSpec) and backend.machine_type:
            wanted = [backend.machine_type]
        elif isinstance(backend, OvhBackendSpec) and backend.flavor:
            wanted = [backend.flavor]
        by_type = {i.type: i for i in offered}
        for name in wanted:
            if name not in by_type:
                raise SizingError(
                    [f"{at}.backend: {name!r} is not offered on {cloud} with {gpu.id}; use one of {', '.join(by_type)}"]
                )
        chosen = [by_type[n] for n in wanted] or [i for i in offered if gpn is None or i.gpus == gpn]
        if not chosen:
            counts = sorted({i.gpus for i in offered})
            raise SizingError([f"{at}.gpusPerNode: no {cloud} shape has {gpn} x {gpu.id}; use {_or_list(counts)}"])
        if gpn is None and len({i.gpus for i in chosen}) > 1:
            raise SizingError(
                [
                    f"{at}.gpusPerNode: {cloud} offers {gpu.id} with "
                    f"{_or_list(sorted({i.gpus for i in chosen}))} GPUs per node; say how many"
                ]
            )
        if gpn is not None and any(i.gpus != gpn for i in chosen):
            raise SizingError([f"{at}.gpusPerNode: {gpn} does not match {chosen[0].type} ({chosen[0].gpus} GPUs)"])
        if not isinstance(backend, KarpenterBackendSpec):
            chosen = chosen[:1]  # a GKE or OVHcloud node pool has one machine type; the catalog lists smallest first
        gpn = chosen[0].gpus
        domain = domain or min(i.nvlink_domain for i in chosen)
        instance_type = chosen[0].type if len(chosen) == 1 else None
        instance_types = [i.type for i in chosen]
        accelerator = chosen[0].accelerator
        if pool.nodes is not None:
            min_nodes = max_nodes = pool.nodes
        else:
            min_nodes, max_nodes = pool.min_nodes or 0, pool.max_nodes or 0
    if domain and gpn % domain:
        raise SizingError([f"{at}.nvlinkDomain: {domain} does not divide {gpn} GPUs per node"])
    return PoolShape(
        index, pool, gpu, GpuShape.of(gpu, gpn, domain), instance_type, tuple(instance_types), accelerator,
        min_nodes, max_nodes,
    )  # fmt: skip


# ---------------------------------------------------------------- placement


NodeState = tuple[int, ...]  # free GPUs per NVLink domain, sorted


def _take(state: NodeState, tp: int, pp: int, domain: int) -> NodeState | None:
    """Place one single-node replica's stages on a node; each TP group inside one domain when it can be."""
    free = list(state)
    if tp <= domain:
        for _ in range(pp):
            fitting = [i for i, f in enumerate(free) if f >= tp]
            if not fitting:
                return None
            best = min(fitting, key=lambda i: free[i])  # best fit keeps whole domains for wide TP groups
            free[best] -= tp
    else:
        need = tp * pp
        if sum(free) < need:
            return None
        for i in sorted(range(len(free)), key=lambda i: -free[i]):
            used = min(free[i], need)
            free[i] -= used
            need -= used
    return tuple(sorted(free))


@dataclass
class _Pool:
    """Nodes of one pool grouped by state, so placement costs O(replicas x distinct states)."""

    empty: NodeState
    states: dict[NodeState, int]

    @classmethod
    def of(cls, nodes: int, gpn: int, domain: int) -> _Pool:
        empty = tuple([domain] * (gpn // domain))
        return cls(empty, {empty: nodes} if nodes else {})

    def place(self, tp: int, pp: int, nodes_per_replica: int, domain: int) -> bool:
        if nodes_per_replica > 1:
            if self.states.get(self.empty, 0) < nodes_per_replica:
                return False
            self._move(self.empty, tuple([0] * len(self.empty)), nodes_per_replica)
            return True
        for state in sorted(self.states, key=sum):  # best fit: the fullest node that still fits
            after = _take(state, tp, pp, domain)
            if after is not None:
                self._move(state, after, 1)
                return True
        return False

    def _move(self, old: NodeState, new: NodeState, count: int) -> None:
        self.states[old] -= count
        if not self.states[old]:
            del self.states[old]
        self.states[new] = self.states.get(new, 0) + count

    def used(self, nodes: int, gpn: int) -> tuple[int, int]:
        free_gpus = sum(sum(s) * n for s, n in self.states.items())
        return nodes * gpn - free_gpus, nodes - self.states.get(self.empty, 0)


def place_replicas(
    pool: PoolShape, models: list[tuple[int, ModelPlan]], which: Literal["min", "max"]
) -> tuple[int, int, list[str]]:
    """Place every model's min or max replicas on the pool's max nodes.

    Returns (GPUs used, nodes used, errors). On shortfall the pool is grown node by node to say how
    many nodes would be needed.
    """
    shape = pool.shape
    nodes = pool.max_nodes
    state = _Pool.of(nodes, shape.gpus_per_node, shape.nvlink_domain)
    order = sorted(models, key=lambda im: (-im[1].nodes_per_replica, -im[1].gpus_per_replica, im[0]))
    short: dict[int, int] = {}
    for index, plan in order:
        count = plan.min_replicas if which == "min" else plan.max_replicas
        for _ in range(count):
            while not state.place(plan.tp, plan.pp, plan.nodes_per_replica, shape.nvlink_domain):
                state.states[state.empty] = state.states.get(state.empty, 0) + 1
                nodes += 1
                short[index] = short.get(index, 0) + 1
    gpus_used, nodes_used = state.used(nodes, shape.gpus_per_node)
    errors = []
    if short:
        names = ", ".join(f"models[{i}] ({next(p.name for j, p in models if j == i)})" for i in sorted(short))
        errors.append(
            f"pools[{pool.index}].{_size_field(pool)}: "
            f"{which} replicas of {names} do not fit {pool.max_nodes} node(s) of {shape.gpus_per_node} x "
            f"{shape.gpu_id}; they need {nodes} nodes ({nodes - pool.max_nodes} more, "
            f"{gpus_used - pool.max_nodes * shape.gpus_per_node} GPUs short): add nodes or lower the replicas"
        )
    return gpus_used, nodes_used, errors


# A "typical" request for turning KV capacity into a concurrency: chat and RAG prompts plus answers.
TYPICAL_REQUEST_TOKENS = 4096


def typical_concurrency(sizing: Sizing) -> float:
    """Requests one replica can run at once: KV tokens over a typical request, capped by max_num_seqs."""
    if sizing.kv_cache_tokens is None:
        return float(sizing.max_num_seqs)
    return min(float(sizing.max_num_seqs), sizing.kv_cache_tokens / min(sizing.max_model_len, TYPICAL_REQUEST_TOKENS))


def default_scaling_target(metric: str, sizing: Sizing) -> float:
    """Per-pod HPA target when the stack gives none, derived from what one replica can hold."""
    concurrency = typical_concurrency(sizing)
    if metric == "vllm:num_requests_running":
        return float(max(1, math.floor(0.5 * concurrency)))  # scale out at half the replica's capacity
    if metric == "vllm:num_requests_waiting":
        return float(max(1, math.floor(0.05 * concurrency)))  # a short queue is fine, a growing one is not
    if metric == "vllm:kv_cache_usage_perc":
        return 0.8
    return 80.0  # DCGM_FI_DEV_GPU_UTIL, percent


def resolve_autoscaling(
    asked: ModelAutoscalingSpec | None, sizing: Sizing, defaults: AutoscalingSpec
) -> ModelAutoscalingSpec | None:
    """The model's HPA settings with every default decided (target from the plan, windows from the stack)."""
    if asked is None:
        return None
    return asked.model_copy(
        update={
            "target": asked.target if asked.target is not None else default_scaling_target(asked.metric, sizing),
            "scale_up_stabilization_seconds": (
                asked.scale_up_stabilization_seconds
                if asked.scale_up_stabilization_seconds is not None
                else defaults.scale_up_stabilization_seconds
            ),
            "scale_down_stabilization_seconds": (
                asked.scale_down_stabilization_seconds
                if asked.scale_down_stabilization_seconds is not None
                else defaults.scale_down_stabilization_seconds
            ),
        }
    )


def resolve_gateway(gateway: GatewaySpec, models: list[ModelPlan]) -> GatewaySpec:
    """The gateway with its kind decided: vllm-router unless a model needs LiteLLM's rerank pass-through."""
    scores = [m.name for m in models if m.task == "score"]
    if gateway.kind == "vllm-router" and scores:
        raise SizingError(
            [
                f"gateway.kind: vllm-router 0.1.17 cannot pass vLLM's rerank responses through ({', '.join(scores)} "
                "serve rerank); use kind: litellm or leave kind out"
            ]
        )
    if gateway.kind is not None:
        return gateway
    return gateway.model_copy(update={"kind": "litellm" if scores else "vllm-router"})


def _resolved_backend(
    pool: PoolShape,
) -> ExistingBackendSpec | KarpenterBackendSpec | GkeBackendSpec | OvhBackendSpec:
    """The backend spec with its defaults decided: GKE installs the driver unless the GPU Operator does."""
    backend = pool.spec.backend
    if isinstance(backend, GkeBackendSpec) and backend.driver_version is None:
        version = "INSTALLATION_DISABLED" if pool.spec.install_driver else "DEFAULT"
        return backend.model_copy(update={"driver_version": version})
    if isinstance(backend, KarpenterBackendSpec) and not backend.instance_types:
        return backend.model_copy(update={"instance_types": list(pool.instance_types)})
    if isinstance(backend, OvhBackendSpec) and backend.flavor is None:
        return backend.model_copy(update={"flavor": pool.instance_type})
    return backend


def _size_field(pool: PoolShape) -> str:
    """The stack field that sets how many nodes a pool has."""
    if isinstance(pool.spec.backend, ExistingBackendSpec):
        return "backend.nodeNames"
    return "nodes" if pool.spec.nodes is not None else "maxNodes"


# ---------------------------------------------------------------- plan_cluster


def model_arch(model: ModelSpec, index: int, models: dict[str, ModelArch], base_dir: Path) -> ModelArch:
    at = f"models[{index}]"
    if model.config_path:
        try:
            return load_hf_config(base_dir / model.config_path, model.model, model.params_b)
        except CatalogError as exc:
            raise SizingError([f"{at}.configPath: {exc}"]) from None
    arch = models.get(model.model)
    if arch is None:
        raise SizingError(
            [
                f"{at}.model: {model.model!r} is not in the model catalog; add configPath: <path to its "
                f"config.json> (from https://huggingface.co/{model.model}/blob/main/config.json) or a row "
                "to components/catalog/models.yaml"
            ]
        )
    if model.params_b:
        arch = replace(arch, params_b=model.params_b)
    return arch


def plan_cluster(
    spec: ClusterSpec,
    gpus: dict[str, GpuType],
    models: dict[str, ModelArch],
    base_dir: Path = Path("."),
) -> ClusterPlan:
    """Size every model on its pool and place the replicas; raise SizingError listing every problem."""
    errors: list[str] = []
    pools: dict[str, PoolShape] = {}
    for i, pool_spec in enumerate(spec.pools):
        try:
            pools[pool_spec.name] = resolve_pool(pool_spec, i, gpus)
        except SizingError as exc:
            errors += exc.errors

    planned: list[tuple[int, ModelPlan]] = []
    for i, model in enumerate(spec.models):
        pool = pools.get(model.pool)
        if pool is None:
            continue  # the pool's own error is already listed
        try:
            arch = model_arch(model, i, models, base_dir)
            request = SizingRequest.from_spec(model, arch, i)
            sizing = size_model(request, pool.shape, max(pool.max_nodes, 1))
        except SizingError as exc:
            errors += exc.errors
            continue
        if not sizing.fits:
            errors.append(f"models[{i}] ({model.name}) on pool {model.pool!r}: {sizing.reasons[0]}")
            continue
        planned.append(
            (
                i,
                ModelPlan(
                    **sizing.model_dump(),
                    name=model.name,
                    revision=model.revision,
                    pool=model.pool,
                    min_replicas=model.min_replicas,
                    max_replicas=model.max_replicas,
                    autoscaling=resolve_autoscaling(model.autoscaling, sizing, spec.autoscaling),
                    slo=model.slo,
                ),
            )
        )

    pool_plans: list[PoolPlan] = []
    if not errors:
        for name, pool in pools.items():
            on_pool = [(i, p) for i, p in planned if p.pool == name]
            gpus_min, nodes_min, _ = place_replicas(pool, on_pool, "min")
            gpus_max, nodes_max, shortfall = place_replicas(pool, on_pool, "max")
            errors += shortfall
            pool_plans.append(
                PoolPlan(
                    name=name,
                    gpu=pool.gpu.id,
                    gfd_product=pool.gpu.gfd_product,
                    backend=pool.spec.backend.kind,
                    backend_config=_resolved_backend(pool),
                    instance_types=list(pool.instance_types),
                    accelerator=pool.accelerator,
                    compact_placement=any(p.nodes_per_replica > 1 for _, p in on_pool),
                    node_names=(
                        list(pool.spec.backend.node_names) if isinstance(pool.spec.backend, ExistingBackendSpec) else []
                    ),
                    taint=pool.spec.taint,
                    install_driver=pool.spec.install_driver,
                    install_toolkit=pool.spec.install_toolkit,
                    instance_type=pool.instance_type,
                    gpus_per_node=pool.shape.gpus_per_node,
                    nvlink_domain=pool.shape.nvlink_domain,
                    peer_to_peer=pool.shape.peer_to_peer,
                    min_nodes=pool.min_nodes,
                    max_nodes=pool.max_nodes,
                    gpus_total=pool.max_nodes * pool.shape.gpus_per_node,
                    gpus_used_min=gpus_min,
                    gpus_used_max=gpus_max,
                    nodes_used_min=nodes_min,
                    nodes_used_max=nodes_max,
                    models=[p.name for _, p in on_pool],
                )
            )
    try:
        gateway = resolve_gateway(spec.gateway, [p for _, p in planned])
    except SizingError as exc:
        errors += exc.errors
    if errors:
        raise SizingError(errors)

    warnings = [f"pool {p.name!r} serves no model" for p in pool_plans if not p.models]
    return ClusterPlan(
        vllm_version=VLLM_VERSION,
        kubernetes_version=spec.kubernetes_version,
        namespace=spec.namespace,
        storage_class=spec.storage_class,
        weights_storage_class=spec.weights_storage_class or spec.storage_class or "",
        weights_cache=spec.weights_cache,
        pools=pool_plans,
        models=[p for _, p in planned],
        gateway=gateway,
        auth=spec.auth,
        autoscaling=spec.autoscaling,
        monitoring=spec.monitoring,
        images=spec.images,
        warnings=warnings,
    )
