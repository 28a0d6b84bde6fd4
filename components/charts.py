"""Pinned third-party Helm charts (charts/versions.yaml) and their base values (charts/<name>/values.yaml)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

# Re-exported: the components and tests read the pins from here.
from components.chart_pins import CHARTS_DIR as CHARTS_DIR
from components.chart_pins import chart_pin as chart_pin

# Helm waits for every release to be ready (atomic: rolled back otherwise); kube-prometheus-stack with its
# CRDs, volumes and admission webhooks takes minutes on a fresh cluster.
RELEASE_TIMEOUT_SECONDS = 900


def base_values(name: str) -> dict[str, Any]:
    path = CHARTS_DIR / name / "values.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def merge_values(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, everything else is replaced."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def helm_release(
    name: str, overrides: dict[str, Any], opts: pulumi.ResourceOptions, namespace: str | None = None
) -> k8s.helm.v3.Release:
    """A helm.v3.Release of a pinned chart (hooks run, `helm` sees it) with base values + overrides."""
    pin = chart_pin(name)
    oci = pin.repo.startswith("oci://")
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=f"{pin.repo}/{pin.chart}" if oci else pin.chart,
        version=pin.version,
        repository_opts=None if oci else k8s.helm.v3.RepositoryOptsArgs(repo=pin.repo),
        namespace=namespace or pin.namespace,
        values=merge_values(base_values(name), overrides),
        atomic=True,
        timeout=RELEASE_TIMEOUT_SECONDS,
        opts=opts,
    )


def chart_namespace(
    resource_name: str, chart: str, pod_security: str, parent: pulumi.Resource, protect: bool = False
) -> k8s.core.v1.Namespace:
    """The namespace a pinned chart installs into, with the Pod Security level its pods need; `protect` for one
    that holds data (deleting a namespace deletes its volumes' claims)."""
    return k8s.core.v1.Namespace(
        resource_name,
        metadata={
            "name": chart_pin(chart).namespace,
            "labels": {"pod-security.kubernetes.io/enforce": pod_security},
        },
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
