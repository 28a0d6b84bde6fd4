"""Clients reach inference only: the rendered HTTPRoute, matched the way Gateway API matches paths, admits exactly
the plan's inference paths out of every route the real LiteLLM app serves, every vllm-router endpoint and every path
vLLM's server declares, and sends each to its backend: the LLM gateway, or the score model's Service."""

from __future__ import annotations

from typing import Any

import pytest

from components.gateway import NAME as LLM_GATEWAY
from components.model_server import PORT as MODEL_PORT
from components.stacks import load_stack, plan_for
from testbed.routes import litellm_app_routes, route_admits, route_backends, vllm_server_paths
from testbed.stacks import STACKS, rendered

# The OpenAI-compatible inference API, and nothing else, is what a client key may call.
INFERENCE = {"/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/rerank"}
# vllm-router's own endpoints (vllm-project/router README and src/routers): the OpenAI API plus worker
# management, cache and load introspection, which must stay inside the cluster: the router answers them without
# any key (tests/test_router_live.py).
ROUTER_PATHS = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/rerank",
                "/v1/responses", "/generate", "/add_worker", "/remove_worker", "/list_workers", "/workers",
                "/workers/x", "/flush_cache", "/get_loads", "/get_server_info", "/get_model_info", "/health",
                "/health_generate", "/liveness", "/readiness", "/metrics"}  # fmt: skip


def litellm_paths() -> frozenset[str]:
    return frozenset(litellm_app_routes())


def http_route(stack: str) -> dict[str, Any]:
    (route,) = [o for o in rendered(stack).manifests if o["kind"] == "HTTPRoute"]
    return route


def test_litellm_serves_hundreds_of_paths_beyond_inference() -> None:
    paths = litellm_paths()
    assert len(paths) > 300  # what a /v1 prefix used to expose behind an admin key
    management = {"/v1/model/info", "/key/generate", "/model/new", "/config/update", "/v1/files", "/v1/batches"}
    assert management <= paths
    assert paths >= INFERENCE


def backends(route: dict[str, Any], path: str) -> list[tuple[str, int]] | None:
    taken = route_backends(route, path)
    return None if taken is None else [(b["name"], b["port"]) for b in taken]


@pytest.mark.parametrize("stack", STACKS)
def test_the_route_sends_exactly_the_plans_paths_to_their_backends(stack: str) -> None:
    """Out of every path the gateway and vLLM's server serve: the plan's routes reach the LLM gateway, its direct
    routes the model's Service (port 8000), and nothing else reaches anything."""
    gateway = plan_for(load_stack(stack)).gateway
    route = http_route(stack)
    served = (litellm_paths() if gateway.kind == "litellm" else frozenset(ROUTER_PATHS)) | vllm_server_paths()
    sent = {p: backends(route, p) for p in served if route_admits(route, p)}
    expected = {p: [(LLM_GATEWAY, gateway.port)] for p in gateway.routes}
    expected |= {p: [(d.model, MODEL_PORT)] for d in gateway.direct_routes for p in d.paths}
    assert sent == expected
    assert set(sent) <= INFERENCE, f"non-inference paths reachable with a client key: {set(sent) - INFERENCE}"
    assert "/v1/models" in sent


def test_on_prod_rerank_reaches_the_reranker_and_no_other_vllm_path_reaches_a_model() -> None:
    """vllm-router cannot pass rerank through, so the route sends it straight to the score model's Service; of all
    vLLM serves there (tokenizer, LoRA loading, sleep, profiling, collective RPC, the Score API...) nothing else."""
    route = http_route("prod")
    assert plan_for(load_stack("prod")).gateway.kind == "vllm-router"
    assert backends(route, "/v1/rerank") == [("bge-reranker-v2-m3", MODEL_PORT)]
    assert backends(route, "/v1/chat/completions") == backends(route, "/v1/embeddings") != backends(route, "/v1/rerank")
    paths = vllm_server_paths()
    to_models = {p for p in paths if (b := backends(route, p)) and b[0][0] != LLM_GATEWAY}
    assert to_models == {"/v1/rerank"}
    admin = {"/tokenize", "/detokenize", "/collective_rpc", "/v1/load_lora_adapter", "/sleep", "/wake_up",
             "/reset_prefix_cache", "/start_profile", "/pause", "/score", "/v1/score", "/v2/rerank", "/rerank",
             "/invocations", "/pooling", "/classify", "/metrics", "/health", "/server_info"}  # fmt: skip
    assert admin <= paths - INFERENCE  # read from the vLLM package, not assumed
    assert sorted(p for p in paths - INFERENCE if route_admits(route, p)) == []


# Measured reachable with any client key on main (the /v1 prefix), plus LiteLLM's key and model management.
MANAGEMENT = ["/v1/model/info", "/v1/mcp/server", "/v1/vector_stores", "/key/generate", "/model/new", "/v1/models/x",
              "/v1/chat/completions/x", "/health", "/metrics"]  # fmt: skip


@pytest.mark.parametrize("path", MANAGEMENT)
def test_management_paths_are_not_routed_on_prod(path: str) -> None:
    assert not route_admits(http_route("prod"), path)


def test_a_prefix_route_would_have_exposed_the_admin_api() -> None:
    """The matcher itself: the old `PathPrefix /v1` admits LiteLLM's admin routes (measured on main)."""
    old = {"spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}]}]}}
    assert route_admits(old, "/v1/model/info") and route_admits(old, "/v1/mcp/server")
    assert not route_admits(old, "/v10/x")
