"""The rate-limit rule (policy/rate_limit_rules.py) over prod (global limits, two Envoy replicas) and dev (local limits,
one replica), and the edits that must fail it."""

from __future__ import annotations

from typing import Any

from tests.policy.rendered import mutate, resources

from rules import STACK_RULES, Resource  # isort: skip (policy/ on sys.path, set by rendered)

RULE = STACK_RULES["rate-limits-hold-across-replicas"]


def edited(stack: str, kind: str, change: Any) -> list[Resource]:
    return [mutate(r, change) if r.kind == kind else r for r in resources(stack)]


def rate_limit_of(stack: str) -> dict[str, Any]:
    (policy,) = [r for r in resources(stack) if r.kind == "BackendTrafficPolicy"]
    return dict(policy.props["spec"]["rateLimit"])


def test_prod_counts_globally_and_dev_locally_and_both_pass() -> None:
    assert set(rate_limit_of("prod")) == {"global"} and RULE(resources("prod")) == []
    assert set(rate_limit_of("dev")) == {"local"} and RULE(resources("dev")) == []


def test_local_limits_behind_two_envoy_replicas_fail() -> None:
    def local(props: dict[str, Any]) -> None:
        props["spec"]["rateLimit"] = {"local": props["spec"]["rateLimit"]["global"]}

    assert RULE(edited("prod", "BackendTrafficPolicy", local)) == [
        "llm-api: local rate limits with up to 2 Envoy replicas (EnvoyProxy llm-api): each replica counts alone, so "
        "a client gets 2 times its limit; use rateLimit.global"
    ]


def test_local_limits_behind_an_envoy_autoscaler_fail() -> None:
    def autoscaled(props: dict[str, Any]) -> None:
        props["spec"]["provider"]["kubernetes"]["envoyHpa"] = {"minReplicas": 1, "maxReplicas": 5}

    (violation,) = RULE(edited("dev", "EnvoyProxy", autoscaled))
    assert violation.startswith("llm-api: local rate limits with up to 5 Envoy replicas (EnvoyProxy llm-api)")


def test_global_limits_without_the_redis_backend_fail() -> None:
    def no_backend(props: dict[str, Any]) -> None:
        if props.get("chart", "").endswith("gateway-helm"):
            props["values"]["config"]["envoyGateway"].pop("rateLimit")

    assert RULE(edited("prod", "Release", no_backend)) == [
        "llm-api: global rate limits, but the gateway-helm release sets no config.envoyGateway.rateLimit.backend "
        "(Redis); Envoy Gateway would refuse the policy"
    ]


def test_global_limits_whose_redis_is_not_in_the_stack_fail() -> None:
    stack = [r for r in resources("prod") if not (r.kind == "Service" and r.object_name == "rate-limit-redis")]
    assert RULE(stack) == [
        "llm-api: global rate limits count in Redis at rate-limit-redis.envoy-gateway-system.svc:6379, but no "
        "Service of the stack answers there"
    ]
