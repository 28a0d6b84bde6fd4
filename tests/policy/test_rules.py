"""The policy pack: every rule over every stack's resources, each rule over an example that must fail."""

from __future__ import annotations

import runpy
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import pytest
from pulumi_policy import PolicyResourceOptions
from pulumi_policy.proxy import unknown_checking_proxy

from testbed.stacks import STACKS
from tests.policy.rendered import (
    POLICY_DIR,
    container,
    first,
    gateway,
    mutate,
    pod_spec,
    resources,
    vllm,
    with_options,
)

from rules import RESOURCE_RULES, STACK_RULES, check  # isort: skip (policy/ on sys.path, set by rendered)

RULES = sorted([*RESOURCE_RULES, *STACK_RULES])


def violations(stack: str, rule: str) -> list[str]:
    found = resources(stack)
    if rule in STACK_RULES:
        return STACK_RULES[rule](found)
    return [v for r in found for v in RESOURCE_RULES[rule](r)]


# Issue 13's classes and the rules that catch them.
SECURITY_CLASSES = {
    "pod hardening": {
        "pods-are-restricted",
        "pods-have-no-service-links",
        "api-tokens-only-for-bound-accounts",
        "serving-namespace-enforces-restricted",
    },
    "ingress by namespace": {"no-namespace-wide-ingress"},
    "route exposure": {"routes-expose-only-inference-paths"},
    "unprotected claims": {"claims-are-protected", "namespaces-holding-data-are-protected"},
    "secrets in env": {"no-secret-values-in-env-args-or-config-maps"},
}


@pytest.mark.parametrize("security_class", sorted(SECURITY_CLASSES))
def test_the_pack_has_rules_for_each_security_class(security_class: str) -> None:
    assert SECURITY_CLASSES[security_class] <= set(RULES)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_every_rule(stack: str, rule: str) -> None:
    assert violations(stack, rule) == []


def test_check_runs_every_rule() -> None:
    bad = [r for r in resources("prod") if r.kind != "NetworkPolicy"]
    assert "every-workload-namespace-has-a-network-policy" in check(bad)


FAILING: dict[str, tuple[Any, str]] = {
    "gpu-request-equals-limit-and-plan-share": (
        lambda: mutate(vllm(), lambda p: container(p)["resources"]["limits"].update({"nvidia.com/gpu": "2"})),
        "request 4 != limit 2",
    ),
    "containers-have-requests-and-limits": (
        lambda: mutate(gateway(), lambda p: container(p)["resources"].pop("limits")),
        "no limits for cpu, memory",
    ),
    "images-are-pinned": (
        lambda: mutate(vllm(), lambda p: container(p).update(image="vllm/vllm-openai:latest")),
        "is not pinned",
    ),
    "no-load-balancer-services": (
        lambda: mutate(first("prod", "Service", "llm-gateway"), lambda p: p["spec"].update(type="LoadBalancer")),
        "LoadBalancer",
    ),
    "no-secret-values-in-env-args-or-config-maps": (
        lambda: mutate(
            gateway("example-gke"),  # LiteLLM, whose master key this is
            lambda p: container(p)["env"].append(
                {"name": "LITELLM_MASTER_KEY", "value": "sk-abcdefghijklmnopqrstuvwx"}
            ),
        ),
        "env LITELLM_MASTER_KEY holds a credential-looking value",
    ),
    "monitoring-is-persistent": (
        lambda: mutate(
            first("prod", "Release", "kube-prometheus-stack"),
            lambda p: p["values"]["grafana"]["persistence"].update(enabled=False),
        ),
        "Grafana persistence is off",
    ),
    "model-servers-have-probes": (
        lambda: mutate(vllm(), lambda p: container(p).pop("startupProbe")),
        "without startupProbe",
    ),
    "only-gpu-pods-tolerate-gpu-taints": (
        lambda: mutate(
            gateway(),
            lambda p: p["spec"]["template"]["spec"].update(
                tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
            ),
        ),
        "tolerates the GPU taint but requests no GPU",
    ),
    "hpa-bounds-fit-the-pool": (
        lambda: mutate(
            first("prod", "HorizontalPodAutoscaler", "qwen2-5-32b-instruct"), lambda p: p["spec"].update(maxReplicas=9)
        ),
        "exceed the pool's 32 GPUs",
    ),
    "gateways-run-as-non-root": (
        lambda: mutate(
            gateway(),
            lambda p: (
                container(p)["securityContext"].update(runAsNonRoot=False),
                p["spec"]["template"]["spec"]["securityContext"].update(runAsNonRoot=False),
            ),
        ),
        "may run as root",
    ),
    "volumes-have-a-storage-class": (
        lambda: mutate(first("prod", "PersistentVolumeClaim"), lambda p: p["spec"].pop("storageClassName")),
        "without storageClassName",
    ),
    "namespaces-enforce-pod-security": (
        lambda: mutate(first("prod", "Namespace"), lambda p: p["metadata"].update(labels={})),
        "without a pod-security",
    ),
    # Issue 13's classes; tests/policy/test_{pod,exposure,data}_rules.py hold their passing and other failing cases.
    "pods-are-restricted": (
        lambda: mutate(vllm(), lambda p: pod_spec(p).update(hostNetwork=True)),
        "pod must not set hostNetwork=true",
    ),
    "pods-have-no-service-links": (
        lambda: mutate(gateway(), lambda p: pod_spec(p).pop("enableServiceLinks")),
        "set enableServiceLinks: false",
    ),
    "no-namespace-wide-ingress": (
        lambda: mutate(
            first("prod", "NetworkPolicy", "model-servers"),
            lambda p: p["spec"]["ingress"][1]["from"][0].pop("podSelector"),
        ),
        "a namespaceSelector without a podSelector admits every pod",
    ),
    "routes-expose-only-inference-paths": (
        lambda: mutate(
            first("prod", "HTTPRoute"),
            lambda p: p["spec"]["rules"][0].update(matches=[{"path": {"type": "PathPrefix", "value": "/v1"}}]),
        ),
        "PathPrefix /v1 matches more than one path",
    ),
    "claims-are-protected": (
        lambda: with_options(first("prod", "PersistentVolumeClaim"), protect=False),
        "without the protect resource option",
    ),
    "shared-gpus-hold-their-slices": (
        lambda: mutate(
            first("prod", "Deployment", "bge-m3"),
            lambda p: container(p)["resources"]["limits"].update({"nvidia.com/gpu.shared": "2"}),
        ),
        "a pod takes exactly one slice",
    ),
}


@pytest.mark.parametrize("name", sorted(RESOURCE_RULES))
def test_each_resource_rule_fails_its_bad_example(name: str) -> None:
    example, message = FAILING[name]
    violations = RESOURCE_RULES[name](example())
    assert violations and any(message in v for v in violations), violations


def test_hpa_with_min_above_max_fails() -> None:
    hpa = mutate(first("prod", "HorizontalPodAutoscaler", "bge-m3"), lambda p: p["spec"].update(minReplicas=5))
    assert any("minReplicas 5 > maxReplicas 2" in v for v in RESOURCE_RULES["hpa-bounds-fit-the-pool"](hpa))


def test_gpu_share_must_match_tp_times_pp() -> None:
    bad = mutate(
        vllm(),
        lambda p: [container(p)["resources"][part].update({"nvidia.com/gpu": "2"}) for part in ("requests", "limits")],
    )
    assert any(
        "TP 4 x PP 1 over 1 node(s) needs 4" in v
        for v in RESOURCE_RULES["gpu-request-equals-limit-and-plan-share"](bad)
    )


def test_a_workload_namespace_without_network_policy_fails() -> None:
    stack = [r for r in resources("prod") if r.kind != "NetworkPolicy"]
    # prod counts rate limits globally: its Redis is a workload of the stack in Envoy Gateway's namespace.
    assert STACK_RULES["every-workload-namespace-has-a-network-policy"](stack) == [
        "namespace envoy-gateway-system: workloads but no NetworkPolicy",
        "namespace llm: workloads but no NetworkPolicy",
    ]


def test_a_multi_replica_workload_without_pdb_fails() -> None:
    stack = [r for r in resources("prod") if not (r.kind == "PodDisruptionBudget" and r.object_name == "llm-gateway")]
    assert STACK_RULES["multi-replica-workloads-have-a-pdb"](stack) == [
        "llm-gateway: more than one replica but no PodDisruptionBudget selects its pods"
    ]


def pack_policies() -> dict[str, Any]:
    """The pack's policies by name, built by policy/__main__.py with PolicyPack (the gRPC server) patched out."""
    captured: dict[str, Any] = {}
    with patch("pulumi_policy.PolicyPack", side_effect=lambda **kw: captured.update(kw)):
        runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="__main__")
    return {p.name: p for p in captured["policies"]}


def crossguard_options(protect: bool) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], None, [])  # type: ignore[arg-type]


class CrossGuardResource:
    """The fields of ResourceValidationArgs / PolicyResource the pack reads."""

    def __init__(self, example: Any, protect: bool) -> None:
        self.resource_type, self.name, self.props = example.type, example.name, example.props
        self.opts = crossguard_options(protect)


def test_the_pack_wraps_every_rule_and_reports_violations() -> None:
    policies = pack_policies()
    assert set(policies) == set(RESOURCE_RULES) | set(STACK_RULES)
    reported: list[str] = []
    bad = CrossGuardResource(FAILING["images-are-pinned"][0](), protect=False)
    policies["images-are-pinned"].validate(bad, lambda message, urn: reported.append(message))
    assert reported and "not pinned" in reported[0]


@pytest.mark.parametrize("protect", [False, True])
def test_the_pack_reads_protect_from_crossguard_options(protect: bool) -> None:
    """CrossGuard passes resource options in args.opts (PolicyResourceOptions), not in the inputs."""
    policies = pack_policies()
    claim = CrossGuardResource(first("prod", "PersistentVolumeClaim"), protect)
    reported: list[str] = []
    policies["claims-are-protected"].validate(claim, lambda message, urn: reported.append(message))
    assert bool(reported) is not protect

    stack = SimpleNamespace(resources=[CrossGuardResource(r, protect) for r in resources("prod")])
    reported.clear()
    policies["namespaces-holding-data-are-protected"].validate(stack, lambda m, urn: reported.append(m))
    assert bool(reported) is not protect


def test_the_rules_read_crossguard_proxies_as_plain_values() -> None:
    """Under CrossGuard nested values are Mapping/Sequence proxies (pulumi_policy.proxy), not dicts and lists."""
    plain = resources("example-eks-karpenter")
    plain = [mutate(r, lambda p: pod_spec(p).update(hostPID=True)) if r.kind == "Deployment" else r for r in plain]
    proxied = [type(r)(r.type, r.name, dict(unknown_checking_proxy(dict(r.props))), r.options) for r in plain]
    assert any(not isinstance(v, (dict, list, str, int, float, bool)) for r in proxied for v in r.props.values())
    for name in RULES:
        if name in STACK_RULES:
            assert STACK_RULES[name](proxied) == STACK_RULES[name](plain), name
        else:
            assert [v for r in proxied for v in RESOURCE_RULES[name](r)] == [
                v for r in plain for v in RESOURCE_RULES[name](r)
            ], name
    assert check(proxied) == check(plain) != {}
