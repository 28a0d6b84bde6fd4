"""Defaults the plan decides from what it sized: HPA targets and windows, the gateway kind, ports and size."""

from __future__ import annotations

import math

from components.images import LITELLM_IMAGE, VLLM_ROUTER_IMAGE, VLLM_ROUTER_VERSION
from components.planning.types import (
    AutoscalingPlan,
    GatewayPlan,
    ModelPlan,
    Sizing,
    SizingError,
)
from components.spec import (
    AutoscalingSpec,
    GatewaySpec,
    ModelAutoscalingSpec,
)

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
) -> AutoscalingPlan | None:
    """The model's HPA with every default decided (target from the plan, windows from the stack)."""
    if asked is None:
        return None
    if asked.target is not None:
        target, reason = asked.target, "set in the stack"
    else:
        target = default_scaling_target(asked.metric, sizing)
        reason = f"default for {asked.metric} from one replica's capacity ({typical_concurrency(sizing):.1f} requests)"
    up, down = asked.scale_up_stabilization_seconds, asked.scale_down_stabilization_seconds
    return AutoscalingPlan(
        min_replicas=asked.min_replicas,
        max_replicas=asked.max_replicas,
        metric=asked.metric,
        target=target,
        target_reason=reason,
        scale_up_stabilization_seconds=up if up is not None else defaults.scale_up_stabilization_seconds,
        scale_down_stabilization_seconds=down if down is not None else defaults.scale_down_stabilization_seconds,
    )


# The gateways' ports (their own defaults) and how Prometheus reads them: LiteLLM serves /metrics/ on its API
# port; vllm-router exposes Prometheus on a port of its own (--prometheus-port).
LITELLM_PORT = 4000
ROUTER_PORT = 8080
ROUTER_METRICS_PORT = 29000
# LiteLLM: one CPU and 1 GiB per worker process (each loads the router and the model list); the router is one
# Rust process, 1 CPU and 512 MiB.
LITELLM_WORKER_MILLICORES = 1000
LITELLM_WORKER_MEMORY_MIB = 1024
ROUTER_MILLICORES = 1000
ROUTER_MEMORY_MIB = 512


# OpenAI-compatible inference paths by model task; the models list is always served.
INFERENCE_ROUTES = {
    "generate": ("/v1/chat/completions", "/v1/completions"),
    "embed": ("/v1/embeddings",),
    "score": ("/v1/rerank",),
}
MODELS_ROUTE = "/v1/models"


def inference_routes(models: list[ModelPlan]) -> list[str]:
    tasks = {m.task for m in models}
    return [MODELS_ROUTE, *(path for task, paths in INFERENCE_ROUTES.items() if task in tasks for path in paths)]


def resolve_gateway(gateway: GatewaySpec, models: list[ModelPlan]) -> GatewayPlan:
    """The gateway with its kind decided: vllm-router unless a model needs LiteLLM's rerank pass-through."""
    scores = [m.name for m in models if m.task == "score"]
    if gateway.kind == "vllm-router" and scores:
        raise SizingError(
            [
                f"gateway.kind: vllm-router {VLLM_ROUTER_VERSION} cannot pass vLLM's rerank responses through "
                f"({', '.join(scores)} serve rerank); use kind: litellm or leave kind out"
            ]
        )
    if gateway.kind is not None:
        kind, reason = gateway.kind, "set in the stack"
    elif scores:
        kind, reason = "litellm", f"{', '.join(scores)} serve rerank, which only LiteLLM passes through"
    else:
        kind, reason = "vllm-router", "the fastest gateway measured (bench/results/gateway_overhead.md)"
    shared = gateway.model_dump(exclude={"kind"})
    if kind == "litellm":
        return GatewayPlan(
            kind=kind, kind_reason=reason, routes=inference_routes(models), image=LITELLM_IMAGE, port=LITELLM_PORT,
            metrics_port_name="http", metrics_port=LITELLM_PORT, metrics_path="/metrics/",
            cpu_millicores=LITELLM_WORKER_MILLICORES * gateway.workers,
            memory_mib=LITELLM_WORKER_MEMORY_MIB * gateway.workers,
            resources_reason=f"{gateway.workers} worker(s) x {LITELLM_WORKER_MILLICORES}m CPU and "
            f"{LITELLM_WORKER_MEMORY_MIB} MiB",
            **shared,
        )  # fmt: skip
    return GatewayPlan(
        kind=kind, kind_reason=reason, routes=inference_routes(models), image=VLLM_ROUTER_IMAGE, port=ROUTER_PORT,
        metrics_port_name="metrics", metrics_port=ROUTER_METRICS_PORT, metrics_path="/metrics",
        cpu_millicores=ROUTER_MILLICORES, memory_mib=ROUTER_MEMORY_MIB,
        resources_reason=f"one router process: {ROUTER_MILLICORES}m CPU, {ROUTER_MEMORY_MIB} MiB",
        **shared,
    )  # fmt: skip
