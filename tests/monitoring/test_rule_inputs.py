"""The promtool tests feed the rules series labelled as the real exporters label them after our scrape config, so
a rule that joins or groups on a label the exporter does not produce fails there, not in production.

- kube-state-metrics 2.18.0 (chart 7.3.0) through kube-prometheus-stack's ServiceMonitor: job from the Service's
  app.kubernetes.io/name, target labels service/endpoint/instance/namespace/pod/container; honorLabels keeps the
  metric's own namespace/pod/container (a deployment's, a pod's) and the target's fill in where it has none
  (kube_node_* carry namespace="monitoring" and the exporter's pod).
- DCGM exporter 4.4.2-4.7.0 (GPU Operator v25.10.1): gpu, UUID, pci_bus_id, device, modelName, Hostname (the
  node, from NODE_NAME), DCGM_FI_DRIVER_VERSION (a `label` field of dcp-metrics-included.csv), and pod attribution
  (namespace, pod, container, pod_uid) kept by honorLabels; an idle GPU has the exporter pod's target labels.
- kubelet through kube-prometheus-stack's kubelet ServiceMonitor (honorLabels, metrics_path, node).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.monitoring.test_rules import UNIT_TESTS

TARGET = {"job", "instance", "service", "endpoint"}
REQUIRED: dict[str, tuple[set[str], dict[str, str]]] = {
    "kube_": (
        TARGET | {"namespace", "pod", "container"},
        {"job": "kube-state-metrics", "service": "kube-prometheus-stack-kube-state-metrics", "endpoint": "http"},
    ),
    "DCGM_": (
        TARGET
        | {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"}
        | {"namespace", "pod", "container"},
        {"job": "nvidia-dcgm-exporter", "service": "nvidia-dcgm-exporter", "endpoint": "gpu-metrics"},
    ),
    "kubelet_": (
        TARGET | {"metrics_path", "node", "namespace"},
        {"job": "kubelet", "service": "kube-prometheus-stack-kubelet", "endpoint": "https-metrics"},
    ),
}
# The metric's own labels (kube-state-metrics docs/metrics at v2.18.0).
OWN_LABELS = {
    "kube_deployment_status_replicas_available": {"namespace", "deployment"},
    "kube_deployment_spec_replicas": {"namespace", "deployment"},
    "kube_deployment_labels": {"namespace", "deployment"},
    "kube_horizontalpodautoscaler_status_current_replicas": {"namespace", "horizontalpodautoscaler"},
    "kube_horizontalpodautoscaler_spec_max_replicas": {"namespace", "horizontalpodautoscaler"},
    "kube_node_status_capacity": {"node", "resource", "unit"},
    "kube_node_status_allocatable": {"node", "resource", "unit"},
    "kube_node_labels": {"node"},
    "kube_pod_container_resource_requests": {"namespace", "pod", "uid", "container", "node", "resource", "unit"},
}
SERIES = re.compile(r"^(?P<name>[A-Za-z_:][\w:]*)\{(?P<labels>.*)\}$", re.S)
LABEL = re.compile(r'(\w+)="([^"]*)"')


def input_series() -> Iterator[tuple[str, dict[str, str]]]:
    doc: dict[str, Any] = yaml.safe_load(UNIT_TESTS.read_text())
    for test in doc["tests"]:
        for series in test.get("input_series", []):
            match = SERIES.match(series["series"].strip())
            assert match, series["series"]
            yield match["name"], dict(LABEL.findall(match["labels"]))


def exporter_series() -> list[tuple[str, dict[str, str]]]:
    return [(n, labels) for n, labels in input_series() if n.startswith(tuple(REQUIRED))]


def test_the_unit_tests_feed_exporter_series() -> None:
    names = {name for name, _ in exporter_series()}
    assert {"kube_node_labels", "kube_deployment_status_replicas_available", "DCGM_FI_DEV_XID_ERRORS"} <= names


@pytest.mark.parametrize(("name", "labels"), exporter_series(), ids=lambda v: v if isinstance(v, str) else "")
def test_series_carry_the_exporters_labels(name: str, labels: dict[str, str]) -> None:
    prefix = next(p for p in REQUIRED if name.startswith(p))
    required, fixed = REQUIRED[prefix]
    assert required <= labels.keys(), f"{name} lacks {sorted(required - labels.keys())}"
    assert {k: labels[k] for k in fixed} == fixed
    assert OWN_LABELS.get(name, set()) <= labels.keys(), f"{name} lacks {sorted(OWN_LABELS[name] - labels.keys())}"
    if name.startswith("kube_node_"):
        # No namespace of its own: the ServiceMonitor target's (kube-state-metrics' namespace) fills it.
        assert labels["namespace"] == "monitoring"
    if "gpu" in labels.get("resource", ""):
        # Extended resources: name sanitised (nvidia.com/gpu, nvidia.com/gpu.shared), unit integer
        # (internal/store/node.go, pod.go).
        assert labels["resource"] in ("nvidia_com_gpu", "nvidia_com_gpu_shared") and labels["unit"] == "integer"
    if name.startswith("kube_node_labels"):
        assert all(k.startswith("label_") for k in labels.keys() - required - {"node"}), labels
