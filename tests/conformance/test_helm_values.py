"""Every value we pass to a pinned Helm chart must be one the chart knows.

A leaf path we set in `values` (helm/<release>.yaml of every stack) must exist in the chart's own values.yaml at the
pinned version, or in a subchart's values.yaml under its alias (kube-prometheus-stack's `grafana`, ...), or be read by
a template (TEMPLATE_READS, each verified in the template at the pinned tag). Helm ignores anything else silently.
Below an empty map or list, or a map the chart passes through verbatim (FREE_FORM), any key is accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.charts import CHARTS_DIR
from testbed.renders import helm_releases
from tests.conformance import crds

Path_ = tuple[str, ...]
# Release -> (version the vendored files are for, {subchart alias or "" for the chart itself: vendored values file}).
CHART_VALUES: dict[str, tuple[str, dict[str, str]]] = {
    "gpu-operator": ("v25.10.1", {"": "gpu-operator-v25.10.1_values.yaml"}),
    "kube-prometheus-stack": ("85.2.0", {
        "": "kps-85.2.0_values.yaml",
        "crds": "kps-85.2.0_crds_values.yaml",
        "grafana": "grafana-12.3.3_values.yaml",  # kps 85.2.0 Chart.yaml dependencies
        "kube-state-metrics": "kube-state-metrics-7.3.0_values.yaml",
        "prometheus-node-exporter": "prometheus-node-exporter-4.55.0_values.yaml",
    }),
    "prometheus-adapter": ("5.3.0", {"": "prometheus-adapter-5.3.0_values.yaml"}),
    "lws": ("0.8.0", {"": "lws-v0.8.0_values.yaml"}),
    # v1.9.3's files are not in the store; v1.9.1..v1.9.3 changed no chart values (upstream/SOURCES.txt).
    "gateway-helm": ("v1.9.3", {"": "envoy-gateway-v1.9.0_gateway-helm_values.tmpl.yaml"}),
}  # fmt: skip
# Paths values.yaml leaves out (or only mentions in a comment) that a template reads, with the template that reads it.
TEMPLATE_READS: dict[tuple[str, str], str] = {
    ("kube-prometheus-stack", "grafana.persistence.storageClassName"):
        "grafana-12.3.3 charts/grafana/templates/pvc.yaml (`with .Values.persistence.storageClassName`) and "
        "templates/statefulset.yaml; values.yaml has it only as `# storageClassName: default`",
    ("kube-prometheus-stack", "grafana.persistence.annotations.helm.sh/resource-policy"):
        "grafana-12.3.3 charts/grafana/templates/pvc.yaml (`with .Values.persistence.annotations`, toYaml into the "
        "claim's metadata); values.yaml has it only as `# annotations: {}`",
    **{("gateway-helm", f"config.envoyGateway.rateLimit.{leaf}"):
        "envoy-gateway v1.9.0 charts/gateway-helm/templates/envoy-gateway-config.yaml (merges .Values.config."
        "envoyGateway over the chart's defaults and writes it, toYaml, as the EnvoyGateway config); values.tmpl.yaml "
        "sets no rateLimit. Each key is checked against Envoy Gateway's own decoder input in "
        "tests/conformance/test_rate_limit_conformance.py"
       for leaf in ("backend.type", "backend.redis.url", "failClosed")},
}  # fmt: skip
# Keys whose value a chart hands to Kubernetes verbatim (toYaml): any key below them is the API's business, not the
# chart's (the manifests' own schema tests cover what reaches the cluster).
FREE_FORM = {
    "annotations", "podAnnotations", "labels", "podLabels", "additionalLabels", "commonLabels", "extraLabels",
    "nodeSelector", "extraArgs", "matchLabels", "resources", "securityContext", "podSecurityContext",
    "containerSecurityContext", "affinity", "volumeClaimTemplate", "storageSpec",
}  # fmt: skip


def defaults(release: str) -> dict[str, dict[str, Any]]:
    _, files = CHART_VALUES[release]
    return {alias: yaml.safe_load((crds.UPSTREAM / name).read_text()) or {} for alias, name in files.items()}


def leaf_paths(values: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Paths to what we set: scalars, lists (set whole) and empty maps."""
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from leaf_paths(value, (*prefix, str(key)))
    else:
        yield prefix


def known(tree: Any, path: Path_) -> bool:
    node = tree
    for key in path:
        if isinstance(node, dict | list) and not node:
            return True  # an empty map or list in the defaults: free-form below
        if not isinstance(node, dict) or key not in node:
            return False
        if key in FREE_FORM:
            return True
        node = node[key]
    return True


def unknown_paths(release: str, values: dict[str, Any]) -> list[str]:
    """Every leaf path the chart (and its subcharts) would silently ignore, as `release: path` messages."""
    if release not in CHART_VALUES:
        return [f"{release}: no vendored values.yaml for this chart (add it to CHART_VALUES and upstream/)"]
    trees = defaults(release)
    version, files = CHART_VALUES[release]
    problems = []
    for path in leaf_paths(values):
        dotted = ".".join(path)
        if known(trees[""], path) or (release, dotted) in TEMPLATE_READS:
            continue
        alias = path[0] if path else ""
        if alias and alias in trees and known(trees[alias], path[1:]):
            continue
        where = files[""] + (f" or {files[alias]}" if alias in files and alias else "")
        problems.append(f"{release}: values path {dotted!r} is not in {where} (chart {version}); no template reads it")
    return problems


def test_every_value_we_set_is_known_to_the_pinned_chart(render: tuple[str, Path]) -> None:
    _, out = render
    releases = helm_releases(out)
    assert releases
    problems = [p for name, release in releases.items() for p in unknown_paths(name, release["values"])]
    assert not problems, "\n".join(problems)


def test_vendored_values_are_for_the_pinned_chart_versions() -> None:
    pins = yaml.safe_load((CHARTS_DIR / "versions.yaml").read_text())
    assert set(pins) == set(CHART_VALUES), "vendor the values.yaml of every pinned chart"
    for name, pin in pins.items():
        version, files = CHART_VALUES[name]
        assert pin["version"] == version, f"{name} is pinned at {pin['version']}: re-vendor its values.yaml"
        assert all(f in crds.sources() for f in files.values())


@pytest.mark.parametrize(("release", "dotted"), sorted(TEMPLATE_READS))
def test_template_read_exceptions_are_still_needed(release: str, dotted: str) -> None:
    path = tuple(dotted.split("."))
    trees = defaults(release)
    assert not known(trees[""], path) and not (path[0] in trees and known(trees[path[0]], path[1:]))
    assert "templates/" in TEMPLATE_READS[(release, dotted)]


def test_a_made_up_path_is_refused_naming_the_release_and_the_path() -> None:
    values = {"grafana": {"persistence": {"storageClas": "x"}}, "prometheus": {"prometheusSpec": {"retension": "1d"}}}
    assert unknown_paths("kube-prometheus-stack", values) == [
        "kube-prometheus-stack: values path 'grafana.persistence.storageClas' is not in kps-85.2.0_values.yaml or "
        "grafana-12.3.3_values.yaml (chart 85.2.0); no template reads it",
        "kube-prometheus-stack: values path 'prometheus.prometheusSpec.retension' is not in kps-85.2.0_values.yaml "
        "(chart 85.2.0); no template reads it",
    ]
    (problem,) = unknown_paths("gpu-operator", {"dcgmExporter": {"serviceMonitor": {"honourLabels": True}}})
    assert "gpu-operator" in problem and "dcgmExporter.serviceMonitor.honourLabels" in problem


def test_free_form_maps_subcharts_and_template_reads_are_accepted() -> None:
    values = {
        "commonLabels": {"team": "llm"},  # `commonLabels: {}` in the defaults
        "grafana": {"persistence": {"extraPvcLabels": {"a": "b"}, "storageClassName": "fast"}},  # subchart; exception
        "kube-state-metrics": {"metricLabelsAllowlist": ["nodes=[x]"]},  # only in the subchart's values.yaml
        # securityContext is non-empty in the defaults, but handed to the pod verbatim
        "prometheus": {"prometheusSpec": {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}},
    }
    assert unknown_paths("kube-prometheus-stack", values) == []
