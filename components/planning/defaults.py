"""Defaults the plan decides from what it sized: HPA targets and windows, the gateway kind."""

from __future__ import annotations

import math

from components.images import VLLM_ROUTER_VERSION
from components.planning.types import (
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
                f"gateway.kind: vllm-router {VLLM_ROUTER_VERSION} cannot pass vLLM's rerank responses through "
                f"({', '.join(scores)} serve rerank); use kind: litellm or leave kind out"
            ]
        )
    if gateway.kind is not None:
        return gateway
    return gateway.model_copy(update={"kind": "litellm" if scores else "vllm-router"})
