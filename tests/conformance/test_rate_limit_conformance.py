"""Global rate limits against Envoy Gateway v1.9.0 itself.

- The EnvoyGateway config we hand gateway-helm (`config.envoyGateway.rateLimit`, which the chart merges into the
  controller's config file): Envoy Gateway decodes that file leniently (internal/envoygateway/config/decoder.go, a
  UniversalDeserializer), so a misspelt key would be dropped without a word and global limits would stay off. Every
  key we set must be one that upstream's own decoder test reads into api/v1alpha1 RateLimit
  (upstream/envoy-gateway-v1.9.0_envoygateway-global-ratelimit.yaml, decoder_test.go expects it to decode), with
  the same YAML type, and the values must pass upstream's validateEnvoyGatewayRateLimit (api/v1alpha1/validation/
  envoygateway_validate.go): backend type Redis, exactly one of url and urlRef, each comma-separated host a URL.
- The BackendTrafficPolicy's global rules against the vendored CRD and its CEL rules (test_crds.py runs every
  rendered custom resource through the same validator; here, that a global rule's checks bite).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from components.api_gateway import rate_limits
from components.spec import load_cluster_spec
from components.stacks import plan_for
from testbed.stacks import STACKS, rendered, stack_config
from tests.conformance import crds

UPSTREAM_CONFIG = "envoy-gateway-v1.9.0_envoygateway-global-ratelimit.yaml"
GLOBAL_STACKS = [s for s in STACKS if plan_for(load_cluster_spec(stack_config(s))).rate_limits.scope == "global"]


def upstream_rate_limit() -> dict[str, Any]:
    (config,) = crds.load_yaml_documents(UPSTREAM_CONFIG)
    assert config["kind"] == "EnvoyGateway"
    rate_limit: dict[str, Any] = config["rateLimit"]
    return rate_limit


def leaves(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, (*prefix, str(key)))
    else:
        yield prefix, tree


def config_problems(rate_limit: dict[str, Any]) -> list[str]:
    """What Envoy Gateway v1.9.0 would drop or refuse in an EnvoyGateway `rateLimit`."""
    known = dict(leaves(upstream_rate_limit()))
    problems = []
    for path, value in leaves(rate_limit):
        dotted = ".".join(path)
        if path not in known:
            problems.append(f"rateLimit.{dotted}: not a field Envoy Gateway's decoder reads (dropped silently)")
        elif type(value) is not type(known[path]):
            problems.append(
                f"rateLimit.{dotted}: {type(value).__name__}, upstream reads a {type(known[path]).__name__}"
            )
    backend = rate_limit.get("backend") or {}
    if backend.get("type") != "Redis":
        problems.append(f"rateLimit.backend.type: {backend.get('type')!r}; the only backend is Redis (Enum=Redis)")
    redis = backend.get("redis") or {}
    if ("url" in redis) == ("urlRef" in redis):
        problems.append("rateLimit.backend.redis: exactly one of url or urlRef must be set")
    for host in str(redis.get("url") or "").split(",") if "url" in redis else []:
        # url.Parse, as ValidateRedisURL does it, accepts host:port; the rate-limit service dials it as TCP.
        parsed = urlsplit(f"//{host}")
        if not host or not parsed.hostname or parsed.port is None:
            problems.append(f"rateLimit.backend.redis.url: {host!r} is not host:port")
    return problems


def envoy_gateway_rate_limit(stack: str) -> dict[str, Any]:
    values = rendered(stack).helm_releases["gateway-helm"]["values"]
    rate_limit: dict[str, Any] = values["config"]["envoyGateway"]["rateLimit"]
    return rate_limit


def test_some_stack_counts_globally() -> None:
    assert GLOBAL_STACKS


@pytest.mark.parametrize("stack", GLOBAL_STACKS)
def test_the_rate_limit_config_is_what_envoy_gateway_reads(stack: str) -> None:
    assert config_problems(envoy_gateway_rate_limit(stack)) == []


def test_the_upstream_example_passes_and_every_check_bites() -> None:
    assert config_problems(upstream_rate_limit()) == []
    mine = {"backend": {"type": "Redis", "redis": {"url": "rate-limit-redis.envoy-gateway-system.svc:6379"}}}
    assert config_problems(mine) == []
    misspelt = copy.deepcopy(mine) | {"failclosed": False}
    assert config_problems(misspelt) == [
        "rateLimit.failclosed: not a field Envoy Gateway's decoder reads (dropped silently)"
    ]
    assert config_problems(mine | {"failClosed": "false"}) == ["rateLimit.failClosed: str, upstream reads a bool"]
    memcache = {"backend": {"type": "Memcache", "redis": {"url": "redis:6379"}}}
    assert config_problems(memcache) == ["rateLimit.backend.type: 'Memcache'; the only backend is Redis (Enum=Redis)"]
    assert config_problems({"backend": {"type": "Redis", "redis": {}}}) == [
        "rateLimit.backend.redis: exactly one of url or urlRef must be set"
    ]
    no_port = {"backend": {"type": "Redis", "redis": {"url": "redis.svc"}}}
    assert config_problems(no_port) == ["rateLimit.backend.redis.url: 'redis.svc' is not host:port"]


@pytest.mark.parametrize("stack", GLOBAL_STACKS)
def test_the_global_policy_passes_the_upstream_crd(stack: str) -> None:
    (policy,) = [o for o in rendered(stack).manifests if o["kind"] == "BackendTrafficPolicy"]
    assert "global" in policy["spec"]["rateLimit"]
    assert crds.validate_object(policy) == []


def global_policy() -> dict[str, Any]:
    plan = plan_for(load_cluster_spec(stack_config(GLOBAL_STACKS[0])))
    return {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "BackendTrafficPolicy",
        "metadata": {"name": "llm-api", "namespace": "llm"},
        "spec": rate_limits(plan),
    }


def test_a_global_rule_without_a_client_condition_is_refused_by_the_crds_cel_rule() -> None:
    policy = global_policy()
    assert crds.validate_object(policy) == []
    policy["spec"]["rateLimit"]["global"]["rules"][0]["clientSelectors"] = [{}]
    (error,) = crds.validate_object(policy)
    assert "rateLimit.global.rules[0].clientSelectors[0]" in error
    assert "at least one of headers, methods, path, sourceCIDR or queryParams must be specified" in error


def test_a_global_limit_past_uint32_or_with_a_misspelt_unit_is_refused() -> None:
    policy = global_policy()
    policy["spec"]["rateLimit"]["global"]["rules"][0]["limit"] = {"requests": 2**32, "unit": "Minutes"}
    errors = crds.validate_object(policy)
    assert any("limit.requests: Invalid value: 4294967296" in e for e in errors), errors
    assert any('limit.unit: Unsupported value: "Minutes"' in e for e in errors), errors
