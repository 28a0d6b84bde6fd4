"""Defaults the plan decides from what it sized: HPA targets and windows, the gateway kind, route table, ports
and size."""

from __future__ import annotations

import math

from components.images import LITELLM_IMAGE, VLLM_ROUTER_IMAGE, VLLM_ROUTER_VERSION
from components.planning.types import (
    AutoscalingPlan,
    DirectRoute,
    GatewayKind,
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


# OpenAI-compatible inference paths by model task; the models list is always served. The same paths whichever
# gateway runs: vLLM 0.13 also serves rerank at /rerank and /v2/rerank and its own Score API at /score and
# /v1/score (vllm/entrypoints/pooling/score/api_router.py), which LiteLLM does not; none of those is routed.
INFERENCE_ROUTES = {
    "generate": ("/v1/chat/completions", "/v1/completions"),
    "embed": ("/v1/embeddings",),
    "score": ("/v1/rerank",),
}
MODELS_ROUTE = "/v1/models"
# TTFT p50 each gateway adds over direct at this many concurrent streams, LiteLLM with its default 2 workers per
# pod (bench/results/gateway_overhead.md, `python -m bench.gateway_overhead`); tests/test_gateway_kind.py holds
# these to the recorded results. The cost a gateway kind's reason names.
MEASURED_STREAMS = 128
MEASURED_TTFT_ADDED_MS = {"vllm-router": 0.6, "litellm": 1869.1}
OVERHEAD_SOURCE = "bench/results/gateway_overhead.md"


def inference_routes(models: list[ModelPlan]) -> list[str]:
    tasks = {m.task for m in models}
    return [MODELS_ROUTE, *(path for task, paths in INFERENCE_ROUTES.items() if task in tasks for path in paths)]


def _overheads() -> str:
    router, litellm = MEASURED_TTFT_ADDED_MS["vllm-router"], MEASURED_TTFT_ADDED_MS["litellm"]
    return (
        f"at {MEASURED_STREAMS} streams vllm-router adds {router:g} ms to TTFT p50, LiteLLM (2 workers) "
        f"{litellm:g} ms ({OVERHEAD_SOURCE})"
    )


def _gateway_kind(gateway: GatewaySpec, scores: list[str]) -> tuple[GatewayKind, str]:
    """The kind and why, with its cost: model fallbacks (LiteLLM only) against the added latency measured."""
    if gateway.kind == "vllm-router" and len(scores) > 1:
        raise SizingError(
            [
                f"gateway.kind: vllm-router {VLLM_ROUTER_VERSION} cannot pass rerank through, so the API gateway "
                f"sends {INFERENCE_ROUTES['score'][0]} straight to the score model's Service, choosing by path; "
                f"{', '.join(scores)} share that path and the model is named in the body, which a route cannot "
                "read; use kind: litellm (or leave kind out), or serve one score model"
            ]
        )
    if gateway.kind is not None:
        kind, why = gateway.kind, "set in the stack"
    elif gateway.fallbacks:
        kind, why = "litellm", "gateway.fallbacks are set, and only LiteLLM falls back between models"
    elif len(scores) > 1:
        kind, why = "litellm", f"{', '.join(scores)} share the rerank path; only LiteLLM routes by the body's model"
    else:
        kind, why = "vllm-router", "the default, the fastest gateway measured"
    if kind == "litellm":
        reason = f"{why}: LiteLLM falls back between models and routes rerank by model, at a cost: {_overheads()}"
        if not gateway.fallbacks and len(scores) <= 1:
            reason += "; nothing here needs it (no fallbacks, one score model at most): vllm-router would serve"
        return kind, reason
    direct = f"; rerank goes from the API gateway straight to {scores[0]}'s Service" if scores else ""
    return kind, f"{why}: {_overheads()}; no model fallbacks (LiteLLM only){direct}"


def _direct_routes(kind: GatewayKind, scores: list[str]) -> list[DirectRoute]:
    if kind == "litellm" or not scores:
        return []
    reason = (
        f"vllm-router {VLLM_ROUTER_VERSION} does not route rerank to the score model (tests/test_router_live.py); "
        f"{scores[0]} is the only score model, so the path alone picks it"
    )
    return [DirectRoute(model=scores[0], paths=list(INFERENCE_ROUTES["score"]), reason=reason)]


def resolve_gateway(gateway: GatewaySpec, models: list[ModelPlan]) -> GatewayPlan:
    """The gateway with its kind decided (vllm-router unless fallbacks or several score models need LiteLLM) and its
    route table: under vllm-router, rerank goes straight to the score model's Service."""
    scores = [m.name for m in models if m.task == "score"]
    kind, reason = _gateway_kind(gateway, scores)
    direct = _direct_routes(kind, scores)
    direct_paths = {p for d in direct for p in d.paths}
    routes = [p for p in inference_routes(models) if p not in direct_paths]
    shared = gateway.model_dump(exclude={"kind"})
    if kind == "litellm":
        return GatewayPlan(
            kind=kind, kind_reason=reason, routes=routes, direct_routes=direct, image=LITELLM_IMAGE, port=LITELLM_PORT,
            metrics_port_name="http", metrics_port=LITELLM_PORT, metrics_path="/metrics/",
            cpu_millicores=LITELLM_WORKER_MILLICORES * gateway.workers,
            memory_mib=LITELLM_WORKER_MEMORY_MIB * gateway.workers,
            resources_reason=f"{gateway.workers} worker(s) x {LITELLM_WORKER_MILLICORES}m CPU and "
            f"{LITELLM_WORKER_MEMORY_MIB} MiB",
            **shared,
        )  # fmt: skip
    return GatewayPlan(
        kind=kind, kind_reason=reason, routes=routes, direct_routes=direct, image=VLLM_ROUTER_IMAGE, port=ROUTER_PORT,
        metrics_port_name="metrics", metrics_port=ROUTER_METRICS_PORT, metrics_path="/metrics",
        cpu_millicores=ROUTER_MILLICORES, memory_mib=ROUTER_MEMORY_MIB,
        resources_reason=f"one router process: {ROUTER_MILLICORES}m CPU, {ROUTER_MEMORY_MIB} MiB",
        **shared,
    )  # fmt: skip
