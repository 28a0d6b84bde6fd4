"""Layouts chosen by predicted performance: with `objectives`, the TP x PP and replica count that meet them at the
workload's peak with the fewest GPUs (layout_options.py judges each layout); without, sizing.py's memory rule, with
the predictions shown. And the HPA target where the objectives say when a replica is full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from components.planning.layout_advice import unmet_warning
from components.planning.layout_options import (
    DEFAULT_INPUT_TOKENS,
    DEFAULT_OUTPUT_TOKENS,
    Goal,
    Option,
    best_of,
    goal_for,
    hardware,
    option_line,
    options,
    predict_on,
    prediction_plan,
)
from components.planning.performance import PerformanceError, Workload
from components.planning.pools import PoolShape
from components.planning.prediction_types import PredictionPlan
from components.planning.sizing import size_model
from components.planning.types import AutoscalingPlan, Sizing, SizingError, SizingRequest
from components.spec import ModelSpec

# Reasons list at most this many rejected layouts (the closest to the chosen one in GPUs).
MAX_REJECTED_SHOWN = 4
# The HPA scales out this far below the predicted edge of the objectives: the model's worst ITL error on the runs
# it was not fitted on is 20% (bench/results/perf_model.md), so a replica predicted full may already miss them.
HEADROOM = 0.2
RUNNING, WAITING = "vllm:num_requests_running", "vllm:num_requests_waiting"


@dataclass(frozen=True)
class LayoutChoice:
    sizing: Sizing
    prediction: PredictionPlan | None
    replicas: int | None = None  # fixed replicas the plan decided (the stack gives neither replicas nor autoscaling)
    edge: int | None = None  # most users per replica meeting the objectives; None without objectives
    edge_batch: float = 0.0  # of those, how many run at once (the rest wait for a slot)


def plan_layout(req: SizingRequest, model: ModelSpec, pool: PoolShape, index: int) -> LayoutChoice:
    """The model sized on its pool: by prediction when it has objectives, else by memory with predictions shown."""
    at = f"models[{index}]"
    goal = goal_for(model, at)
    task = req.task or req.arch.task
    if goal is not None and task != "generate":
        raise SizingError(
            [f"{at}.objectives: {req.arch.id} is a {task} model; it generates no tokens, so it has no TTFT or ITL "
             "to meet; remove objectives"]
        )  # fmt: skip
    if goal is not None:
        return choose(req, model, pool, goal)
    sizing = size_model(req, pool.shape, max(pool.max_nodes, 1))
    shown = shown_prediction(req, model, pool, sizing)
    if shown is not None:
        where = "stack workload" if shown.workload_source == "stack" else "default workload, the replica's full batch"
        line = (
            f"predicted per replica at {shown.input_tokens} in / {shown.output_tokens} out tokens, "
            f"{shown.concurrency:g} users ({where}): TTFT {shown.ttft_ms:.0f} ms, ITL {shown.itl_ms:.1f} ms, "
            f"{shown.output_tokens_per_s:.0f} tok/s ({shown.bound}-bound)"
        )
        sizing = sizing.model_copy(update={"reasons": [*sizing.reasons, line]})
    return LayoutChoice(sizing, shown)


def shown_prediction(req: SizingRequest, model: ModelSpec, pool: PoolShape, sizing: Sizing) -> PredictionPlan | None:
    """Without objectives: the stack's workload at its peak over max replicas, else DEFAULT_INPUT_TOKENS in /
    DEFAULT_OUTPUT_TOKENS out with as many users as the KV cache holds such requests (at most max_num_seqs)."""
    if not sizing.fits or sizing.task != "generate":
        return None
    w = model.workload
    if w is not None:
        inp, out, users, source = w.input_tokens, w.output_tokens, w.peak_concurrency / model.max_replicas, "stack"
    else:
        inp, out, source = DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS, "default"
        held = sizing.kv_cache_tokens // (inp + out) if sizing.kv_cache_tokens else sizing.max_num_seqs
        users = float(max(1, min(sizing.max_num_seqs, held)))
    try:
        p = predict_on(req, sizing, hardware(pool.gpu, pool.shape), Workload(inp, out, users), None)
    except PerformanceError:
        return None
    return prediction_plan(p, inp, out, users, source, None, None)


def choose(req: SizingRequest, model: ModelSpec, pool: PoolShape, goal: Goal) -> LayoutChoice:
    """The layout and replicas that meet the goal with the fewest GPUs; else the closest, with a warning."""
    max_nodes = max(pool.max_nodes, 1)
    found = options(req, pool, pool.shape, goal, model)
    if not found:  # nothing fits memory: sizing.py says by how much and what would
        return LayoutChoice(size_model(req, pool.shape, max_nodes), None)
    chosen = best_of(found)
    warning = None
    if chosen is None:
        chosen = max(found, key=lambda o: (o.edge, -_miss(o, goal), -o.gpus))
        warning = unmet_warning(req, model, pool, goal, chosen)
    pinned = replace(req, tensor_parallel=chosen.sizing.tp, pipeline_parallel=chosen.sizing.pp)
    sizing = size_model(replace(pinned, layout_reasons=_reasons(chosen, found, goal, warning)), pool.shape, max_nodes)
    if warning:
        sizing = sizing.model_copy(update={"warnings": [*sizing.warnings, warning]})
    fixed = chosen.replicas if model.replicas is None and model.autoscaling is None and chosen.replicas else None
    users = goal.peak / chosen.replicas if chosen.replicas else 1.0
    at_edge = Workload(goal.input_len, goal.output_len, max(chosen.edge, 1))
    batch = predict_on(req, sizing, hardware(pool.gpu, pool.shape), at_edge, None).batch
    plan = prediction_plan(chosen.load, goal.input_len, goal.output_len, users, "stack", goal, chosen.edge)
    return LayoutChoice(sizing, plan, fixed, chosen.edge, batch)


def _miss(o: Option, goal: Goal) -> float:
    """How far the prediction is past the objective: the larger ratio of predicted over target."""
    ttft = o.load.ttft_ms / goal.objective.ttft_ms if goal.objective.ttft_ms else 0.0
    itl = o.load.itl_ms / goal.objective.itl_ms if goal.objective.itl_ms else 0.0
    return max(ttft, itl)


def _reasons(chosen: Option, found: list[Option], goal: Goal, warning: str | None) -> tuple[str, ...]:
    verdict = "none meets it; closest" if warning else "fewest GPUs that meet it"
    head = (
        f"layout by predicted performance: {goal.text} at {goal.peak} users ({goal.input_len} in / "
        f"{goal.output_len} out tokens); {verdict}: {option_line(chosen, goal)}"
    )
    others = sorted((o for o in found if o is not chosen), key=lambda o: (not o.total, o.total or o.gpus))
    lines = [f"rejected {option_line(o, goal)}" for o in others[:MAX_REJECTED_SHOWN]]
    if len(others) > MAX_REJECTED_SHOWN:
        lines.append(f"rejected {len(others) - MAX_REJECTED_SHOWN} more layout(s): more GPUs, or they miss it")
    return (head, *lines)


def predicted_target(plan: AutoscalingPlan | None, model: ModelSpec, choice: LayoutChoice) -> AutoscalingPlan | None:
    """The HPA target from the predicted edge of the objectives, HEADROOM below it, for the request-count metrics
    when the stack sets no target; other metrics and stack targets stay as resolve_autoscaling made them."""
    asked = model.autoscaling
    if (
        plan is None
        or asked is None
        or asked.target is not None
        or not choice.edge
        or plan.metric not in (RUNNING, WAITING)
    ):
        return plan
    edge, batch = choice.edge, choice.edge_batch
    objective = choice.prediction.objective if choice.prediction else "the objectives"
    basis = (
        f"{objective} hold up to {edge} users per replica, {batch:g} of them running at once (predicted); "
        f"{HEADROOM:.0%} headroom for the model's error (worst held-out ITL error 20%, bench/results/perf_model.md)"
    )
    if plan.metric == RUNNING:
        target = max(1, math.floor(min(edge, batch) * (1 - HEADROOM)))
    elif edge - batch >= 1:
        target = max(1, math.floor((edge - batch) * (1 - HEADROOM)))
    else:
        target = 1
        basis = (
            f"{objective} stop holding at {edge + 1} users per replica, before its {batch:g} slots fill: any "
            "waiting request is past them (predicted)"
        )
    return plan.model_copy(update={"target": float(target), "target_reason": f"from predictions: {basis}"})
