"""Monitoring: kube-prometheus-stack (pinned) with persistent Prometheus, Alertmanager and Grafana, the
project's scrape objects, alert rules and dashboards.

The rules (rules/*.yaml) and dashboards (dashboards/*.json) are files in the repo, tested with promtool;
this component ships them as a PrometheusRule and sidecar ConfigMaps, and adds the per-model objectives
from the plan as recording rules the alerts join on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random
import yaml

from components.charts import chart_namespace, chart_pin, helm_release
from components.labels import (
    COMPONENT_LABEL,
    MODEL_LABEL,
    MODEL_SERVER_COMPONENT,
    PART_OF_LABEL,
    POOL_LABEL,
    PROJECT,
    PROMETHEUS_LABEL,
)
from components.planning.types import ClusterPlan

RULES_DIR = Path(__file__).parent / "rules"
DASHBOARDS_DIR = Path(__file__).parent / "dashboards"
PROJECT_SELECTOR = {PART_OF_LABEL: PROJECT}
# Every ServiceMonitor, PodMonitor and PrometheusRule of ours carries the label our Prometheus selects.
PROMETHEUS_SELECTOR = {PROMETHEUS_LABEL: PROJECT}
GRAFANA_ADMIN_SECRET = "grafana-admin"
ADMIN_PASSWORD_LENGTH = 32  # alphanumerics, ~190 bits
DASHBOARD_LABEL = "grafana_dashboard"


def static_rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(RULES_DIR.glob("*.yaml")):
        groups += yaml.safe_load(path.read_text())["groups"]
    return groups


def objective_rule_group(plan: ClusterPlan) -> dict[str, Any]:
    """Per-model facts from the plan as series, so static alerts can compare against each model's own numbers."""
    rules: list[dict[str, Any]] = []
    for model in plan.models:
        rules.append(
            {
                "record": "llm_cluster:model_ttft_slo_seconds",
                "expr": f"vector({model.slo.ttft_p95_seconds:g})",
                "labels": {"model_name": model.name},
            }
        )
        rules.append(
            {
                "record": "llm_cluster:model_min_replicas",
                "expr": f"vector({model.min_replicas})",
                "labels": {"model_name": model.name, "namespace": plan.namespace},
            }
        )
    return {"name": "llm-cluster-objectives", "interval": "1m", "rules": rules}


def dashboards() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def stack_values(plan: ClusterPlan) -> dict[str, Any]:
    """kube-prometheus-stack values from the stack: retention, scrape interval, volumes, secrets."""
    mon = plan.monitoring

    def claim(size: str) -> dict[str, Any]:
        return {
            "spec": {
                "storageClassName": plan.storage_class,
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
            }
        }

    alertmanager_spec: dict[str, Any] = {"storage": {"volumeClaimTemplate": claim(mon.alertmanager.size)}}
    if mon.alertmanager_config_secret:
        # The operator's Secret holds alertmanager.yaml (receivers, routes); it never passes through Pulumi.
        alertmanager_spec["configSecret"] = mon.alertmanager_config_secret
    return {
        "prometheus": {
            "prometheusSpec": {
                "retention": mon.retention,
                "scrapeInterval": mon.scrape_interval,
                "evaluationInterval": mon.scrape_interval,
                "storageSpec": {"volumeClaimTemplate": claim(mon.prometheus.size)},
            }
        },
        "alertmanager": {"alertmanagerSpec": alertmanager_spec},
        "grafana": {
            "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
            "persistence": {
                "enabled": True,
                "type": "pvc",
                "storageClassName": plan.storage_class,
                "accessModes": ["ReadWriteOnce"],
                "size": mon.grafana.size,
                # Helm leaves the claim in place when the release is uninstalled or replaced (grafana 12.3.3
                # templates/pvc.yaml copies these annotations); Prometheus's and Alertmanager's claims come from
                # StatefulSet claim templates, which outlive their StatefulSets already.
                "annotations": {"helm.sh/resource-policy": "keep"},
            },
        },
    }


def vllm_pod_monitor(plan: ClusterPlan) -> dict[str, Any]:
    """Scrape every vLLM pod that serves HTTP (LeaderWorkerSet workers do not) as job `vllm`."""
    return {
        "selector": {"matchLabels": {COMPONENT_LABEL: MODEL_SERVER_COMPONENT}},
        "namespaceSelector": {"matchNames": [plan.namespace]},
        "podMetricsEndpoints": [
            {
                "port": "http",
                "path": "/metrics",
                "interval": plan.monitoring.scrape_interval,
                # vLLM's own series carry model_name; keep them as they are.
                "honorLabels": True,
                "relabelings": [
                    {"targetLabel": "job", "replacement": "vllm"},
                    {
                        "sourceLabels": [f"__meta_kubernetes_pod_label_{_label_name(MODEL_LABEL)}"],
                        "targetLabel": "model_name",
                    },
                    {"sourceLabels": [f"__meta_kubernetes_pod_label_{_label_name(POOL_LABEL)}"], "targetLabel": "pool"},
                ],
            }
        ],
    }


def envoy_gateway_service_monitor(plan: ClusterPlan) -> dict[str, Any]:
    """Envoy Gateway's control plane as job `envoy-gateway`: gateway-helm v1.9 exposes its metrics on the
    `envoy-gateway` Service's `metrics` port and ships no monitor of its own."""
    return {
        "selector": {"matchLabels": {"control-plane": "envoy-gateway"}},
        "namespaceSelector": {"matchNames": [chart_pin("gateway-helm").namespace]},
        "endpoints": [
            {
                "port": "metrics",
                "path": "/metrics",
                "interval": plan.monitoring.scrape_interval,
                "relabelings": [{"targetLabel": "job", "replacement": "envoy-gateway"}],
            }
        ],
    }


def _label_name(label: str) -> str:
    """Kubernetes label -> the name Prometheus service discovery gives it."""
    return "".join(c if c.isalnum() else "_" for c in label)


@dataclass(frozen=True)
class MonitoringArgs:
    plan: ClusterPlan
    # The operator's password (secret config `llm-cluster:grafanaAdminPassword`); generated when None.
    grafana_admin_password: pulumi.Input[str] | None = None
    # (name, ServiceMonitor spec) in the serving namespace, for components outside this one (the LLM gateway).
    service_monitors: tuple[tuple[str, dict[str, Any]], ...] = ()
    # (name, namespace, PodMonitor spec), e.g. the Envoy proxies of the API gateway.
    pod_monitors: tuple[tuple[str, str, dict[str, Any]], ...] = ()


class Monitoring(pulumi.ComponentResource):
    """Prometheus, Alertmanager and Grafana with persistent volumes; scrape objects, rules, dashboards."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:monitoring:Monitoring", name, None, opts)
        plan = args.plan
        namespace = chart_pin("kube-prometheus-stack").namespace
        child = pulumi.ResourceOptions(parent=self)
        # node-exporter needs the host's network, PIDs and filesystem.
        # Prometheus, Alertmanager and Grafana keep their data on claims in this namespace: protected, so that
        # disabling monitoring or a changed release cannot delete them unless allowDataLoss names `monitoring`.
        protect = plan.protect_monitoring
        self.namespace = chart_namespace(
            f"{name}-namespace", "kube-prometheus-stack", "privileged", self, protect=protect
        )
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        password = args.grafana_admin_password
        if password is None:
            generated = pulumi_random.RandomPassword(
                f"{name}-grafana-admin", length=ADMIN_PASSWORD_LENGTH, special=False, opts=child
            )
            password = generated.result
        self.grafana_admin_password = pulumi.Output.secret(password)
        self.grafana_admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": namespace},
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": self.grafana_admin_password},
            opts=in_namespace,
        )
        self.release = helm_release(
            "kube-prometheus-stack",
            stack_values(plan),
            pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, self.grafana_admin], protect=protect),
        )
        after_crds = pulumi.ResourceOptions(parent=self, depends_on=[self.release])
        labels = {**PROJECT_SELECTOR, **PROMETHEUS_SELECTOR}
        self._monitors(name, args, labels, after_crds)
        self.rules = k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": "llm-cluster", "namespace": namespace, "labels": labels},
            spec={"groups": [objective_rule_group(plan), *static_rule_groups()]},
            opts=after_crds,
        )
        self.dashboards = [
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{file_name.removesuffix('.json')}",
                metadata={
                    "name": f"llm-cluster-{file_name.removesuffix('.json')}",
                    "namespace": namespace,
                    "labels": {**labels, DASHBOARD_LABEL: "1"},
                },
                data={file_name: json.dumps(json.loads(content))},
                opts=in_namespace,
            )
            for file_name, content in dashboards().items()
        ]
        self.register_outputs({"namespace": namespace})

    def _monitors(
        self, name: str, args: MonitoringArgs, labels: dict[str, str], after_crds: pulumi.ResourceOptions
    ) -> None:
        """The vLLM PodMonitor, the Envoy Gateway ServiceMonitor and the monitors the other components ask for."""
        plan = args.plan

        def monitor(kind: str, monitor_name: str, namespace: str, spec: dict[str, Any]) -> pulumi.CustomResource:
            created: pulumi.CustomResource = k8s.apiextensions.CustomResource(
                f"{name}-{monitor_name}",
                api_version="monitoring.coreos.com/v1",
                kind=kind,
                metadata={"name": monitor_name, "namespace": namespace, "labels": labels},
                spec=spec,
                opts=after_crds,
            )
            return created

        self.pod_monitor = monitor("PodMonitor", "vllm", plan.namespace, vllm_pod_monitor(plan))
        self.service_monitors = [
            monitor("ServiceMonitor", monitor_name, plan.namespace, spec)
            for monitor_name, spec in args.service_monitors
        ]
        gateway_namespace = chart_pin("gateway-helm").namespace
        self.envoy_gateway_monitor = monitor(
            "ServiceMonitor", "envoy-gateway", gateway_namespace, envoy_gateway_service_monitor(plan)
        )
        self.pod_monitors = [monitor("PodMonitor", *pod_monitor) for pod_monitor in args.pod_monitors]
