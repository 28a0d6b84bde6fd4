"""size_model: one model on one GPU shape, with the reason for every decision."""

from __future__ import annotations

from dataclasses import replace

from components.planning.batch_limits import batch_reason
from components.planning.engine_args import (
    check_extra_args,
    serving_config,
)
from components.planning.kv_cache import allocator_note
from components.planning.kv_cache import describe as describe_layers
from components.planning.memory import (
    BYTES_PER_PARAM,
    GIB,
    SIXTEEN_BIT,
    UNQUANTIZED,
    weight_bytes,
)
from components.planning.parallelism import (
    Candidate,
    Resolved,
    candidate_shapes,
    check_parallel_overrides,
    evaluate,
    pooling_reason,
    resolve,
)
from components.planning.types import (
    CLI_MAX_NODES,
    GpuShape,
    MemoryPlan,
    Sizing,
    SizingError,
    SizingRequest,
)


def size_model(req: SizingRequest, shape: GpuShape, max_nodes: int = CLI_MAX_NODES) -> Sizing:
    """Size one model on one GPU shape. `fits` is False (with a reason) when no shape within `max_nodes` fits."""
    check_extra_args(req)
    r = resolve(req, shape)
    errors = check_parallel_overrides(req, r, shape)
    if errors:
        raise SizingError(errors)
    tried: list[Candidate] = []
    chosen: Candidate | None = None
    # Each shape is judged at the asked or default batch limits first, then at lowered ones (batch_limits.py):
    # the fewest GPUs win, and a smaller batch only where the larger would not fit them.
    for tp, pp in candidate_shapes(req, r, shape, max_nodes):
        candidate = evaluate(r, tp, pp, lowered=True)
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
    args, env, warnings = serving_config(req, r, shape, c)
    # Full-length requests at once: what the KV cache holds, and never more than max_num_seqs.
    kv_concurrency = c.kv_concurrency if c.kv_concurrency is not None else float(c.max_num_seqs)
    concurrency = round(min(kv_concurrency, float(c.max_num_seqs)), 2)
    return Sizing(
        model=r.arch.id,
        task=r.arch.task,
        gpu=shape.gpu_id,
        objective=req.objective,
        vllm_version=req.vllm_version,
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
            cuda_graphs=round(r.cuda_graphs / GIB, 2),
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
    if a.task != "generate":
        reasons.append(pooling_reason(req, a))
    need = (
        f"weights + activation + KV for {r.min_concurrency} x {r.max_model_len} tokens"
        if c.kv_per_token
        else "weights + activation (encoder: no KV cache)"
    )
    if req.layout_reasons:
        reasons += req.layout_reasons
    elif req.tensor_parallel or req.pipeline_parallel:
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
    first = (r.rungs[0][0], r.rungs[0][1])
    reasons.append(batch_reason(req, r.arch, shape, first, (c.max_num_seqs, c.batched_tokens), c.activation))
    if c.kv_tokens is not None:
        if a.layer_groups:
            reasons.append(
                f"KV layers: {describe_layers(a)} (sized per group as vLLM allocates them)"
                + allocator_note(a, req.engine.kv_cache)
            )
        reasons.append(
            f"KV cache: {_gib(c.kv_room)} per GPU = {c.kv_tokens} tokens "
            f"({c.kv_concurrency or 0:.2f} x {r.max_model_len})"
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
    if req.max_num_seqs is not None and r.arch.task == "generate":
        # The plan lowers max_num_seqs itself only when the stack leaves it unset.
        unset = replace(req, max_num_seqs=None, max_num_batched_tokens=None)
        alt = _first_fit(unset, shape, max_nodes)
        if alt:
            options.append(f"maxNumSeqs left to the plan, which lowers it ({alt})")
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
        if evaluate(r, tp, pp, lowered=True).fits:
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
