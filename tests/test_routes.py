"""Clients reach inference only: the rendered HTTPRoute, matched the way Gateway API matches paths, admits exactly
the plan's inference paths out of every route the real LiteLLM app serves and every vllm-router endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from components.stacks import load_stack, plan_for
from testbed.routes import litellm_app_routes, route_admits
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


@pytest.mark.parametrize("stack", STACKS)
def test_the_route_admits_exactly_the_plans_inference_paths(stack: str) -> None:
    gateway = plan_for(load_stack(stack)).gateway
    served = litellm_paths() if gateway.kind == "litellm" else frozenset(ROUTER_PATHS)
    admitted = {p for p in served if route_admits(http_route(stack), p)}
    assert admitted == set(gateway.routes) & served
    assert admitted <= INFERENCE, f"non-inference paths reachable with the injected key: {admitted - INFERENCE}"
    assert "/v1/models" in admitted


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
