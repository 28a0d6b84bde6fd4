"""The ServiceMonitors and PodMonitors our Helm charts (and the GPU Operator's controller) will create, with the
labels their templates write, derived from the charts' values: upstream defaults (tests/monitoring/upstream/, see
SOURCES.txt there) coalesced with the values we pass (what `--render` writes to helm/<release>.yaml).

Each template's label logic is transcribed below with its path at the pinned tag. Labels are kept as a list of
(key, value) in the order the template writes them, so a key written twice (a duplicate YAML mapping key, which
only lenient decoders accept, keeping the last) stays visible to the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

UPSTREAM = Path(__file__).with_name("upstream")
Labels = tuple[tuple[str, str], ...]
Values = dict[str, Any]


@dataclass(frozen=True)
class Monitor:
    source: str  # chart and template path at the pinned tag, or manifests.yaml
    kind: str  # ServiceMonitor | PodMonitor
    name: str
    namespace: str
    labels: Labels
    # Monitors whose labels no value can set (the GPU Operator's own) are covered when a selected monitor of ours
    # scrapes the same Service port; their selector and ports are kept for that comparison.
    fixed_labels: bool = False
    spec: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Unmodelled:
    """A values switch turns on a monitor whose template the model does not transcribe: the test must fail."""

    source: str
    switch: str


def upstream(file_name: str) -> Values:
    values: Values = yaml.safe_load((UPSTREAM / file_name).read_text())
    return values


def coalesce(base: Values, over: Values) -> Values:
    """Helm's values coalescing: maps merge key by key, other values replace, null deletes the key."""
    merged = dict(base)
    for key, value in over.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = coalesce(merged[key], value)
        else:
            merged[key] = value
    return merged


def get(values: Values, path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def pairs(mapping: Any) -> Labels:
    return tuple((str(k), str(v)) for k, v in (mapping or {}).items())


def fullname(name: str, release: str, values: Values) -> str:
    """The `<chart>.fullname` helper every one of these charts shares."""
    if values.get("fullnameOverride"):
        return str(values["fullnameOverride"])
    return release if name in release else f"{release}-{name}"


# --- kube-prometheus-stack 85.2.0 (prometheus-community/helm-charts @ kube-prometheus-stack-85.2.0) ---------------
KPS = "kube-prometheus-stack/charts/kube-prometheus-stack/templates/"
KPS_VERSION = "85.2.0"
K8S_MONITORS = "kubernetesServiceMonitors.enabled"


@dataclass(frozen=True)
class KpsTemplate:
    path: str
    switches: tuple[str, ...]  # all must be true (the template's `if and ...`)
    additional_labels: str
    suffix: str  # name = <fullname>-<suffix>; label app = <name>-<suffix>


KPS_SERVICE_MONITORS = (
    KpsTemplate(
        "alertmanager/servicemonitor.yaml",
        ("alertmanager.enabled", "alertmanager.serviceMonitor.selfMonitor"),
        "alertmanager.serviceMonitor.additionalLabels",
        "alertmanager",
    ),
    KpsTemplate(
        "prometheus/servicemonitor.yaml",
        ("prometheus.enabled", "prometheus.serviceMonitor.selfMonitor"),
        "prometheus.serviceMonitor.additionalLabels",
        "prometheus",
    ),
    KpsTemplate(
        "prometheus/servicemonitorThanosSidecar.yaml",
        ("prometheus.thanosService.enabled", "prometheus.thanosServiceMonitor.enabled"),
        "prometheus.thanosServiceMonitor.additionalLabels",
        "thanos-sidecar",
    ),
    *(
        KpsTemplate(
            f"exporters/{directory}/servicemonitor.yaml",
            (f"{key}.enabled", f"{key}.serviceMonitor.enabled", K8S_MONITORS),
            f"{key}.serviceMonitor.additionalLabels",
            suffix,
        )
        for directory, key, suffix in (
            ("core-dns", "coreDns", "coredns"),
            ("kube-api-server", "kubeApiServer", "apiserver"),
            ("kube-controller-manager", "kubeControllerManager", "kube-controller-manager"),
            ("kube-etcd", "kubeEtcd", "kube-etcd"),
            ("kube-proxy", "kubeProxy", "kube-proxy"),
            ("kube-scheduler", "kubeScheduler", "kube-scheduler"),
            ("kubelet", "kubelet", "kubelet"),
        )
    ),
    # kube-dns has no serviceMonitor.enabled switch.
    KpsTemplate(
        "exporters/kube-dns/servicemonitor.yaml",
        ("kubeDns.enabled", K8S_MONITORS),
        "kubeDns.serviceMonitor.additionalLabels",
        "kube-dns",
    ),
)


def kps_labels(values: Values, release: str) -> Labels:
    """_helpers.tpl `kube-prometheus-stack.labels`: fixed labels, then commonLabels appended as text."""
    name = values.get("nameOverride") or "kube-prometheus-stack"
    return (
        ("app.kubernetes.io/managed-by", "Helm"),
        ("app.kubernetes.io/instance", release),
        ("app.kubernetes.io/version", KPS_VERSION),
        ("app.kubernetes.io/part-of", name),
        ("chart", f"kube-prometheus-stack-{KPS_VERSION}"),
        ("release", release),
        ("heritage", "Helm"),
        *pairs(values.get("commonLabels")),
    )


def kps_monitors(values: Values, release: str, namespace: str) -> list[Monitor | Unmodelled]:
    name = values.get("nameOverride") or "kube-prometheus-stack"
    full = fullname("kube-prometheus-stack", release, values)[:26].rstrip("-")
    ns = values.get("namespaceOverride") or namespace
    common = kps_labels(values, release)
    out: list[Monitor | Unmodelled] = []
    if get(values, "prometheus.prometheusSpec.ignoreNamespaceSelectors"):
        # Exporter monitors then move to kube-system/default; not transcribed.
        out.append(
            Unmodelled(KPS + "exporters/*/servicemonitor.yaml", "prometheus.prometheusSpec.ignoreNamespaceSelectors")
        )
    for t in KPS_SERVICE_MONITORS:
        if all(get(values, s) for s in t.switches):
            labels = (("app", f"{name}-{t.suffix}"), *common, *pairs(get(values, t.additional_labels)))
            out.append(Monitor(KPS + t.path, "ServiceMonitor", f"{full}-{t.suffix}", ns, labels))
    if get(values, "prometheusOperator.enabled") and get(values, "prometheusOperator.serviceMonitor.selfMonitor"):
        # prometheus-operator/_prometheus-operator.tpl `kube-prometheus-stack.prometheus-operator.labels`.
        labels = (
            *common,
            ("app", f"{name}-operator"),
            ("app.kubernetes.io/name", f"{name}-prometheus-operator"),
            ("app.kubernetes.io/component", "prometheus-operator"),
            *pairs(get(values, "prometheusOperator.serviceMonitor.additionalLabels")),
        )
        path = KPS + "prometheus-operator/servicemonitor.yaml"
        out.append(Monitor(path, "ServiceMonitor", f"{full}-operator", ns, labels))
    if get(values, "thanosRuler.enabled") and get(values, "thanosRuler.serviceMonitor.selfMonitor"):
        ruler = get(values, "thanosRuler.name") or f"{name}-thanos-ruler"
        labels = (("app", ruler), *common, *pairs(get(values, "thanosRuler.serviceMonitor.additionalLabels")))
        out.append(Monitor(KPS + "thanos-ruler/servicemonitor.yaml", "ServiceMonitor", ruler, ns, labels))
    if get(values, "prometheus.enabled"):
        for kind, key in (("ServiceMonitor", "additionalServiceMonitors"), ("PodMonitor", "additionalPodMonitors")):
            path = KPS + f"prometheus/{key.removeprefix('additional').lower()}.yaml"
            for item in get(values, f"prometheus.{key}") or []:
                labels = (("app", f"{name}-prometheus"), *common, *pairs(item.get("additionalLabels")))
                out.append(Monitor(path, kind, item["name"], ns, labels))
    if get(values, "windowsMonitoring.enabled"):
        out.append(
            Unmodelled("prometheus-windows-exporter (kube-prometheus-stack subchart)", "windowsMonitoring.enabled")
        )
    return out


# --- kube-state-metrics 7.3.0 (prometheus-community/helm-charts @ kube-state-metrics-7.3.0) ------------------------
def ksm_monitors(values: Values, release: str, namespace: str) -> list[Monitor | Unmodelled]:
    """charts/kube-state-metrics/templates/servicemonitor.yaml: `kube-state-metrics.labels`, then
    prometheus.monitor.additionalLabels."""
    source = "kube-state-metrics/charts/kube-state-metrics/templates/servicemonitor.yaml"
    out: list[Monitor | Unmodelled] = []
    if get(values, "prometheus.scrapeconfig.enabled"):
        out.append(Unmodelled("kube-state-metrics templates/scrapeconfig.yaml", "prometheus.scrapeconfig.enabled"))
    if not get(values, "prometheus.monitor.enabled"):
        return out
    name = values.get("nameOverride") or "kube-state-metrics"
    selector = pairs(values.get("selectorOverride")) or (
        ("app.kubernetes.io/name", name),
        ("app.kubernetes.io/instance", release),
    )
    labels = (
        ("helm.sh/chart", "kube-state-metrics-7.3.0"),
        ("app.kubernetes.io/managed-by", "Helm"),
        ("app.kubernetes.io/component", "metrics"),
        ("app.kubernetes.io/part-of", name),
        *selector,
        ("app.kubernetes.io/version", "2.18.0"),
        *pairs(values.get("customLabels")),
        *((("release", release),) if values.get("releaseLabel") else ()),
        *pairs(get(values, "prometheus.monitor.additionalLabels")),
    )
    ns = values.get("namespaceOverride") or namespace
    out.append(Monitor(source, "ServiceMonitor", fullname(name, release, values), ns, labels))
    return out


# --- prometheus-node-exporter 4.55.0 (prometheus-community/helm-charts @ prometheus-node-exporter-4.55.0) -----------
def node_exporter_monitors(values: Values, release: str, namespace: str) -> list[Monitor | Unmodelled]:
    """templates/servicemonitor.yaml and podmonitor.yaml: `prometheus-node-exporter.labels`, then the monitor's
    additionalLabels."""
    source = "prometheus-node-exporter/charts/prometheus-node-exporter/templates/"
    name = values.get("nameOverride") or "prometheus-node-exporter"
    common = (
        ("helm.sh/chart", "prometheus-node-exporter-4.55.0"),
        ("app.kubernetes.io/managed-by", "Helm"),
        ("app.kubernetes.io/component", "metrics"),
        ("app.kubernetes.io/part-of", name),
        ("app.kubernetes.io/name", name),
        ("app.kubernetes.io/instance", release),
        ("app.kubernetes.io/version", "1.11.1"),
        *pairs(values.get("commonLabels")),
        *((("release", release),) if values.get("releaseLabel") else ()),
    )
    out: list[Monitor | Unmodelled] = []
    for kind, key, template in (
        ("ServiceMonitor", "monitor", "servicemonitor.yaml"),
        ("PodMonitor", "podMonitor", "podmonitor.yaml"),
    ):
        monitor = get(values, f"prometheus.{key}") or {}
        if monitor.get("enabled"):
            ns = monitor.get("namespace") or values.get("namespaceOverride") or namespace
            labels = (*common, *pairs(monitor.get("additionalLabels")))
            out.append(Monitor(source + template, kind, fullname(name, release, values), ns, labels))
    return out


# --- grafana 12.3.3 (grafana-community/helm-charts @ grafana-12.3.3) -----------------------------------------------
def grafana_monitors(values: Values, release: str, namespace: str) -> list[Monitor | Unmodelled]:
    """templates/servicemonitor.yaml: `release`, `grafana.labels` (with extraLabels), then serviceMonitor.labels;
    templates/image-renderer-servicemonitor.yaml: `grafana.imageRenderer.labels`, then its serviceMonitor.labels."""
    source = "grafana/charts/grafana/templates/"
    name = values.get("nameOverride") or "grafana"
    full = fullname("grafana", release, values)
    version = (("app.kubernetes.io/version", str(get(values, "image.tag") or "13.0.1-security-01")),)
    chart = (("helm.sh/chart", "grafana-12.3.3"),)
    out: list[Monitor | Unmodelled] = []
    if get(values, "serviceMonitor.enabled"):
        labels = (
            ("release", release),
            *chart,
            ("app.kubernetes.io/name", name),
            ("app.kubernetes.io/instance", release),
            *version,
            *pairs(values.get("extraLabels")),
            *pairs(get(values, "serviceMonitor.labels")),
        )
        ns = get(values, "serviceMonitor.namespace") or values.get("namespaceOverride") or namespace
        out.append(Monitor(source + "servicemonitor.yaml", "ServiceMonitor", full, ns, labels))
    if get(values, "imageRenderer.enabled") and get(values, "imageRenderer.serviceMonitor.enabled"):
        labels = (
            *chart,
            ("app.kubernetes.io/name", f"{name}-image-renderer"),
            ("app.kubernetes.io/instance", release),
            *version,
            *pairs(get(values, "imageRenderer.serviceMonitor.labels")),
        )
        ns = get(values, "imageRenderer.serviceMonitor.namespace") or values.get("namespaceOverride") or namespace
        path = source + "image-renderer-servicemonitor.yaml"
        out.append(Monitor(path, "ServiceMonitor", f"{full}-image-renderer", ns, labels))
    return out


def kube_prometheus_stack(release: dict[str, Any]) -> list[Monitor | Unmodelled]:
    """The chart's own monitors and its subcharts' (each subchart reads the section named after it)."""
    name, namespace = "kube-prometheus-stack", str(release["namespace"])
    values = coalesce(upstream("kps-85.2.0_values.yaml"), release["values"])
    out = kps_monitors(values, name, namespace)
    subcharts: tuple[tuple[str, str, str, Callable[[Values, str, str], list[Monitor | Unmodelled]]], ...] = (
        ("kubeStateMetrics.enabled", "kube-state-metrics", "kube-state-metrics-7.3.0_values.yaml", ksm_monitors),
        (
            "nodeExporter.enabled",
            "prometheus-node-exporter",
            "prometheus-node-exporter-4.55.0_values.yaml",
            node_exporter_monitors,
        ),
        ("grafana.enabled", "grafana", "grafana-12.3.3_values.yaml", grafana_monitors),
    )
    for switch, key, defaults, monitors in subcharts:
        if get(values, switch):
            out += monitors(coalesce(upstream(defaults), values.get(key) or {}), name, namespace)
    return out


# --- GPU Operator v25.10.1 (NVIDIA/gpu-operator @ v25.10.1) --------------------------------------------------------
# Not Helm templates: the operator's controller creates these from assets/ (controllers/object_controls.go,
# `ServiceMonitor`), in its own namespace, once the ServiceMonitor CRD exists.
GPU_OPERATOR = "gpu-operator/"


def gpu_operator(release: dict[str, Any]) -> list[Monitor | Unmodelled]:
    values = coalesce(upstream("gpu-operator-v25.10.1_values.yaml"), release["values"])
    ns = str(release["namespace"])
    out: list[Monitor | Unmodelled] = []
    dcgm = get(values, "dcgmExporter.serviceMonitor") or {}
    if get(values, "dcgmExporter.enabled") and dcgm.get("enabled"):
        # The controller copies additionalLabels into the object's label map (a Go map: no duplicate keys).
        labels = pairs({"app": "nvidia-dcgm-exporter", **(dcgm.get("additionalLabels") or {})})
        source = GPU_OPERATOR + "assets/state-dcgm-exporter/0500_service_monitor.yaml"
        out.append(Monitor(source, "ServiceMonitor", "nvidia-dcgm-exporter", ns, labels))
    # state-operator-metrics is always enabled (controllers/state_manager.go isStateEnabled); its labels are fixed.
    out.append(
        Monitor(
            GPU_OPERATOR + "assets/state-operator-metrics/0300_service_monitor.yaml",
            "ServiceMonitor",
            "gpu-operator",
            ns,
            (("app", "gpu-operator"),),
            fixed_labels=True,
            spec={"selector": {"matchLabels": {"app": "gpu-operator"}}, "ports": ["gpu-operator-metrics"]},
        )
    )
    if get(values, "nodeStatusExporter.enabled"):
        out.append(
            Monitor(
                GPU_OPERATOR + "assets/state-node-status-exporter/0600_service_monitor.yaml",
                "ServiceMonitor",
                "nvidia-node-status-exporter",
                ns,
                (("app", "nvidia-node-status-exporter"),),
                fixed_labels=True,
                spec={"selector": {"matchLabels": {"app": "nvidia-node-status-exporter"}}, "ports": ["node-status"]},
            )
        )
    return out


# --- charts with no monitor template at our values -----------------------------------------------------------------
def lws(release: dict[str, Any]) -> list[Monitor | Unmodelled]:
    """kubernetes-sigs/lws v0.8.0 charts/lws/templates/prometheus/monitor.yaml renders only with enablePrometheus."""
    values = coalesce(upstream("lws-v0.8.0_values.yaml"), release["values"])
    return (
        [Unmodelled("lws templates/prometheus/monitor.yaml", "enablePrometheus")]
        if values.get("enablePrometheus")
        else []
    )


def no_monitor_templates(release: dict[str, Any]) -> list[Monitor | Unmodelled]:
    """gateway-helm v1.9 (envoyproxy/gateway charts/gateway-helm/templates) and prometheus-adapter 5.3.0 have no
    ServiceMonitor or PodMonitor template; the Envoy control plane and proxies are scraped by our own monitors."""
    return []


CHARTS: dict[str, Callable[[dict[str, Any]], list[Monitor | Unmodelled]]] = {
    "kube-prometheus-stack": kube_prometheus_stack,
    "gpu-operator": gpu_operator,
    "lws": lws,
    "gateway-helm": no_monitor_templates,
    "prometheus-adapter": no_monitor_templates,
}
