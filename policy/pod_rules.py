"""Pod hardening rules: every pod the stack defines runs under Pod Security `restricted` in a namespace that
enforces it, without service links, and with an API token only when a role of the stack needs one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pod_security import restricted_violations
from stack_resources import Resource, is_workload, pod_templates, where

from components.labels import PART_OF_LABEL, PROJECT

ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
BINDING_KINDS = ("RoleBinding", "ClusterRoleBinding")


def pods_are_restricted(resource: Resource) -> list[str]:
    """Every pod the stack defines passes Pod Security `restricted` (Kubernetes 1.31; policy/pod_security.py).

    Charts' pods are the charts' own, in namespaces with their own level; whatever the stack writes itself runs in
    the serving namespace, which enforces `restricted`."""
    violations = []
    for role, template in pod_templates(resource):
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        for message in restricted_violations(template.get("spec") or {}, annotations):
            violations.append(f"{where(resource, role)}: {message}")
    return violations


def pods_have_no_service_links(resource: Resource) -> list[str]:
    """enableServiceLinks: false, so no Service's name (a model named `vllm`) turns into VLLM_* variables."""
    return [
        f"{where(resource, role)}: set enableServiceLinks: false (Services would inject *_PORT/*_HOST variables)"
        for role, template in pod_templates(resource)
        if (template.get("spec") or {}).get("enableServiceLinks") is not False
    ]


def _bound_accounts(resources: list[Resource]) -> set[tuple[str, str]]:
    """(namespace, name) of the service accounts a RoleBinding or ClusterRoleBinding of the stack binds."""
    bound = set()
    for binding in (r for r in resources if r.kind in BINDING_KINDS):
        for subject in binding.props.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                bound.add((str(subject.get("namespace") or binding.namespace), str(subject.get("name"))))
    return bound


def _mounts_token(spec: Mapping[str, Any], account: Mapping[str, Any]) -> bool:
    """The pod's own automountServiceAccountToken wins over its service account's; both unset mounts the token."""
    own = spec.get("automountServiceAccountToken")
    return (account.get("automountServiceAccountToken") if own is None else own) is not False


def api_tokens_only_for_bound_accounts(resources: list[Resource]) -> list[str]:
    """A pod mounts a service-account token only when its own service account is bound to a role of the stack
    (vllm-router's service discovery); every other pod sets automountServiceAccountToken: false."""
    accounts = {(r.namespace, r.object_name): r.props for r in resources if r.kind == "ServiceAccount"}
    bound = _bound_accounts(resources)
    violations = []
    for resource in resources:
        for role, template in pod_templates(resource):
            spec = template.get("spec") or {}
            name = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
            key = (resource.namespace, name)
            if not _mounts_token(spec, accounts.get(key) or {}) or (name != "default" and key in bound):
                continue
            violations.append(
                f"{where(resource, role)}: mounts the API token of service account {name!r}, which no role of the "
                "stack needs; set automountServiceAccountToken: false"
            )
    return violations


def serving_namespace_enforces_restricted(resources: list[Resource]) -> list[str]:
    """The namespaces the stack's own pods run in, and any Namespace labelled part-of llm-cluster, enforce
    Pod Security `restricted`."""
    serving = {r.namespace for r in resources if r.namespace and is_workload(r)}
    violations = []
    for namespace in (r for r in resources if r.kind == "Namespace"):
        if namespace.object_name not in serving and namespace.labels.get(PART_OF_LABEL) != PROJECT:
            continue
        level = namespace.labels.get(ENFORCE_LABEL)
        if level != "restricted":
            violations.append(
                f"namespace {namespace.object_name}: enforces Pod Security {level or 'nothing'}, not restricted; "
                f"set {ENFORCE_LABEL}: restricted"
            )
    return violations
