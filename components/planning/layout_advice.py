"""When no layout meets a model's objectives: by how much the closest misses, and what would meet them (more
replicas, fp8 weights, another GPU, shorter prompts), each tried with the same performance model."""

from __future__ import annotations

import math
from dataclasses import replace

from components.catalog import load_gpu_catalog
from components.planning.layout_options import Goal, Option, best_of, options
from components.planning.memory import SIXTEEN_BIT, UNQUANTIZED
from components.planning.pools import PoolShape
from components.planning.types import GpuShape, SizingError, SizingRequest
from components.spec import ModelSpec


def unmet_warning(req: SizingRequest, model: ModelSpec, pool: PoolShape, goal: Goal, closest: Option) -> str:
    s = closest.sizing
    head = f"objectives not met: {goal.text} at {goal.peak} users; closest, TP {s.tp} x PP {s.pp}, "
    fixes: list[str] = []
    if closest.edge:
        need = math.ceil(goal.peak / closest.edge)
        allowed = model.replicas if model.replicas is not None else model.max_replicas
        head += f"holds {closest.edge} users per replica: {need} replicas needed, the stack allows {allowed}"
        fixes.append(f"{'replicas' if model.replicas is not None else 'autoscaling.maxReplicas'}: {need}")
    else:
        head += f"misses it at 1 user: {_by_how_much(closest, goal)}"
    # Each alternative keeps the stack's replica pins; shorter prompts only where one user already misses.
    shorter = None if closest.edge else _shorter(req, model, pool, goal, s.tp, s.pp)
    fixes += [fix for fix in (_fp8(req, model, pool, goal), _other_gpu(req, model, pool, goal), shorter) if fix]
    return head + ("; would meet it: " + "; or ".join(fixes) if fixes else "; nothing the plan tried meets it")


def _by_how_much(o: Option, goal: Goal) -> str:
    parts = []
    for name, got, want in (
        ("TTFT", o.load.ttft_ms, goal.objective.ttft_ms),
        ("ITL", o.load.itl_ms, goal.objective.itl_ms),
    ):
        if want is not None:
            over = (got / want - 1) * 100
            parts.append(f"{name} {got:.1f} ms vs {want:.1f} ({over:+.0f}%)")
    return ", ".join(parts)


def _summary(o: Option) -> str:
    return f"TP {o.sizing.tp} x PP {o.sizing.pp}, {o.replicas} x {o.gpus} = {o.total} GPU(s)"


def _fp8(req: SizingRequest, model: ModelSpec, pool: PoolShape, goal: Goal) -> str | None:
    """FP8 weights: half the bytes each decode step reads, where the checkpoint is 16-bit."""
    if req.arch.checkpoint_dtype not in UNQUANTIZED or req.quantization not in ("auto", *SIXTEEN_BIT):
        return None
    try:
        best = best_of(options(replace(req, quantization="fp8"), pool, pool.shape, goal, model))
    except SizingError:
        return None
    return f"quantization: fp8 ({_summary(best)})" if best else None


def _other_gpu(req: SizingRequest, model: ModelSpec, pool: PoolShape, goal: Goal) -> str | None:
    """The catalog GPU, with as many per node as the pool's, that meets the goal with the fewest GPUs."""
    found: list[tuple[int, str, Option]] = []
    for gpu in load_gpu_catalog().values():
        if gpu.id == pool.gpu.id or gpu.hbm_gbs <= 0:
            continue
        shape = GpuShape.of(gpu, pool.shape.gpus_per_node)
        try:
            best = best_of(options(req, replace(pool, gpu=gpu, shape=shape), shape, goal, model))
        except SizingError:
            continue
        if best:
            found.append((best.total, gpu.id, best))
    if not found:
        return None
    _, gpu_id, best = min(found, key=lambda f: (f[0], f[1]))
    return f"a pool of {gpu_id} ({_summary(best)})"


def _shorter(req: SizingRequest, model: ModelSpec, pool: PoolShape, goal: Goal, tp: int, pp: int) -> str | None:
    """The longest mean prompt (by bisection) at which the layout meets the objectives."""
    pinned = replace(req, tensor_parallel=tp, pipeline_parallel=pp)

    def meets(tokens: int) -> bool:
        return any(o.total for o in options(pinned, pool, pool.shape, replace(goal, input_len=tokens), model))

    if goal.input_len <= 1 or not meets(1):
        return None
    low, high = 1, goal.input_len
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if meets(mid) else (low, mid)
    return f"prompts of at most {low} tokens on average (TP {tp} x PP {pp})"
