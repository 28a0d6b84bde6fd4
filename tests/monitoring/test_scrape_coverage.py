"""Every ServiceMonitor and PodMonitor the cluster will hold is picked up by our Prometheus.

The inventory: the monitors our charts create, derived from their values and templates (tests/monitoring/
chart_monitors.py names the template of each), the ones the GPU Operator's controller creates, and ours in
manifests.yaml. Each must match the Prometheus's serviceMonitorSelector / podMonitorSelector and its namespace
selector as kube-prometheus-stack renders them (templates/prometheus/prometheus.yaml at 85.2.0). A selected label
must be written exactly once: a duplicate YAML key only works with decoders that keep the last one.
"""

from __future__ import annotations

from typing import Any

import pytest

from testbed.stacks import STACKS, rendered
from tests.monitoring.chart_monitors import (
    CHARTS,
    Labels,
    Monitor,
    Unmodelled,
    coalesce,
    get,
    kps_labels,
    pairs,
    upstream,
)

PROMETHEUS_RELEASE = "kube-prometheus-stack"
KINDS = {"ServiceMonitor": "serviceMonitor", "PodMonitor": "podMonitor"}
# Names we expect in every stack, so a model that silently finds nothing cannot pass.
EXPECTED = {
    ("ServiceMonitor", "kube-prometheus-stack-kube-state-metrics"),
    ("ServiceMonitor", "kube-prometheus-stack-prometheus-node-exporter"),
    ("ServiceMonitor", "kube-prometheus-stack-grafana"),
    ("ServiceMonitor", "kube-prometheus-stack-prometheus"),
    ("ServiceMonitor", "kube-prometheus-stack-alertmanager"),
    ("ServiceMonitor", "kube-prometheus-stack-operator"),
    ("ServiceMonitor", "kube-prometheus-stack-kubelet"),
    ("ServiceMonitor", "kube-prometheus-stack-apiserver"),
    ("ServiceMonitor", "kube-prometheus-stack-coredns"),
    ("ServiceMonitor", "nvidia-dcgm-exporter"),
    ("ServiceMonitor", "gpu-operator"),
    ("ServiceMonitor", "gpu-operator-metrics"),
    ("ServiceMonitor", "llm-gateway"),
    ("ServiceMonitor", "envoy-gateway"),
    ("PodMonitor", "vllm"),
    ("PodMonitor", "envoy"),
}


def prometheus_values(stack: str) -> dict[str, Any]:
    release = rendered(stack).helm_releases[PROMETHEUS_RELEASE]
    return coalesce(upstream("kps-85.2.0_values.yaml"), release["values"])


def selectors(values: dict[str, Any], kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(monitor selector, namespace selector) as templates/prometheus/prometheus.yaml writes them."""
    spec = get(values, "prometheus.prometheusSpec") or {}
    key = KINDS[kind]
    selector = spec.get(f"{key}Selector")
    if not selector:
        nil_uses_helm = spec.get(f"{key}SelectorNilUsesHelmValues")
        selector = {"matchLabels": {"release": PROMETHEUS_RELEASE}} if nil_uses_helm else {}
    return selector, spec.get(f"{key}NamespaceSelector") or {}


def unmatched(selector: dict[str, Any], labels: Labels) -> str | None:
    """Why a Kubernetes label selector does not select these labels, or None when it does."""
    wanted = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    for key in {*wanted, *(e["key"] for e in expressions)}:
        written = [v for k, v in labels if k == key]
        if len(written) > 1:
            return f"label {key} written {len(written)} times {written} (duplicate YAML key)"
    flat = dict(labels)
    for key, value in wanted.items():
        if flat.get(key) != str(value):
            return f"label {key}={flat.get(key)!r}, the selector wants {value!r}"
    for e in expressions:
        present, values = e["key"] in flat, [str(v) for v in e.get("values") or []]
        ok = {
            "In": present and flat.get(e["key"]) in values,
            "NotIn": not present or flat.get(e["key"]) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[e["operator"]]
        if not ok:
            return f"label {e['key']}={flat.get(e['key'])!r} fails {e['operator']} {values}"
    return None


def namespace_labels(stack: str, namespace: str) -> Labels:
    """The namespace's labels: ours from manifests.yaml, plus the name label the API server sets on every one."""
    ours = [o for o in rendered(stack).manifests if o["kind"] == "Namespace" and o["metadata"]["name"] == namespace]
    labels = ours[0]["metadata"].get("labels") or {} if ours else {}
    return (*pairs(labels), ("kubernetes.io/metadata.name", namespace))


def manifest_monitors(stack: str) -> list[Monitor]:
    out = []
    for obj in rendered(stack).manifests:
        if obj["kind"] in KINDS:
            meta, spec = obj["metadata"], obj.get("spec") or {}
            endpoints = spec.get("endpoints") or spec.get("podMetricsEndpoints") or []
            summary = {"selector": spec.get("selector"), "ports": [e.get("port") for e in endpoints]}
            labels = pairs(meta.get("labels"))
            out.append(Monitor("manifests.yaml", obj["kind"], meta["name"], meta["namespace"], labels, spec=summary))
    return out


def inventory(stack: str) -> tuple[list[Monitor], list[Unmodelled]]:
    monitors: list[Monitor] = manifest_monitors(stack)
    unmodelled: list[Unmodelled] = []
    for release_name, release in rendered(stack).helm_releases.items():
        if release_name not in CHARTS:
            unmodelled.append(Unmodelled(f"Helm release {release_name}", "no model of its monitor templates"))
            continue
        for found in CHARTS[release_name](release):
            if isinstance(found, Monitor):
                monitors.append(found)
            else:
                unmodelled.append(found)
    return monitors, unmodelled


def why_not_selected(stack: str, monitor: Monitor) -> str | None:
    selector, namespace_selector = selectors(prometheus_values(stack), monitor.kind)
    reason = unmatched(namespace_selector, namespace_labels(stack, monitor.namespace))
    if reason:
        return f"namespace {monitor.namespace} not selected: {reason}"
    return unmatched(selector, monitor.labels)


def replaced(stack: str, monitor: Monitor, selected: list[Monitor]) -> bool:
    """A monitor with fixed labels is covered by a selected one of ours scraping the same Service ports."""
    return any(
        other.source == "manifests.yaml"
        and (other.kind, other.namespace) == (monitor.kind, monitor.namespace)
        and other.spec["selector"] == monitor.spec["selector"]
        and set(monitor.spec["ports"]) <= set(other.spec["ports"])
        for other in selected
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_monitor_is_selected_by_our_prometheus(stack: str) -> None:
    assert PROMETHEUS_RELEASE in rendered(stack).helm_releases, "monitoring is on in every stack"
    monitors, unmodelled = inventory(stack)
    assert not unmodelled, [f"{u.source}: {u.switch} is on and not modelled" for u in unmodelled]
    reasons = {m: why_not_selected(stack, m) for m in monitors}
    selected = [m for m, reason in reasons.items() if reason is None]
    failures = [
        f"{m.kind} {m.namespace}/{m.name} ({m.source}): {reason}"
        for m, reason in reasons.items()
        if reason is not None and not (m.fixed_labels and replaced(stack, m, selected))
    ]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("stack", STACKS)
def test_the_inventory_finds_every_expected_monitor(stack: str) -> None:
    monitors, _ = inventory(stack)
    found = {(m.kind, m.name) for m in monitors}
    assert found >= EXPECTED, sorted(EXPECTED - found)
    assert len(found) == len(monitors), "two monitors share a kind and name"


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_does_not_select_every_monitor_in_the_cluster(stack: str) -> None:
    """A label selector, not `{}`: other teams' monitors stay theirs (and an unlabelled monitor is not picked)."""
    values = prometheus_values(stack)
    for kind in KINDS:
        selector, _ = selectors(values, kind)
        assert unmatched(selector, ()) is not None, f"{kind} selector {selector} selects unlabelled monitors"
    rule_selector = get(values, "prometheus.prometheusSpec.ruleSelector") or {}
    assert unmatched(rule_selector, ()) is not None, f"ruleSelector {rule_selector} selects every PrometheusRule"


@pytest.mark.parametrize("stack", STACKS)
def test_our_prometheus_rules_are_selected(stack: str) -> None:
    values = prometheus_values(stack)
    rule_selector = get(values, "prometheus.prometheusSpec.ruleSelector") or {}
    rules = [o for o in rendered(stack).manifests if o["kind"] == "PrometheusRule"]
    assert rules
    for rule in rules:
        assert unmatched(rule_selector, pairs(rule["metadata"].get("labels"))) is None, rule["metadata"]["name"]
    # kube-prometheus-stack's default rules carry its labels (commonLabels included) and defaultRules.labels.
    default_rules = (*kps_labels(values, PROMETHEUS_RELEASE), *pairs(get(values, "defaultRules.labels")))
    assert unmatched(rule_selector, default_rules) is None
