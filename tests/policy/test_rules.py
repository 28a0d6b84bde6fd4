"""The policy pack: every rule over every stack's resources, each rule over an example that must fail."""

from __future__ import annotations

import copy
import runpy
import sys
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest

from testbed.stacks import STACKS, rendered

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
sys.path.insert(0, str(POLICY_DIR))
from rules import RESOURCE_RULES, STACK_RULES, Resource, check  # noqa: E402


def resources(stack: str) -> list[Resource]:
    return [Resource(r.type, r.name, copy.deepcopy(r.inputs)) for r in rendered(stack).registrations]


def first(stack: str, kind: str, name: str | None = None) -> Resource:
    return next(r for r in resources(stack) if r.kind == kind and (name is None or r.object_name == name))


def test_at_least_twelve_rules() -> None:
    assert len(RESOURCE_RULES) + len(STACK_RULES) >= 12


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_every_rule(stack: str) -> None:
    assert check(resources(stack)) == {}


def mutate(resource: Resource, change: Any) -> Resource:
    props = copy.deepcopy(resource.props)
    change(props)
    return Resource(resource.type, resource.name, props)


def container(props: dict[str, Any]) -> Any:
    """The first container itself (not a copy), for mutating."""
    return props["spec"]["template"]["spec"]["containers"][0]


def vllm(stack: str = "prod") -> Resource:
    return first(stack, "Deployment", "qwen2-5-32b-instruct")


def gateway(stack: str = "prod") -> Resource:
    return first(stack, "Deployment", "llm-gateway")


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
    "no-secret-values-in-env-or-config-maps": (
        lambda: mutate(
            gateway(),
            lambda p: container(p)["env"].append(
                {"name": "LITELLM_MASTER_KEY", "value": "sk-abcdefghijklmnopqrstuvwx"}
            ),
        ),
        "holds a literal secret",
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
    assert STACK_RULES["every-workload-namespace-has-a-network-policy"](stack) == [
        "namespace llm: workloads but no NetworkPolicy"
    ]


def test_a_multi_replica_workload_without_pdb_fails() -> None:
    stack = [r for r in resources("prod") if not (r.kind == "PodDisruptionBudget" and r.object_name == "llm-gateway")]
    assert STACK_RULES["multi-replica-workloads-have-a-pdb"](stack) == [
        "llm-gateway: more than one replica but no PodDisruptionBudget selects its pods"
    ]


def test_the_pack_wraps_every_rule_and_reports_violations() -> None:
    captured: dict[str, Any] = {}
    with patch("pulumi_policy.PolicyPack", side_effect=lambda **kw: captured.update(kw)):
        runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="__main__")
    policies = {p.name: p for p in captured["policies"]}
    assert set(policies) == set(RESOURCE_RULES) | set(STACK_RULES)
    bad = FAILING["images-are-pinned"][0]()
    reported: list[str] = []

    class Args:
        resource_type, name, props = bad.type, bad.name, bad.props

    policies["images-are-pinned"].validate(Args(), lambda message, urn: reported.append(message))
    assert reported and "not pinned" in reported[0]
