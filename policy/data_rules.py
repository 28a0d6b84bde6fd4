"""Data-safety rules: claims, and namespaces holding claims, Secrets or chart volumes, carry Pulumi's `protect`
option, so no edit deletes or replaces them (and their weights, metrics or operator Secrets) unannounced.

The option comes from the resource's options, not its inputs: CrossGuard's `ResourceValidationArgs.opts.protect`
(it has no retainOnDelete), or the offline run's Registration.options["protect"].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stack_resources import HELM_RELEASE, Resource

# Kinds whose objects are data: deleting them (or their namespace) loses it.
DATA_KINDS = ("PersistentVolumeClaim", "Secret")
# Chart values that give a release's pods volumes claimed in its namespace (Prometheus storageSpec,
# Alertmanager storage, StatefulSet-style volumeClaimTemplate(s)); `persistence` counts when enabled.
STORAGE_KEYS = frozenset({"storageSpec", "storage", "volumeClaimTemplate", "volumeClaimTemplates"})


def _protected(resource: Resource) -> bool:
    return bool(resource.options.get("protect"))


def claims_are_protected(resource: Resource) -> list[str]:
    """PersistentVolumeClaims are created with `protect`: deleting or replacing one deletes its data."""
    if resource.kind == "PersistentVolumeClaim" and not _protected(resource):
        return [
            f"{resource.object_name}: PersistentVolumeClaim without the protect resource option; a replacement or "
            "deletion would delete its volume"
        ]
    return []


def _declares_storage(values: Any) -> bool:
    """Whether chart values (at any depth) give pods claimed volumes."""
    if isinstance(values, Mapping):
        for key, value in values.items():
            if key in STORAGE_KEYS and value:
                return True
            if key == "persistence" and isinstance(value, Mapping) and value.get("enabled"):
                return True
            if _declares_storage(value):
                return True
    elif isinstance(values, Sequence) and not isinstance(values, str):
        return any(_declares_storage(v) for v in values)
    return False


def _namespaces_holding_data(resources: list[Resource]) -> set[str]:
    holding = {r.namespace for r in resources if r.kind in DATA_KINDS and r.namespace}
    holding |= {
        r.namespace
        for r in resources
        if r.kind == "StatefulSet" and (r.props.get("spec") or {}).get("volumeClaimTemplates")
    }
    holding |= {
        str(r.props.get("namespace"))
        for r in resources
        if r.type == HELM_RELEASE and r.props.get("namespace") and _declares_storage(r.props.get("values"))
    }
    return holding


def namespaces_holding_data_are_protected(resources: list[Resource]) -> list[str]:
    """Namespaces the stack creates that hold claims, Secrets or chart volumes are created with `protect`:
    deleting a namespace deletes everything in it."""
    holding = _namespaces_holding_data(resources)
    return [
        f"namespace {r.object_name}: holds claims, Secrets or chart volumes but lacks the protect resource option"
        for r in resources
        if r.kind == "Namespace" and r.object_name in holding and not _protected(r)
    ]
