"""TP x PP: the candidates a model can run as on a GPU shape, and the one that fits."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

from components.catalog import ModelArch
from components.planning.batch_limits import as_vllm_runs, batch_rungs, check_batch_limits, lower_batch_tiers
from components.planning.engine_versions import KvCacheRules
from components.planning.kv_cache import kv_layout
from components.planning.memory import (
    GIB,
    NON_TORCH_MULTI_GPU,
    NON_TORCH_ONE_GPU,
    activation_bytes,
    cuda_graph_bytes,
    tp_problem,
    valid_tps,
    weight_bytes,
    weight_dtype_for,
)
from components.planning.rerankers import generative_score_problem, pooling_flags_text, reranker_source
from components.planning.types import (
    GpuShape,
    SizingError,
    SizingRequest,
    or_list,
)


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
    kv_per_token: float  # bytes per token of KV-cache block on the most loaded GPU; 0 without a KV cache
    kv_tokens: int | None  # vLLM's "GPU KV cache size: N tokens"
    kv_needed: float  # min_concurrency requests of max_model_len (kv_cache.py KvLayout.needed)
    weights_total: float
    kv_concurrency: float | None = None  # vLLM's "Maximum concurrency for max_model_len tokens per request"


@dataclass(frozen=True)
class Resolved:
    """Request facts every candidate shares."""

    arch: ModelArch
    weight_dtype: str
    quant_flags: tuple[str, ...]
    max_model_len: int
    rope_original: int | None
    kv_dtype: str
    # (max_num_seqs, max_num_batched_tokens, budget the fit is judged against), tried in order (batch_limits.py)
    rungs: tuple[tuple[int, int, float], ...]
    budget: float
    min_concurrency: int
    # Smaller batch limits, tried (with `rungs` first) only when nothing fits at `rungs` (batch_limits.py)
    lowered_rungs: tuple[tuple[int, int, float], ...] = ()
    cuda_graphs: float = 0.0  # taken from the budget before the KV cache where the release does (memory.py)
    kv_rules: KvCacheRules | None = None  # the release's KV allocator (kv_cache.py); None: the default release's


def evaluate(r: Resolved, tp: int, pp: int, lowered: bool = False) -> Candidate:
    weights, total = weight_bytes(r.arch, r.weight_dtype, tp, pp)
    non_torch = NON_TORCH_ONE_GPU if tp * pp == 1 else NON_TORCH_MULTI_GPU
    best: Candidate | None = None
    for seqs, batched, judged_budget in r.rungs + (r.lowered_rungs if lowered else ()):
        activation = activation_bytes(r.arch, tp, seqs, batched)
        # Sliding-window and chunked layers hold the window plus one step's tokens, so the layout depends on
        # max_num_batched_tokens (kv_cache.py).
        layout = kv_layout(r.arch, tp, pp, r.kv_dtype, r.max_model_len, batched, r.kv_rules)
        kv_need = float(layout.needed(r.min_concurrency)) if layout else 0.0
        fits = judged_budget - weights - activation - non_torch - r.cuda_graphs >= kv_need
        room = r.budget - weights - activation - non_torch - r.cuda_graphs
        candidate = Candidate(
            tp,
            pp,
            fits,
            seqs,
            batched,
            weights,
            activation,
            non_torch,
            room,
            layout.bytes_per_token if layout else 0.0,
            layout.tokens(room) if layout else None,
            kv_need,
            total,
            layout.concurrency(room) if layout else None,
        )
        best = best or candidate
        if fits:
            return candidate
    assert best is not None
    return best


def context_length(req: SizingRequest, arch: ModelArch) -> tuple[int, int | None]:
    """max_model_len, and the YaRN base when ropeScaling extends it; positions past training are refused."""
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
    return max_len, rope_original


def kv_rules_for(req: SizingRequest) -> KvCacheRules:
    """The release's KV allocator, as this model runs it: with prefix caching off (asked, or for a deterministic
    model) vLLM keeps Mamba out of `align` mode (MambaModelConfig in vllm/model_executor/models/config.py)."""
    rules = req.engine.kv_cache
    if req.deterministic or req.prefix_caching is False:
        return replace(rules, mamba_align_states=0, gdn_checkpoint_tokens=0)
    return rules


def resolve(req: SizingRequest, shape: GpuShape) -> Resolved:
    arch = req.arch
    if req.task and req.task != arch.task:
        refusal = task_problem(arch, req.task)
        if refusal:
            raise SizingError([f"{req.field}.task: {refusal}"])
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

    max_len, rope_original = context_length(req, arch)
    budget = shape.memory_mib * 1024**2 * req.gpu_memory_utilization
    check_batch_limits(req, arch, shape, max_len)
    first, *lower = batch_rungs(req, arch, shape, max_len)
    rungs = [(*first, budget)]
    if req.max_num_seqs is None and req.max_num_batched_tokens is None:
        # vLLM's larger-GPU batch defaults cost more sampler and activation memory than the next tier's (e.g.
        # ~4 GiB at 70 GiB). A larger card must never need more GPUs than a smaller one, so when a lower tier's
        # defaults would fit on a card just under its threshold, the plan passes them instead (each release's
        # tiers: EngineVersion.batch_tiers).
        for defaults, threshold_gib in lower_batch_tiers(req, shape):
            small_budget = min(budget, threshold_gib * GIB * req.gpu_memory_utilization)
            rungs.append((*as_vllm_runs(req, arch, max_len, *defaults), small_budget))
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
        lowered_rungs=tuple((seqs, tokens, budget) for seqs, tokens in lower),
        cuda_graphs=cuda_graph_bytes(req),
        kv_rules=kv_rules_for(req),
    )


def task_problem(arch: ModelArch, task: str) -> str | None:
    """Why vLLM 0.13 cannot serve `arch` for `task`, or None. A text-generation architecture becomes an embedder
    with `--convert embed`; no conversion adds a language-model head, or a trained classifier head."""
    if task == "generate" and not arch.generative:
        return f"{arch.id} ({arch.architecture}) has no language-model head to generate with; set task: {arch.task}"
    if task == "score" and arch.generative:  # only known rerankers get a trained head (rerankers.py)
        return generative_score_problem(arch)
    return None


def pooling_reason(req: SizingRequest, arch: ModelArch) -> str:
    """Why a model runs on vLLM's pooling runner, and the memory model that follows."""
    if req.task:
        source = f"`task: {req.task}` asked"
    elif arch.generative:
        source = reranker_source(arch) or f"its sentence-transformers modules.json ({arch.pooling_type} pooling)"
    else:
        source = f"its architecture {arch.architecture}"
    flags = pooling_flags_text(arch)
    cache = "no KV cache (bidirectional encoder)" if arch.attention == "encoder" else "a KV cache (causal decoder)"
    batch = "chunked prefill" if arch.chunked_prefill else "a whole request per batch (no chunked prefill)"
    return f"task {arch.task}: {source}; {flags}: no sampler, {cache}, {batch}"


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
            errors.append(f"{req.field}.tensorParallel: {problem}; use {or_list(tiling)}")
        elif tp > n:
            errors.append(
                f"{req.field}.tensorParallel: {tp} is more than the {n} GPUs of one node and TP never spans "
                f"nodes; use at most {n} and pipelineParallel for more nodes"
            )
        elif n % tp:
            errors.append(
                f"{req.field}.tensorParallel: {tp} does not divide the {n} GPUs of a node, so replicas "
                f"cannot tile nodes; use {or_list([t for t in valid_tps(r.arch, n, r.weight_dtype) if n % t == 0])}"
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
