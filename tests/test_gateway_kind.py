"""The gateway kind and its route table as the plan decides them: vllm-router by default with rerank straight to the
score model's Service; LiteLLM for model fallbacks or several score models; each refusal names the fix; the reason
names the cost, held to the recorded benchmark; the API gateway and the NetworkPolicies follow the route table."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.api_gateway import GATEWAY
from components.model_server import PORT as MODEL_PORT
from components.planning.defaults import (
    INFERENCE_ROUTES,
    MEASURED_STREAMS,
    MEASURED_TTFT_ADDED_MS,
    OVERHEAD_SOURCE,
)
from components.planning.types import ClusterPlan, SizingError
from components.spec import SpecError, load_cluster_spec
from components.stacks import PROJECT_DIR, plan_for
from testbed.stacks import STACKS, rendered

CHAT = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
RERANKER = "BAAI/bge-reranker-v2-m3"


def cluster(models: dict[str, str], **gateway: Any) -> dict[str, Any]:
    """A one-pool stack serving `models` (served name -> catalog id) with these gateway settings."""
    return {
        "storageClass": "fast",
        "pools": [
            {"name": "p", "gpu": "L4-24GB", "gpusPerNode": 4, "backend": {"kind": "existing", "nodeNames": ["n"]}}
        ],
        "models": [{"name": n, "model": m, "pool": "p", "maxModelLen": 4096} for n, m in models.items()],
        "gateway": gateway,
        "auth": {"allowPlainHttp": True, "clients": [{"name": "tests"}]},
    }


def plan_of(config: dict[str, Any]) -> ClusterPlan:
    return plan_for(load_cluster_spec(config))


def test_by_default_vllm_router_carries_chat_and_rerank_goes_straight_to_the_reranker() -> None:
    gateway = plan_of(cluster({"chat": CHAT, "rr": RERANKER})).gateway
    assert gateway.kind == "vllm-router"
    assert gateway.routes == ["/v1/models", "/v1/chat/completions", "/v1/completions"]
    (direct,) = gateway.direct_routes
    assert (direct.model, direct.paths) == ("rr", list(INFERENCE_ROUTES["score"]))
    assert "does not route rerank to the score model" in direct.reason
    assert "rerank goes from the API gateway straight to rr's Service" in gateway.kind_reason
    assert "no model fallbacks (LiteLLM only)" in gateway.kind_reason


@pytest.mark.parametrize(
    ("models", "gateway", "why"),
    [
        ({"chat": CHAT}, {"fallbacks": {"chat": ["chat2"]}}, "gateway.fallbacks are set"),
        ({"rr": RERANKER}, {"fallbacks": {"rr": ["rr2"]}}, "gateway.fallbacks are set"),
        ({}, {}, "rr, rr2 share the rerank path; only LiteLLM routes by the body's model"),
        ({"chat": CHAT}, {"kind": "litellm"}, "set in the stack"),
    ],
)
def test_litellm_when_the_stack_needs_it_and_the_reason_says_why_and_what_it_costs(
    models: dict[str, str], gateway: dict[str, Any], why: str
) -> None:
    extra = {"chat2": CHAT} if "chat" in models else {"rr": RERANKER, "rr2": RERANKER}
    plan = plan_of(cluster({**models, **extra}, **gateway)).gateway
    assert plan.kind == "litellm" and plan.direct_routes == []
    assert ("/v1/rerank" in plan.routes) == ("rr" in {**models, **extra})  # LiteLLM carries rerank itself
    assert plan.kind_reason.startswith(why)
    assert f"at {MEASURED_STREAMS} streams vllm-router adds" in plan.kind_reason


def test_vllm_router_with_model_fallbacks_is_refused_with_the_fix() -> None:
    with pytest.raises(SpecError) as caught:
        load_cluster_spec(cluster({"chat": CHAT, "chat2": CHAT}, kind="vllm-router", fallbacks={"chat": ["chat2"]}))
    assert caught.value.errors == [
        "gateway.fallbacks: vllm-router falls back between replicas of a model, never to another model; use kind: "
        "litellm (or leave kind out) for model fallbacks, or drop gateway.fallbacks to keep the faster vllm-router"
    ]


def test_vllm_router_with_two_score_models_is_refused_since_a_path_cannot_tell_them_apart() -> None:
    with pytest.raises(SizingError) as caught:
        plan_of(cluster({"rr": RERANKER, "rr2": RERANKER}, kind="vllm-router"))
    assert caught.value.errors == [
        "gateway.kind: vllm-router 0.1.17 cannot pass rerank through, so the API gateway sends /v1/rerank straight "
        "to the score model's Service, choosing by path; rr, rr2 share that path and the model is named in the "
        "body, which a route cannot read; use kind: litellm (or leave kind out), or serve one score model"
    ]


def test_the_costs_the_reasons_name_are_the_recorded_benchmarks() -> None:
    """The figures in every gateway reason are those of bench/results/gateway_overhead.json, LiteLLM with its
    default workers: rerun the benchmark and these move together."""
    recorded = json.loads((PROJECT_DIR / OVERHEAD_SOURCE).with_suffix(".json").read_text())
    p50 = {(r["gateway"], r["concurrency"]): r["ttft_p50_ms"] for r in recorded["rows"]}
    added = {
        kind: round(p50[(row, MEASURED_STREAMS)] - p50[("direct", MEASURED_STREAMS)], 1)
        for kind, row in (("vllm-router", "vllm-router"), ("litellm", "litellm-2w"))
    }
    assert added == MEASURED_TTFT_ADDED_MS
    assert load_cluster_spec(cluster({"chat": CHAT})).gateway.workers == 2  # the LiteLLM row the figure is from


def network_policies(stack: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o["spec"] for o in rendered(stack).manifests if o["kind"] == "NetworkPolicy"}


@pytest.mark.parametrize("stack", STACKS)
def test_envoy_reaches_the_direct_routes_models_on_their_api_port_and_nothing_else_new(stack: str) -> None:
    plan = ClusterPlan.model_validate(rendered(stack).exports["plan"])
    policies = network_policies(stack)
    direct = sorted(d.model for d in plan.gateway.direct_routes)
    if not direct:
        assert "api-gateway-direct" not in policies
        return
    policy = policies["api-gateway-direct"]
    envoy = policies["llm-gateway"]["ingress"][0]["from"]  # the peer the LLM gateway admits
    assert envoy[0]["podSelector"]["matchLabels"]["gateway.envoyproxy.io/owning-gateway-name"] == GATEWAY
    assert policy == {
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/component": "model-server", "llm-cluster.io/role": "server"},
            "matchExpressions": [{"key": "llm-cluster.io/model", "operator": "In", "values": direct}],
        },
        "policyTypes": ["Ingress"],
        "ingress": [{"from": envoy, "ports": [{"protocol": "TCP", "port": MODEL_PORT}]}],
    }


def test_prod_runs_the_fast_path_under_the_same_client_auth_and_limits() -> None:
    """prod: vllm-router, rerank in the same HTTPRoute (a second rule), so the SecurityPolicy and the rate limits,
    which target the route, cover it."""
    plan = ClusterPlan.model_validate(rendered("prod").exports["plan"])
    assert plan.gateway.kind == "vllm-router" and plan.gateway.fallbacks == {}
    assert [d.model for d in plan.gateway.direct_routes] == ["bge-reranker-v2-m3"]
    manifests = rendered("prod").manifests
    (route,) = [o for o in manifests if o["kind"] == "HTTPRoute"]
    rules = route["spec"]["rules"]
    assert [r["backendRefs"] for r in rules] == [
        [{"name": "llm-gateway", "port": plan.gateway.port}],
        [{"name": "bge-reranker-v2-m3", "port": MODEL_PORT}],
    ]
    assert rules[1]["matches"] == [{"path": {"type": "Exact", "value": "/v1/rerank"}}]
    assert rules[1]["timeouts"] == {"request": f"{plan.gateway.timeout_seconds}s"}
    assert "filters" not in rules[1]  # no upstream credential: vLLM serves without a key inside the cluster
    target = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route["metadata"]["name"]}
    for kind in ("SecurityPolicy", "BackendTrafficPolicy"):
        policies = [o for o in manifests if o["kind"] == kind]
        assert policies and all(p["spec"]["targetRefs"] == [target] for p in policies), kind
