"""Client rate limits: the plan's scope (global across the Envoy replicas by default, local for one replica), the
BackendTrafficPolicy and Envoy Gateway config that carry it, and the Redis the global counts live in."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.api_gateway import CLIENT_HEADER, rate_limits
from components.planning.rate_limits import GLOBAL_RULES_MAX, LOCAL_RULES_MAX
from components.planning.types import ClusterPlan, SizingError
from components.rate_limit_store import (
    NAME,
    RATE_LIMIT_SERVICE_PODS,
    REDIS_PORT,
    SELECTOR,
    envoy_gateway_values,
    namespace,
    pod_monitors,
)
from components.spec import SpecError, load_cluster_spec
from components.stacks import plan_for
from components.tools.render import ProgramRun, run_program
from testbed.stacks import STACKS, rendered, stack_config

EG_NAMESPACE = "envoy-gateway-system"
PLANS = {stack: plan_for(load_cluster_spec(stack_config(stack))) for stack in STACKS}
GLOBAL_STACKS = [stack for stack, plan in PLANS.items() if plan.rate_limits.scope == "global"]


def config_with(**auth: Any) -> dict[str, Any]:
    """The staging stack's config (auth.replicas left to its default) with `auth` keys replaced."""
    config: dict[str, Any] = copy.deepcopy(stack_config("staging"))
    assert "replicas" not in config["auth"]
    config["auth"] = {**config["auth"], **auth}
    return config


def plan_with(**auth: Any) -> ClusterPlan:
    return plan_for(load_cluster_spec(config_with(**auth)))


def planning_errors(**auth: Any) -> list[str]:
    with pytest.raises(SizingError) as caught:
        plan_with(**auth)
    return caught.value.errors


def clients(count: int, limited: bool = True) -> list[dict[str, Any]]:
    limit = {"rateLimit": {"requests": 10, "unit": "Second"}} if limited else {}
    return [{"name": f"client-{i}", **limit} for i in range(count)]


# ---------------------------------------------------------------- the plan's scope


def test_more_than_one_envoy_replica_counts_globally_by_default() -> None:
    plan = plan_with(replicas=3)
    assert plan.rate_limits.scope == "global"
    assert plan.rate_limits.reason.startswith("the default for 3 Envoy replicas")
    assert "requests pass unlimited (failClosed: false)" in plan.rate_limits.reason


def test_the_default_envoy_replicas_are_two_so_the_default_scope_is_global() -> None:
    plan = plan_with()
    assert plan.auth.replicas == 2 and plan.rate_limits.scope == "global"


def test_one_envoy_replica_counts_locally_by_default_and_may_ask_for_global() -> None:
    local = plan_with(replicas=1)
    assert local.rate_limits.scope == "local"
    assert "the default for one Envoy replica" in local.rate_limits.reason
    assert "no Redis runs" in local.rate_limits.reason
    asked = plan_with(replicas=1, rateLimitScope="global")
    assert asked.rate_limits.scope == "global" and asked.rate_limits.reason.startswith("set in the stack")


def test_local_scope_with_several_replicas_is_refused_naming_the_multiplied_limit() -> None:
    (error,) = planning_errors(replicas=3, rateLimitScope="local")
    assert error.startswith("auth.rateLimitScope: local counts per Envoy replica")
    assert "a client gets 3 times its limit" in error and "auth.replicas: 1" in error


def test_no_limited_client_means_nothing_counted() -> None:
    plan = plan_with(clients=clients(2, limited=False), rateLimitScope="global")
    assert plan.rate_limits.scope == "none"
    assert "rateLimitScope: global has nothing to count" in plan.rate_limits.reason
    assert rate_limits(plan) is None and envoy_gateway_values(plan) == {} and pod_monitors(plan) == ()


def test_more_limited_clients_than_a_local_policy_holds_is_refused() -> None:
    (error,) = planning_errors(replicas=1, clients=clients(LOCAL_RULES_MAX + 1))
    assert f"{LOCAL_RULES_MAX + 1} clients have a rateLimit, more than the {LOCAL_RULES_MAX} rules a local" in error
    assert "or use rateLimitScope: global" in error
    assert plan_with(replicas=1, rateLimitScope="global", clients=clients(LOCAL_RULES_MAX + 1))


def test_more_limited_clients_than_a_global_policy_holds_is_refused() -> None:
    (error,) = planning_errors(clients=clients(GLOBAL_RULES_MAX + 1))
    assert f"more than the {GLOBAL_RULES_MAX} rules a global BackendTrafficPolicy holds" in error


def test_a_limit_beyond_the_crds_uint32_is_refused_by_the_spec() -> None:
    config = config_with(clients=[{"name": "a", "rateLimit": {"requests": 2**32}}])
    with pytest.raises(SpecError, match=r"auth\.clients\[0\]\.rateLimit\.requests"):
        load_cluster_spec(config)


def test_an_unknown_scope_is_refused_by_the_spec() -> None:
    with pytest.raises(SpecError, match=r"auth\.rateLimitScope"):
        load_cluster_spec(config_with(rateLimitScope="cluster"))


# ---------------------------------------------------------------- what the components make of it


def test_global_rules_select_each_client_by_the_forwarded_id_and_share_one_count_across_routes() -> None:
    plan = plan_with(clients=[{"name": "a", "rateLimit": {"requests": 7, "unit": "Hour"}}, {"name": "b"}])
    spec = rate_limits(plan)
    assert spec is not None and set(spec["rateLimit"]) == {"global"}
    (rule,) = spec["rateLimit"]["global"]["rules"]
    assert rule == {
        "clientSelectors": [{"headers": [{"name": CLIENT_HEADER, "type": "Exact", "value": "a"}]}],
        "limit": {"requests": 7, "unit": "Hour"},
        "shared": True,
    }


def test_local_rules_are_the_same_selectors_without_a_shared_count() -> None:
    spec = rate_limits(plan_with(replicas=1))
    assert spec is not None and set(spec["rateLimit"]) == {"local"}
    assert all("shared" not in rule for rule in spec["rateLimit"]["local"]["rules"])


def test_envoy_gateway_is_told_the_redis_service_only_for_global_counts() -> None:
    assert envoy_gateway_values(plan_with(replicas=1)) == {}
    values = envoy_gateway_values(plan_with())
    assert values == {
        "config": {
            "envoyGateway": {
                "rateLimit": {
                    "backend": {"type": "Redis", "redis": {"url": f"{NAME}.{EG_NAMESPACE}.svc:{REDIS_PORT}"}},
                    "failClosed": False,
                }
            }
        }
    }


# ---------------------------------------------------------------- every stack, rendered


def objects(run: ProgramRun, kind: str, in_namespace: str) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o
        for o in run.manifests
        if o["kind"] == kind and o["metadata"].get("namespace") == in_namespace
    }


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_counts_where_its_plan_says(stack: str) -> None:
    run = rendered(stack)
    scope = PLANS[stack].rate_limits.scope
    policies = [o for o in run.manifests if o["kind"] == "BackendTrafficPolicy"]
    assert [set(p["spec"]["rateLimit"]) for p in policies] == ([] if scope == "none" else [{scope}])
    redis = objects(run, "Deployment", EG_NAMESPACE)
    assert (NAME in redis) == (scope == "global") == ("rateLimit" in envoy_gateway_config(run))


def envoy_gateway_config(run: ProgramRun) -> dict[str, Any]:
    """`config.envoyGateway` of the gateway-helm release: what the chart merges into the EnvoyGateway config."""
    values: dict[str, Any] = run.helm_releases["gateway-helm"]["values"]
    return dict((values.get("config") or {}).get("envoyGateway") or {})


@pytest.mark.parametrize("stack", GLOBAL_STACKS)
def test_the_url_envoy_gateway_gets_is_the_redis_service_that_runs(stack: str) -> None:
    run = rendered(stack)
    url = envoy_gateway_config(run)["rateLimit"]["backend"]["redis"]["url"]
    host, port = url.rsplit(":", 1)
    service_name, service_namespace, _ = host.split(".")
    service = objects(run, "Service", service_namespace)[service_name]
    assert service_namespace == namespace() == EG_NAMESPACE
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    pods = objects(run, "Deployment", EG_NAMESPACE)[NAME]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pods.items()


@pytest.mark.parametrize("stack", GLOBAL_STACKS)
def test_only_the_rate_limit_service_reaches_redis_and_only_prometheus_its_exporter(stack: str) -> None:
    run = rendered(stack)
    policy = objects(run, "NetworkPolicy", EG_NAMESPACE)[NAME]["spec"]
    pods = objects(run, "Deployment", EG_NAMESPACE)[NAME]["spec"]["template"]
    assert policy["podSelector"]["matchLabels"] == SELECTOR
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["egress"] == []
    redis_rule, metrics_rule = policy["ingress"]
    assert [p["port"] for p in redis_rule["ports"]] == [REDIS_PORT]
    assert [p["podSelector"]["matchLabels"] for p in redis_rule["from"]] == [RATE_LIMIT_SERVICE_PODS]
    exporter = next(c for c in pods["spec"]["containers"] if c["name"] == "exporter")
    assert [p["port"] for p in metrics_rule["ports"]] == [exporter["ports"][0]["containerPort"]]
    (prometheus,) = metrics_rule["from"]
    assert prometheus["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert prometheus["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "prometheus"


@pytest.mark.parametrize("stack", GLOBAL_STACKS)
def test_redis_keeps_no_data_and_both_rate_limit_parts_are_scraped(stack: str) -> None:
    run = rendered(stack)
    deployment = objects(run, "Deployment", EG_NAMESPACE)[NAME]["spec"]
    assert deployment["replicas"] == 1 and deployment["strategy"] == {"type": "Recreate"}
    redis = next(c for c in deployment["template"]["spec"]["containers"] if c["name"] == "redis")
    args = redis["args"]
    assert args[args.index("--save") + 1] == "" and args[args.index("--appendonly") + 1] == "no"
    assert {v["name"]: set(v) for v in deployment["template"]["spec"]["volumes"]} == {"data": {"name", "emptyDir"}}
    monitors = objects(run, "PodMonitor", EG_NAMESPACE)
    assert monitors[NAME]["spec"]["selector"]["matchLabels"] == SELECTOR
    assert monitors["envoy-ratelimit"]["spec"]["selector"]["matchLabels"] == RATE_LIMIT_SERVICE_PODS
    assert not objects(run, "PodDisruptionBudget", EG_NAMESPACE)


def test_a_single_replica_stack_renders_local_limits_and_no_redis() -> None:
    run = run_program(config_with(replicas=1))
    (policy,) = [o for o in run.manifests if o["kind"] == "BackendTrafficPolicy"]
    assert set(policy["spec"]["rateLimit"]) == {"local"}
    assert NAME not in objects(run, "Deployment", EG_NAMESPACE)
    assert not objects(run, "PodMonitor", EG_NAMESPACE).keys() & {NAME, "envoy-ratelimit"}
    assert "rateLimit" not in envoy_gateway_config(run)
