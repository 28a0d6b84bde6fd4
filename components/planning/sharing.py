"""Shared GPUs: which models of a pool run on a slice of a GPU, each engine's memory bound, and the pool's nodes
that share.

A pool with `sharing` has its shared nodes' GPUs advertised by the NVIDIA device plugin as `slicesPerGpu`
time-sliced replicas each, under the resource nvidia.com/gpu.shared. The plugin hands a replica of any GPU to any
pod that asks, so any `slicesPerGpu` tenants may meet on one GPU. Time-slicing bounds no tenant's memory: the plan
does, and so it must hold for every assignment:

- vLLM 0.13.0 asks for `gpu_memory_utilization x total` of the whole GPU (cudaMemGetInfo's total) and refuses to
  start when less is free (vllm/v1/worker/gpu_worker.py, init_device: "Free memory on device ... is less than
  desired GPU memory utilization"); a KV-cache engine then fills that budget (determine_available_memory:
  requested_memory - non_kv_cache_memory), an encoder holds its weights and activations within it.
- Outside the budget each engine holds its own CUDA context (taken before vLLM's memory snapshot) and its CUDA
  graphs (captured after the KV cache is allocated, gpu_worker.py compile_or_warm_up_model).
- So each engine gets `(slice - margin) / total` of the GPU, the margin holding context + graphs + vLLM's own
  profiling slack. With N tenants of footprint <= margin + budget - slack each, N x footprint <= total, and the last
  one to start still finds its budget free. tests/test_gpu_sharing.py checks this over arbitrary assignments.
"""

from __future__ import annotations

import math
from dataclasses import replace

from components.planning.memory import CUDA_GRAPH_RESERVE_GIB
from components.planning.pools import PoolShape, place_replicas, resolved_backend
from components.planning.sharing_types import SHARED_GPU_RESOURCE, ModelSharing, PoolSharing
from components.planning.sizing import size_model
from components.planning.types import ModelPlan, Sizing, SizingError, SizingRequest
from components.spec import ExistingBackendSpec, GkeBackendSpec, ModelSpec

# A CUDA context per process, held by every tenant outside vLLM's budget: "each CUDA context is about 500MB"
# (pytorch/serve#2128, citing discuss.pytorch.org "CUDA context size per process"; 0.3-0.5 GiB depending on the GPU
# and the libraries loaded). The upper end. CUDA graphs: the project's reserve (memory.py, measured on H100), held
# outside the budget as vLLM 0.13.0 captures them. vLLM 0.33.0 profiles and captures them inside the budget
# (gpu_worker.py determine_available_memory), so there the reserve is slack: conservative, and kept so one margin
# (in the plan, its annotations and the policy pack) holds for every release a pool's tenants may run.
CUDA_CONTEXT_GIB = 0.5
# vLLM 0.13.0 leaves 150 MiB because "memory profiling may slightly underestimate the memory consumption"
# (vllm/v1/worker/gpu_worker.py, redundancy_buffer_memory): activation peaks past the profiled one.
PROFILE_SLACK_GIB = 150 / 1024
# Rounded up to thousandths of a GiB, so the plan, its annotations and the policy pack use one number.
SHARING_MARGIN_GIB = math.ceil((CUDA_CONTEXT_GIB + CUDA_GRAPH_RESERVE_GIB + PROFILE_SLACK_GIB) * 1000) / 1000
POOLING_TASKS = ("embed", "score")
GPU_METRIC = "DCGM_FI_DEV_GPU_UTIL"

STRATEGY_REASON = (
    "time-slicing, not MPS: the plan already bounds every tenant's memory for any assignment of slices, so MPS's "
    "per-client limit (GPU memory / replicas, k8s-device-plugin v0.18.1 cmd/mps-control-daemon/mps/daemon.go) adds "
    "no bound the plan lacks; MPS would set the shared nodes' GPUs to EXCLUSIVE_PROCESS and run every tenant of a "
    "GPU in one MPS server, where a fatal fault of one client reaches the others, and v0.18.1's README marks MPS "
    "sharing experimental; what vLLM's startup check reads under an MPS limit (whole GPU or the limit) is a driver "
    "behaviour no pinned source states, while under time-slicing it reads the whole GPU, as the fractions assume"
)


def slice_budget(total_gib: float, slices: int) -> tuple[float, float]:
    """A slice's memory and the gpu_memory_utilization of an engine on it (of the whole GPU, 2 decimals down)."""
    slice_gib = total_gib / slices
    utilization = math.floor((slice_gib - SHARING_MARGIN_GIB) / total_gib * 100) / 100
    return slice_gib, utilization


def footprint_gib(total_gib: float, utilization: float) -> float:
    """The most one engine holds on its GPU: its context, its budget (an encoder uses less) and its CUDA graphs."""
    return CUDA_CONTEXT_GIB + utilization * total_gib + CUDA_GRAPH_RESERVE_GIB


def _candidate(model: ModelSpec, sizing: Sizing, pool: PoolShape) -> str | None:
    """Why the model keeps whole GPUs before any slice is tried, or None when it may share."""
    sharing = pool.spec.sharing
    assert sharing is not None
    if sizing.task not in POOLING_TASKS and not sharing.generators:
        return "a generator; generators share only with sharing.generators: true"
    if (model.tensor_parallel or 1) * (model.pipeline_parallel or 1) > 1:
        return "tensorParallel x pipelineParallel asks for more than one GPU"
    return None


def share_model(
    model: ModelSpec, index: int, req: SizingRequest, sizing: Sizing, pool: PoolShape
) -> tuple[Sizing, ModelSharing | None, str]:
    """The model on a slice of its pool's GPUs when it fits one, else as sized; with the reason either way."""
    sharing = pool.spec.sharing
    if sharing is None:
        return sizing, None, ""
    why_not = _candidate(model, sizing, pool)
    total = pool.shape.memory_gib
    slice_gib, utilization = slice_budget(total, sharing.slices_per_gpu)
    if why_not is None and utilization <= 0:
        why_not = f"a slice of {slice_gib:.2f} GiB leaves nothing past the {SHARING_MARGIN_GIB:.2f} GiB margin"
    if why_not is None:
        try:
            shared = size_model(replace(req, gpu_memory_utilization=utilization), pool.shape, 1)
        except SizingError as exc:
            shared, why_not = None, exc.errors[0]
        if shared is not None and shared.fits and shared.gpus_per_replica == 1:
            return shared, _model_sharing(model, index, shared, total, sharing.slices_per_gpu), ""
        if shared is not None and shared.fits:
            why_not = f"its {shared.objective} objective takes {shared.gpus_per_replica} GPUs"
        if why_not is None:
            needs = sizing.memory.weights + sizing.memory.activation + sizing.memory.non_torch
            why_not = (
                f"does not fit a slice: {needs:.2f} GiB of weights, activation and non-torch memory"
                + (" plus its KV cache" if sizing.kv_cache_tokens is not None else "")
                + f" against an engine budget of {utilization * total:.2f} GiB"
            )
    return sizing, None, f"whole GPU: {why_not}"


def _model_sharing(model: ModelSpec, index: int, sizing: Sizing, total: float, slices: int) -> ModelSharing:
    if model.autoscaling is not None and model.autoscaling.metric == GPU_METRIC:
        raise SizingError(
            [
                f"models[{index}].autoscaling.metric: {GPU_METRIC} measures the whole physical GPU, which "
                f"{model.name} shares with up to {slices - 1} other engine(s) on pool {model.pool!r} "
                f"(sharing.slicesPerGpu {slices}), not this model's load; scale it on its own engine: "
                "vllm:num_requests_running or vllm:num_requests_waiting"
            ]
        )
    slice_gib, utilization = slice_budget(total, slices)
    footprint = footprint_gib(total, utilization)
    used = sizing.memory.weights + sizing.memory.activation + sizing.memory.non_torch
    reason = (
        f"shares a GPU: 1/{slices} of {total:.2f} GiB = {slice_gib:.2f} GiB per slice; gpu_memory_utilization "
        f"{utilization} = ({slice_gib:.2f} - {SHARING_MARGIN_GIB:.2f} GiB margin) / {total:.2f}, a "
        f"{utilization * total:.2f} GiB budget that holds {used:.2f} GiB of weights, activation and non-torch "
        f"memory; the margin holds its CUDA context ({CUDA_CONTEXT_GIB} GiB), CUDA graphs ({CUDA_GRAPH_RESERVE_GIB} "
        f"GiB, outside vLLM's budget) and vLLM's profiling slack ({PROFILE_SLACK_GIB:.2f} GiB): {slices} engines of "
        f"at most {footprint:.2f} GiB each fit any GPU, and the last to start finds its budget free"
    )
    return ModelSharing(
        slices_per_gpu=slices,
        gpu_gib=round(total, 3),
        slice_gib=round(slice_gib, 2),
        margin_gib=SHARING_MARGIN_GIB,
        gpu_memory_utilization=utilization,
        footprint_gib=round(footprint, 2),
        reason=reason,
    )


def with_sharing(plan: ModelPlan, sharing: ModelSharing | None, reason: str) -> ModelPlan:
    """The model's plan with its slice (one shared GPU resource per pod) or the reason it keeps whole GPUs."""
    if sharing is None:
        return plan.model_copy(update={"reasons": [*plan.reasons, reason]}) if reason else plan
    pod = plan.pod.model_copy(
        update={
            "gpu_resource": SHARED_GPU_RESOURCE,
            "reasons": [*plan.pod.reasons, f"one {SHARED_GPU_RESOURCE} slice (1/{sharing.slices_per_gpu} GPU)"],
        }
    )
    return plan.model_copy(update={"pod": pod, "sharing": sharing, "reasons": [*plan.reasons, sharing.reason]})


def _shared_nodes(pool: PoolShape, gpus_max: int, whole: list[str]) -> tuple[bool, list[str], str, list[str]]:
    """(all nodes share, the shared existing nodes, why, errors). The device plugin's sharing covers every GPU of
    a node (v0.18.1 api/config/v1/replicas.go ignores `devices`), so nodes share whole."""
    sharing, backend, at = pool.spec.sharing, pool.spec.backend, f"pools[{pool.index}].sharing"
    assert sharing is not None
    gpn = pool.shape.gpus_per_node
    driver = getattr(resolved_backend(pool), "driver_version", None)
    if isinstance(backend, GkeBackendSpec) and driver != "INSTALLATION_DISABLED":
        return True, [], "", [
            f"{at}: GKE runs its own device plugin on this pool (driverVersion {driver}), which reads no GPU Operator "
            "config; set installDriver: true so the GPU Operator's device plugin runs there"
        ]  # fmt: skip
    if not isinstance(backend, ExistingBackendSpec):
        errors = []
        if sharing.node_names is not None:
            errors.append(f"{at}.nodeNames: only for existing nodes; every node of a {backend.kind} pool shares")
        if whole:
            errors.append(
                f"{at}: every node of a {backend.kind} pool comes from one template, so all of them share; "
                f"{', '.join(whole)} take whole GPUs: move them to a pool without sharing"
            )
        return True, [], f"a {backend.kind} pool's nodes share one template: every node shares", errors
    if sharing.node_names is not None:
        unknown = [n for n in sharing.node_names if n not in backend.node_names]
        if unknown:
            return (
                False,
                [],
                "",
                [f"{at}.nodeNames: {', '.join(unknown)} not in backend.nodeNames; use nodes of the pool"],
            )
        return False, list(sharing.node_names), "set in the stack (sharing.nodeNames)", []
    count = max(1, math.ceil(gpus_max / gpn))
    reason = (
        f"the fewest nodes ({count}) whose GPUs hold the slices at max replicas, from the end of backend.nodeNames; "
        "every GPU of a shared node serves slices only (the device plugin shares whole nodes)"
    )
    return False, list(backend.node_names[-count:]), reason, []


def place_shared_pool(
    name: str, pool: PoolShape, on_pool: list[tuple[int, ModelPlan]], whole_reasons: dict[str, str]
) -> tuple[tuple[int, int, int, int], PoolSharing, list[str]]:
    """GPUs and nodes used at min and max replicas (whole GPUs on the other nodes + slices as GPU-equivalents on the
    shared ones), the pool's sharing plan, and its errors."""
    sharing = pool.spec.sharing
    assert sharing is not None
    slices, gpn, at = sharing.slices_per_gpu, pool.shape.gpus_per_node, f"pools[{pool.index}].sharing"
    shared = [m for _, m in on_pool if m.sharing is not None]
    whole = [(i, m) for i, m in on_pool if m.sharing is None]
    slices_min, slices_max = sum(m.min_replicas for m in shared), sum(m.max_replicas for m in shared)
    gpus_min, gpus_max = math.ceil(slices_min / slices), math.ceil(slices_max / slices)
    all_nodes, nodes, nodes_reason, errors = _shared_nodes(pool, gpus_max, [m.name for _, m in whole])
    if not shared:
        errors.append(f"{at}: no model on pool {name!r} fits a slice of 1/{slices} GPU; remove sharing")
    shared_nodes = pool.max_nodes if all_nodes else len(nodes)
    if not errors and slices_max > shared_nodes * gpn * slices:
        errors.append(
            f"{at}: the shared models' max replicas take {slices_max} slices and the {shared_nodes} shared node(s) "
            f"hold {shared_nodes * gpn * slices}; add nodes to sharing.nodeNames or raise slicesPerGpu"
        )
    rest = replace(pool, max_nodes=pool.max_nodes - shared_nodes)
    whole_min, nodes_min, _ = place_replicas(rest, whole, "min")
    whole_max, nodes_max, short = place_replicas(rest, whole, "max")
    errors += [f"{s} (the pool's shared nodes serve slices only)" for s in short]
    unshared_min, _, _ = place_replicas(pool, on_pool, "min")
    unshared_max, _, _ = place_replicas(pool, on_pool, "max")
    plan = PoolSharing(
        strategy="time-slicing",
        strategy_reason=STRATEGY_REASON,
        slices_per_gpu=slices,
        resource=SHARED_GPU_RESOURCE,
        config_name=f"{name}-shared",
        all_nodes=all_nodes,
        node_names=nodes,
        nodes_reason=nodes_reason,
        shared_models=[m.name for m in shared],
        slices_min=slices_min,
        slices_max=slices_max,
        gpus_used_min_unshared=unshared_min,
        gpus_used_max_unshared=unshared_max,
        reasons=[
            f"{m.name}: " + (f"1/{slices} GPU, gpu_memory_utilization {m.sharing.gpu_memory_utilization}"
                             if m.sharing else whole_reasons.get(m.name, "whole GPU"))
            for _, m in on_pool
        ],
    )  # fmt: skip
    used = (
        whole_min + gpus_min,
        whole_max + gpus_max,
        nodes_min + math.ceil(gpus_min / gpn),
        nodes_max + math.ceil(gpus_max / gpn),
    )
    return used, plan, errors
