"""The LLM gateway's configuration and arguments, from the plan: LiteLLM's config.yaml (plus its custom auth hook)
and its arguments, vllm-router's arguments. components/gateway.py turns them into the gateway's objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.labels import ROLE_LABEL, SERVER_ROLE
from components.model_server import PORT as MODEL_PORT
from components.planning.types import ClusterPlan

CONFIG_MOUNT = "/etc/litellm"
# LiteLLM's custom auth hook, shipped as source next to config.yaml (LiteLLM resolves custom_auth there). Never
# imported here: it needs LiteLLM and its settings (these variables) at import.
AUTH_MODULE = Path(__file__).with_name("litellm_auth.py")
INFERENCE_KEY_ENV = "LITELLM_INFERENCE_KEY"
INFERENCE_ROUTES_ENV = "LITELLM_INFERENCE_ROUTES"
# LiteLLM's `mode` per task: how it calls the backend and which endpoint serves it.
LITELLM_MODES = {"generate": "chat", "embed": "embedding", "score": "rerank"}
# After this many consecutive failures a LiteLLM deployment cools down; the router's breaker matches it.
ALLOWED_FAILS = 3
COOLDOWN_SECONDS = 30
# vllm-router (images.VLLM_ROUTER_VERSION) opens a worker's breaker after 5 failures in multi-model mode whatever
# --cb-failure-threshold says (measured), and cache_aware keeps retrying the same worker until then:
# a request outlives a dead worker only with more attempts than that.
ROUTER_BREAKER_FAILURES = 5


def model_url(plan: ClusterPlan, model_name: str) -> str:
    return f"http://{model_name}.{plan.namespace}.svc.cluster.local:{MODEL_PORT}/v1"


def litellm_config(plan: ClusterPlan) -> dict[str, Any]:
    """LiteLLM proxy config.yaml: every served model as hosted_vllm/<name>, no database, Prometheus on."""
    g = plan.gateway
    return {
        "model_list": [
            {
                "model_name": m.name,
                "litellm_params": {
                    "model": f"hosted_vllm/{m.name}",
                    "api_base": model_url(plan, m.name),
                    "api_key": "none",  # vLLM serves without a key inside the cluster
                },
                "model_info": {"mode": LITELLM_MODES[m.task]},
            }
            for m in plan.models
        ],
        "general_settings": {
            "master_key": "os.environ/LITELLM_MASTER_KEY",
            # Replaces LiteLLM's key check: the inference key, on the inference paths only (litellm_auth.py).
            "custom_auth": f"{AUTH_MODULE.stem}.user_api_key_auth",
            # No DATABASE_URL: nothing is logged per request, so no table grows without bound.
            "disable_spend_logs": True,
            "disable_error_logs": True,
            "store_model_in_db": False,
        },
        "litellm_settings": {
            "callbacks": ["prometheus"],
            # Prometheus scrapes /metrics/ from inside the cluster; the API gateway never routes there.
            "require_auth_for_metrics_endpoint": False,
            "request_timeout": g.timeout_seconds,
            "num_retries": g.num_retries,
            "drop_params": True,
        },
        "router_settings": {
            "routing_strategy": "simple-shuffle",
            "num_retries": g.num_retries,
            "timeout": g.timeout_seconds,
            "stream_timeout": g.timeout_seconds,
            "fallbacks": [{source: targets} for source, targets in g.fallbacks.items()],
            "allowed_fails": ALLOWED_FAILS,
            "cooldown_time": COOLDOWN_SECONDS,
        },
    }


def litellm_config_files(plan: ClusterPlan) -> dict[str, str]:
    """The config ConfigMap's files: config.yaml and the custom auth hook it names, from its source."""
    return {
        "config.yaml": yaml.safe_dump(litellm_config(plan), sort_keys=False),
        AUTH_MODULE.name: AUTH_MODULE.read_text(),
    }


def litellm_args(plan: ClusterPlan) -> list[str]:
    return [
        "--config", f"{CONFIG_MOUNT}/config.yaml",
        "--host", "0.0.0.0",
        "--port", str(plan.gateway.port),
        "--num_workers", str(plan.gateway.workers),
    ]  # fmt: skip


def router_args(plan: ClusterPlan) -> list[str]:
    """vllm-router arguments: pod discovery by label, retries, breaker and health checks, bound to 0.0.0.0."""
    g = plan.gateway
    args = [
        "--host", "0.0.0.0",
        "--port", str(plan.gateway.port),
        "--policy", g.routing_policy,
        "--service-discovery",
        "--selector", f"{ROLE_LABEL}={SERVER_ROLE}",
        "--service-discovery-namespace", plan.namespace,
        "--service-discovery-port", str(MODEL_PORT),
        "--prometheus-host", "0.0.0.0",
        "--prometheus-port", str(plan.gateway.metrics_port),
        # The router counts attempts, not retries.
        "--retry-max-retries", str(ROUTER_BREAKER_FAILURES + g.num_retries),
        "--cb-failure-threshold", str(ALLOWED_FAILS),
        "--cb-timeout-duration-secs", str(COOLDOWN_SECONDS),
        "--health-check-endpoint", "/health",
        "--health-check-interval-secs", "10",
        "--health-failure-threshold", "3",
        "--health-check-timeout-secs", "5",
        # Per attempt: a hung worker costs attempts x this before the client sees an error.
        "--request-timeout-secs", str(g.timeout_seconds),
    ]  # fmt: skip
    if len(plan.models) > 1:
        args.append("--enable-igw")  # multi-model: each worker is registered under the model it serves
    return args
