"""The layouts a model may take and how each does against its objectives, by the performance model.

Every layout that fits memory is a candidate, TP across PCIe inside a node included (the all-reduce cost of the
link is in the prediction, interconnect.py; engine_args.py keeps NCCL_P2P_DISABLE=1 where the catalog says P2P is
broken). A replica holds up to `edge` users before TTFT or ITL misses the objective (performance.py
max_concurrency_for_objective), so the peak needs ceil(peak / edge) replicas of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from components.catalog import GpuType
from components.planning.memory import valid_tps
from components.planning.parallelism import resolve
from components.planning.performance import Hardware, Layout, Objective, Prediction, Workload, predict
from components.planning.pools import PoolShape
from components.planning.prediction_types import PredictionPlan
from components.planning.sizing import size_model
from components.planning.types import GpuShape, Sizing, SizingError, SizingRequest
from components.spec import ModelSpec

# Without a stack workload the predictions are shown for a chat turn (as `size` defaults to) with as many users
# as the replica's KV cache holds such requests (at most max_num_seqs): the replica at its full batch.
DEFAULT_INPUT_TOKENS = 1024
DEFAULT_OUTPUT_TOKENS = 256
# The model predicts means; p50 objectives are compared with them. p95 ITL: the published runs with a tail figure
# give ITL p99 3-12% over the mean (bench/reference/perf_runs.yaml, vultr-minimax-m25 rows: 12.75 / 11.40 ms at
# 1 user), so a p95 ITL target is met when the mean is within target / 1.12. No run gives a TTFT tail (it depends
# on arrivals the stack does not state), so a p95 TTFT objective is refused rather than guessed.
P95_ITL_FACTOR = 1.12


@dataclass(frozen=True)
class Goal:
    input_len: int
    output_len: int
    peak: int
    objective: Objective  # as judged: a p95 ITL target already divided by P95_ITL_FACTOR
    text: str  # as the stack says it, e.g. "TTFT <= 500 ms, ITL <= 50 ms (p50)"


@dataclass(frozen=True)
class Option:
    """One layout that fits memory, judged against the goal."""

    sizing: Sizing
    edge: int  # most users per replica that meet the objective; 0: not even one
    replicas: int  # replicas the peak needs (the stack's when it pins them); 0: none meet it
    load: Prediction  # at peak / replicas users per replica (one user when none meet it)

    @property
    def gpus(self) -> int:
        return self.sizing.gpus_per_replica

    @property
    def total(self) -> int:
        return self.replicas * self.gpus if self.replicas else 0


def goal_for(model: ModelSpec, at: str) -> Goal | None:
    """The stack's objectives as the model judges them; None without; a SizingError naming the field when unusable."""
    o = model.objectives
    if o is None:
        return None
    if o.ttft_ms is None and o.itl_ms is None:
        raise SizingError([f"{at}.objectives: give ttftMs, itlMs or both (milliseconds)"])
    if model.workload is None:
        raise SizingError(
            [f"{at}.objectives: need workload.peakConcurrency (users at once, all replicas together) to count "
             "replicas; add workload: {peakConcurrency: N}"]
        )  # fmt: skip
    if o.percentile == "p95" and o.ttft_ms is not None:
        raise SizingError(
            [f"{at}.objectives.percentile: p95 TTFT is not modelled (no published run gives a TTFT tail); give "
             "ttftMs as a p50 target (percentile: p50), or keep p95 for itlMs alone"]
        )  # fmt: skip
    itl = o.itl_ms / P95_ITL_FACTOR if o.itl_ms is not None and o.percentile == "p95" else o.itl_ms
    parts = [f"TTFT <= {o.ttft_ms:g} ms" if o.ttft_ms else "", f"ITL <= {o.itl_ms:g} ms" if o.itl_ms else ""]
    text = ", ".join(p for p in parts if p) + f" ({o.percentile})"
    w = model.workload
    return Goal(w.input_tokens, w.output_tokens, w.peak_concurrency, Objective(o.ttft_ms, itl), text)


def layouts(req: SizingRequest, shape: GpuShape, max_nodes: int) -> list[tuple[int, int]]:
    """Every TP x PP a replica may take, fewest GPUs first (then the larger TP): TP up to the node (across PCIe
    too), PP inside the node or over whole nodes; the stack's pinned TP or PP kept."""
    r = resolve(req, shape)
    n = shape.gpus_per_node
    tiling = [t for t in valid_tps(r.arch, n, r.weight_dtype) if n % t == 0]
    tps = [req.tensor_parallel] if req.tensor_parallel else tiling
    out: set[tuple[int, int]] = set()
    for tp in tps:
        sizes = [g for g in range(1, n + 1) if n % g == 0] + [k * n for k in range(2, max_nodes + 1)]
        pps = [req.pipeline_parallel] if req.pipeline_parallel else [g // tp for g in sizes if g % tp == 0]
        for pp in pps:
            g = tp * pp
            staged = pp == 1 or (r.arch.attention != "encoder" and pp <= r.arch.layers)
            if staged and (n % g == 0 or (g % n == 0 and n % tp == 0)):
                out.add((tp, pp))
    return sorted(out, key=lambda s: (s[0] * s[1], -s[0]))


def hardware(gpu: GpuType, shape: GpuShape) -> Hardware:
    return Hardware.of(gpu, shape.nvlink_domain, shape.peer_to_peer)


def predict_on(req: SizingRequest, s: Sizing, hw: Hardware, w: Workload, objective: Objective | None) -> Prediction:
    layout = Layout(s.tp, s.pp, s.max_num_seqs, s.max_num_batched_tokens, s.kv_cache_tokens)
    arch = replace(req.arch, task=s.task)  # type: ignore[arg-type]
    return predict(arch, hw, layout, s.weight_dtype, s.kv_cache_dtype, w, objective)


def replicas_for(model: ModelSpec | None, edge: int, peak: int) -> int:
    """Replicas the peak needs at `edge` users each, within what the stack pins; 0 when that cannot meet it."""
    if edge < 1:
        return 0
    need = math.ceil(peak / edge)
    if model is not None and model.replicas is not None:
        return model.replicas if need <= model.replicas else 0
    if model is not None and model.autoscaling is not None:
        a = model.autoscaling
        return max(need, a.min_replicas) if need <= a.max_replicas else 0
    return need


def judge(req: SizingRequest, s: Sizing, hw: Hardware, goal: Goal, model: ModelSpec | None) -> Option:
    w = Workload(goal.input_len, goal.output_len, 1)
    edge = predict_on(req, s, hw, w, goal.objective).max_concurrency_for_objective or 0
    replicas = replicas_for(model, edge, goal.peak)
    users = goal.peak / replicas if replicas else 1.0
    return Option(s, edge, replicas, predict_on(req, s, hw, replace(w, concurrency=users), None))


def options(req: SizingRequest, pool: PoolShape, shape: GpuShape, goal: Goal, model: ModelSpec | None) -> list[Option]:
    """Each layout that fits memory, judged; layouts with more GPUs per replica than the best total are skipped
    (they cannot use fewer GPUs)."""
    hw = hardware(pool.gpu, shape)
    max_nodes = max(pool.max_nodes, 1)
    found: list[Option] = []
    best = 0
    for tp, pp in layouts(req, shape, max_nodes):
        if best and tp * pp > best:
            break
        try:
            s = size_model(replace(req, tensor_parallel=tp, pipeline_parallel=pp), shape, max_nodes)
        except SizingError:
            continue
        if not s.fits:
            continue
        option = judge(req, s, hw, goal, model)
        found.append(option)
        if option.total:
            best = min(best or option.total, option.total)
    return found


def best_of(found: list[Option]) -> Option | None:
    meeting = [o for o in found if o.total]
    return min(meeting, key=lambda o: (o.total, o.load.itl_ms, o.gpus), default=None)


def _numbers(p: Prediction) -> str:
    return f"TTFT {p.ttft_ms:.0f} ms, ITL {p.itl_ms:.1f} ms, {p.output_tokens_per_s:.0f} tok/s"


def option_line(o: Option, goal: Goal) -> str:
    head = f"TP {o.sizing.tp} x PP {o.sizing.pp}"
    if not o.total:
        if o.edge:
            return f"{head}: meets it up to {o.edge} users per replica, more than the stack's replicas allow"
        return f"{head}: misses it at 1 user ({_numbers(o.load)})"
    users = goal.peak / o.replicas
    return (
        f"{head}: {o.replicas} x {o.gpus} = {o.total} GPUs (meets it up to {o.edge} users per replica; at "
        f"{users:.3g} users: {_numbers(o.load)})"
    )


def prediction_plan(
    p: Prediction, input_len: int, output_len: int, users: float, source: str, goal: Goal | None, edge: int | None
) -> PredictionPlan:
    o = goal.objective if goal else None
    meets = None
    if o is not None:
        meets = (o.ttft_ms is None or p.ttft_ms <= o.ttft_ms) and (o.itl_ms is None or p.itl_ms <= o.itl_ms)
    return PredictionPlan(
        input_tokens=input_len,
        output_tokens=output_len,
        concurrency=round(users, 2),
        workload_source=source,
        ttft_ms=p.ttft_ms,
        itl_ms=p.itl_ms,
        output_tokens_per_s=p.output_tokens_per_s,
        output_tokens_per_s_per_gpu=p.output_tokens_per_s_per_gpu,
        bound=p.bound,
        objective=goal.text if goal else None,
        ttft_objective_ms=o.ttft_ms if o else None,
        itl_objective_ms=round(o.itl_ms, 3) if o and o.itl_ms else None,
        max_concurrency_for_objective=edge,
        meets=meets,
    )
