"""Data-safety rules (policy/data_rules.py): claims and namespaces holding data carry `protect`, read from the
resource options the offline run records (CrossGuard's opts: tests/policy/test_rules.py)."""

from __future__ import annotations

from typing import Any

from tests.policy.rendered import first, mutate, resources, with_options

from rules import RESOURCE_RULES, STACK_RULES, Resource  # isort: skip (policy/ on sys.path, set by rendered)

CLAIMS = RESOURCE_RULES["claims-are-protected"]
NAMESPACES = STACK_RULES["namespaces-holding-data-are-protected"]


def unprotected(stack: list[Resource], kind: str, name: str) -> list[Resource]:
    return [with_options(r, protect=False) if r.kind == kind and r.object_name == name else r for r in stack]


def test_the_weights_claims_are_protected() -> None:
    claim = first("prod", "PersistentVolumeClaim")
    assert claim.options["protect"] is True
    assert CLAIMS(claim) == []
    assert CLAIMS(with_options(claim, protect=False)) == [
        f"{claim.object_name}: PersistentVolumeClaim without the protect resource option; a replacement or "
        "deletion would delete its volume"
    ]


def test_retain_on_delete_alone_is_not_protect() -> None:
    """CrossGuard shows policies `protect` only, so that is what the rule asks for."""
    claim = with_options(first("prod", "PersistentVolumeClaim"), protect=False, retain_on_delete=True)
    assert CLAIMS(claim) != []


def test_namespaces_with_claims_secrets_or_chart_volumes_are_protected() -> None:
    stack = resources("prod")
    assert NAMESPACES(stack) == []
    assert NAMESPACES(unprotected(stack, "Namespace", "llm")) == [
        "namespace llm: holds claims, Secrets or chart volumes but lacks the protect resource option"
    ]
    assert NAMESPACES(unprotected(stack, "Namespace", "monitoring")) == [
        "namespace monitoring: holds claims, Secrets or chart volumes but lacks the protect resource option"
    ]


def test_namespaces_without_data_need_no_protect() -> None:
    stack = resources("prod")
    assert first("prod", "Namespace", "gpu-operator").options["protect"] is False
    assert NAMESPACES(unprotected(stack, "Namespace", "envoy-gateway-system")) == []


def test_chart_volumes_alone_make_a_namespace_hold_data() -> None:
    """kube-prometheus-stack's Prometheus and Alertmanager claim volumes in its namespace through chart values."""
    stack = [r for r in unprotected(resources("prod"), "Namespace", "monitoring") if r.kind != "Secret"]
    assert NAMESPACES(stack) == [
        "namespace monitoring: holds claims, Secrets or chart volumes but lacks the protect resource option"
    ]

    def no_storage(props: dict[str, Any]) -> None:
        values = props["values"]
        values["prometheus"]["prometheusSpec"].pop("storageSpec")
        values["alertmanager"]["alertmanagerSpec"].pop("storage")
        values["grafana"]["persistence"]["enabled"] = False

    release = next(r for r in stack if r.kind == "Release" and "kube-prometheus-stack" in str(r.props.get("chart")))
    stack = [mutate(release, no_storage) if r is release else r for r in stack]
    monitoring = [r for r in stack if r.namespace == "monitoring" and r.kind in ("PersistentVolumeClaim", "Secret")]
    assert monitoring == [] and NAMESPACES(stack) == []


def test_a_stateful_set_with_claim_templates_makes_its_namespace_hold_data() -> None:
    namespace = with_options(first("prod", "Namespace", "gpu-operator"), protect=False)
    store = Resource(
        "kubernetes:apps/v1:StatefulSet",
        "store",
        {"kind": "StatefulSet", "metadata": {"name": "store", "namespace": "gpu-operator"},
         "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}]}},
    )  # fmt: skip
    assert NAMESPACES([namespace]) == []
    assert NAMESPACES([namespace, store]) == [
        "namespace gpu-operator: holds claims, Secrets or chart volumes but lacks the protect resource option"
    ]
