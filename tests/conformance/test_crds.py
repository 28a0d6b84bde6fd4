"""Every custom resource we render, validated as the API server would on create, against the upstream CRDs at our
pinned tags (tests/conformance/upstream/, SOURCES.txt): structural schema with defaults, pruning of unknown fields
as an error, value validations and the CRDs' CEL rules. Negative tests prove each check bites."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from components.charts import CHARTS_DIR
from testbed.renders import custom_resources
from testbed.stacks import stack_config
from tests.conformance import cel, crds, schema

# file <- owner/repo @ tag (commit) : path
SOURCES_LINE = re.compile(r"^\S+ <- [\w.-]+/[\w.-]+ @ \S+ \([0-9a-f]{40}\) : \S+$")


def test_every_custom_resource_passes_its_upstream_crd(render: tuple[str, Path]) -> None:
    _, out = render
    objects = custom_resources(out)
    errors = [error for obj in objects for error in crds.validate_object(obj)]
    assert objects and not errors, "\n".join(errors)


def test_leader_worker_set_pod_templates_are_valid_core_pod_templates(render: tuple[str, Path]) -> None:
    stack, out = render
    version = stack_config(stack).get("kubernetesVersion", "1.31") + ".0"
    for obj in (o for o in custom_resources(out) if o["kind"] == "LeaderWorkerSet"):
        group = obj["spec"]["leaderWorkerTemplate"]
        for template in (group["leaderTemplate"], group["workerTemplate"]):
            # The CRD's copy of PodSpec is loose (no field formats); the core schema is the real contract.
            pod_template = {"apiVersion": "v1", "kind": "PodTemplate",
                            "metadata": {"name": obj["metadata"]["name"]}, "template": template}  # fmt: skip
            kubernetes_validate.validate(pod_template, version, strict=True)


def test_every_vendored_file_is_listed_in_sources() -> None:
    listed = crds.sources()
    vendored = {p.name for p in crds.UPSTREAM.iterdir() if p.name != "SOURCES.txt"}  # CRDs, values, templates, Go
    assert vendored == set(listed), f"unlisted: {vendored - set(listed)}, missing: {set(listed) - vendored}"
    for line in listed.values():
        assert SOURCES_LINE.match(line), line


# Chart -> (pinned version the vendored CRDs stand for, their file prefix). Gateway v1.9.3: see upstream/SOURCES.txt.
CRD_PINS = {"kube-prometheus-stack": ("85.2.0", "kps-85.2.0_crd-"), "lws": ("0.8.0", "lws-v0.8.0_leaderworkersets"),
            "gateway-helm": ("v1.9.3", "envoy-gateway-v1.9.0_gateway")}  # fmt: skip


def test_vendored_crds_are_for_the_pinned_charts() -> None:
    pins = yaml.safe_load((CHARTS_DIR / "versions.yaml").read_text())
    for chart, (version, prefix) in CRD_PINS.items():
        assert pins[chart]["version"] == version, f"{chart} is pinned at {pins[chart]['version']}: re-vendor its CRDs"
        assert any(name.startswith(prefix) for name in crds.sources()), prefix


def test_every_cel_rule_of_the_crds_we_use_compiles_with_implemented_functions(render: tuple[str, Path]) -> None:
    # Also the rules at nodes we leave unset: fails (CelUnsupported) when a CRD bump brings a function we lack.
    _, out = render
    kinds = {(o["apiVersion"], o["kind"]) for o in custom_resources(out)}
    rules = [rule for kind in kinds for v in crds.crd_index().get(kind, []) for rule in _rules(v.openapi)]
    assert rules
    for rule in rules:
        cel.compile_rule(rule["rule"])
        if "messageExpression" in rule:
            cel.compile_rule(rule["messageExpression"])


def _rules(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [r for item in node for r in _rules(item)]
    if not isinstance(node, dict):
        return []
    own = list(node.get("x-kubernetes-validations") or [])
    return own + [r for key, value in node.items() if key != "x-kubernetes-validations" for r in _rules(value)]


# ------------------------------------------------------------------ negative tests: the validator must refuse these

HTTP_ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "llm-api", "namespace": "llm"},
    "spec": {
        "parentRefs": [{"name": "llm-api"}],
        "rules": [
            {
                "backendRefs": [{"name": "llm-gateway", "port": 4000}],
                "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                "timeouts": {"request": "660s"},
            }
        ],
    },
}
SECURITY_POLICY: dict[str, Any] = {
    "apiVersion": "gateway.envoyproxy.io/v1alpha1",
    "kind": "SecurityPolicy",
    "metadata": {"name": "llm-api", "namespace": "llm"},
    "spec": {
        "apiKeyAuth": {"credentialRefs": [{"name": "keys"}], "extractFrom": [{"headers": ["authorization"]}]},
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "llm-api"}],
    },
}
LEADER_WORKER_SET: dict[str, Any] = {
    "apiVersion": "leaderworkerset.x-k8s.io/v1",
    "kind": "LeaderWorkerSet",
    "metadata": {"name": "model", "namespace": "llm"},
    "spec": {"leaderWorkerTemplate": {"size": 2, "workerTemplate": {"spec": {"containers": [{"name": "vllm"}]}}}},
}
GATEWAY: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "llm-api", "namespace": "llm"},
    "spec": {"gatewayClassName": "llm-cluster", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
}
ENVOY_PROXY: dict[str, Any] = {
    "apiVersion": "gateway.envoyproxy.io/v1alpha1",
    "kind": "EnvoyProxy",
    "metadata": {"name": "llm-api", "namespace": "llm"},
    "spec": {"provider": {"type": "Kubernetes", "kubernetes": {"envoyService": {"type": "NodePort"}}}},
}


def _errors(base: dict[str, Any], change: str | None = None, value: Any = None) -> list[str]:
    """Validate a copy of base with the dotted path `change` (list indexes as numbers) set to value."""
    obj = copy.deepcopy(base)
    if change is not None:
        *parents, last = [int(p) if p.isdigit() else p for p in change.split(".")]
        node: Any = obj
        for part in parents:
            node = node[part]
        node[last] = value
    return crds.validate_object(obj)


@pytest.mark.parametrize(
    "base", [HTTP_ROUTE, SECURITY_POLICY, LEADER_WORKER_SET, GATEWAY, ENVOY_PROXY], ids=lambda b: b["kind"]
)
def test_the_unchanged_examples_are_valid(base: dict[str, Any]) -> None:
    assert _errors(base) == []


def test_defaults_are_applied_before_validation() -> None:
    (crd,) = crds.crd_index()[("gateway.networking.k8s.io/v1", "HTTPRoute")]
    defaulted, _ = schema.validate(HTTP_ROUTE, crd.openapi)
    assert defaulted["spec"]["parentRefs"][0] == {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                                  "name": "llm-api"}  # fmt: skip
    backend = defaulted["spec"]["rules"][0]["backendRefs"][0]
    assert backend == {"name": "llm-gateway", "port": 4000, "group": "", "kind": "Service", "weight": 1}


def test_an_unknown_field_is_refused_with_its_path() -> None:
    (error,) = _errors(HTTP_ROUTE, "spec.rules.0.backendRefs.0.wieght", 10)
    assert 'spec.rules[0].backendRefs[0].wieght: unknown field "spec.rules[0].backendRefs[0].wieght"' in error


def test_a_value_outside_the_enum_is_refused() -> None:
    errors = _errors(HTTP_ROUTE, "spec.rules.0.matches.0.path.type", "Prefix")
    expected = ('spec.rules[0].matches[0].path.type: Unsupported value: "Prefix": supported values: '
                '"Exact", "PathPrefix", "RegularExpression"')  # fmt: skip
    assert any(expected in e for e in errors), errors


def test_an_int32_overflow_is_refused() -> None:
    (error,) = _errors(LEADER_WORKER_SET, "spec.replicas", 2**31)
    assert 'spec.replicas: Invalid value: 2147483648: spec.replicas in body must be of type int32: "2147483648"' in (
        error
    )


def test_a_duplicate_in_a_list_type_set_is_refused() -> None:
    modifier = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["x-debug", "x-debug"]}}
    (error,) = _errors(HTTP_ROUTE, "spec.rules.0.filters", [modifier])
    assert 'spec.rules[0].filters[0].requestHeaderModifier.remove[1]: Duplicate value: "x-debug"' in error


def test_a_duplicate_key_in_a_list_type_map_is_refused() -> None:
    listener = {"name": "http", "port": 8080, "protocol": "HTTP"}
    errors = _errors(GATEWAY, "spec.listeners", [*GATEWAY["spec"]["listeners"], listener])
    assert any('spec.listeners[1]: Duplicate value: ["http"]' in e for e in errors), errors


def test_a_violated_http_route_cel_rule_is_refused_with_its_message() -> None:
    (error,) = _errors(HTTP_ROUTE, "spec.rules.0.timeouts", {"request": "10s", "backendRequest": "20s"})
    assert "spec.rules[0].timeouts: Invalid value: " in error
    assert "backendRequest timeout cannot be longer than request timeout" in error


def test_a_violated_security_policy_cel_rule_is_refused_with_its_message() -> None:
    both = [{"headers": ["authorization"], "params": ["key"]}]
    (error,) = _errors(SECURITY_POLICY, "spec.apiKeyAuth.extractFrom", both)
    assert "spec.apiKeyAuth.extractFrom[0]: Invalid value: " in error
    assert "exactly one of headers, params, or cookies must be specified" in error


def test_every_stack_renders_an_envoy_proxy_its_crd_and_cel_rules_accept(render: tuple[str, Path]) -> None:
    _, out = render
    (proxy,) = [o for o in custom_resources(out) if o["kind"] == "EnvoyProxy"]
    assert crds.validate_object(proxy) == []
    (crd,) = crds.crd_index()[("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy")]
    defaulted, _ = schema.validate(proxy, crd.openapi)
    service = defaulted["spec"]["provider"]["kubernetes"]["envoyService"]
    assert service["type"] == proxy["spec"]["provider"]["kubernetes"]["envoyService"]["type"]  # never the default
    assert "externalTrafficPolicy" in service  # the CRD defaults it (Local) when the plan leaves it out (ClusterIP)


def test_a_violated_envoy_proxy_cel_rule_is_refused_with_its_message() -> None:
    (error,) = _errors(ENVOY_PROXY, "spec.provider.kubernetes.envoyService.loadBalancerSourceRanges", ["10.0.0.0/8"])
    assert "spec.provider.kubernetes.envoyService: Invalid value: " in error
    assert "loadBalancerSourceRanges can only be set for LoadBalancer type" in error


def test_a_missing_required_field_is_refused() -> None:
    errors = _errors(GATEWAY, "spec.listeners.0", {"name": "http", "protocol": "HTTP"})
    assert any("spec.listeners[0].port: Required value" in e for e in errors), errors


def test_a_rule_calling_an_unimplemented_function_fails_loudly() -> None:
    rule = {"rule": "!has(self.url) || isURL(self.url)", "message": "must be a URL"}
    with pytest.raises(cel.CelUnsupported, match="isURL"):
        cel.evaluate(rule, {}, {"type": "object"})


def test_transition_rules_do_not_run_on_create_and_message_expressions_do() -> None:
    assert cel.evaluate({"rule": "self == oldSelf", "message": "immutable"}, "a", {"type": "string"}) is None
    rule = {"rule": "self.size() < 3", "messageExpression": "'too long: ' + self"}
    assert cel.evaluate(rule, "abcd", {"type": "string"}) == "too long: abcd"


def test_kubernetes_cel_library_functions_behave_as_upstream() -> None:
    string = {"type": "string"}
    assert cel.evaluate({"rule": "self.find('^[^@]+') == 'al2023'"}, "al2023@latest", string) is None
    assert cel.evaluate({"rule": "self.split('@')[1] == 'latest'"}, "al2023@latest", string) is None
    assert cel.evaluate({"rule": "self.upperAscii() in ['POST']"}, "post", string) is None
    assert cel.evaluate({"rule": "self.lowerAscii() != 'host'", "message": "no Host"}, "HOST", string) == "no Host"
    assert cel.evaluate({"rule": "self.all(k, k.split('/')[0].size() < 4)"}, {"a/b": "1"}, {"type": "object"}) is None
