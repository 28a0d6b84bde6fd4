"""NetworkPolicies of the serving namespace: deny by default, then only the paths the design needs.

API gateway (Envoy proxies) -> LLM gateway -> model servers; Prometheus -> metrics ports; members of a
LeaderWorkerSet group <-> each other; DNS for everyone; model servers out to the Hugging Face Hub
(HTTPS) for weights; the router out to the Kubernetes API for pod discovery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.api_gateway import GATEWAY
from components.charts import chart_pin
from components.labels import (
    COMPONENT_LABEL,
    GATEWAY_COMPONENT,
    MODEL_LABEL,
    MODEL_SERVER_COMPONENT,
    NAME_LABEL,
    PART_OF_LABEL,
    PROJECT,
    ROLE_LABEL,
    SERVER_ROLE,
)
from components.model_server import PORT as MODEL_PORT
from components.planning.types import ClusterPlan

# The Kubernetes API as pods reach it: the kubernetes Service (443) and the API servers behind it (6443).
KUBERNETES_API_PORTS = (443, 6443)
HTTPS_PORT = 443
GATEWAY_PODS = {COMPONENT_LABEL: GATEWAY_COMPONENT}
MODEL_PODS = {COMPONENT_LABEL: MODEL_SERVER_COMPONENT}
ANYWHERE = [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
# The labels prometheus-operator puts on every Prometheus server pod (pkg/prometheus/statefulset.go).
PROMETHEUS_PODS = {"matchLabels": {NAME_LABEL: "prometheus", "app.kubernetes.io/managed-by": "prometheus-operator"}}


def namespace_is(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def policies(plan: ClusterPlan) -> dict[str, dict[str, Any]]:
    """name -> NetworkPolicy spec."""
    envoy = {
        **namespace_is(chart_pin("gateway-helm").namespace),
        "podSelector": {
            "matchLabels": {
                NAME_LABEL: "envoy",
                "gateway.envoyproxy.io/owning-gateway-name": GATEWAY,
                "gateway.envoyproxy.io/owning-gateway-namespace": plan.namespace,
            }
        },
    }
    # Prometheus's own pods, not the whole monitoring namespace: vLLM's metrics port is also its API port.
    prometheus = {**namespace_is(chart_pin("kube-prometheus-stack").namespace), "podSelector": PROMETHEUS_PODS}
    port = plan.gateway.port
    gateway_metrics = plan.gateway.metrics_port
    gateway_egress: list[dict[str, Any]] = [
        {"to": [{"podSelector": {"matchLabels": {**MODEL_PODS, ROLE_LABEL: SERVER_ROLE}}}], "ports": tcp(MODEL_PORT)}
    ]
    if plan.gateway.kind == "vllm-router":
        # Pod discovery watches the Kubernetes API; its address is the cluster's, not known here.
        gateway_egress.append({"to": ANYWHERE, "ports": tcp(*KUBERNETES_API_PORTS)})
    specs: dict[str, dict[str, Any]] = {
        "default-deny": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        "allow-dns": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}],
        },
        "llm-gateway": {
            "podSelector": {"matchLabels": GATEWAY_PODS},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"from": [envoy], "ports": tcp(port)},
                {"from": [prometheus], "ports": tcp(gateway_metrics)},
            ],
            "egress": gateway_egress,
        },
        "model-servers": {
            "podSelector": {"matchLabels": MODEL_PODS},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": GATEWAY_PODS}}], "ports": tcp(MODEL_PORT)},
                {"from": [prometheus], "ports": tcp(MODEL_PORT)},
            ],
            # Weights come from the Hugging Face Hub over HTTPS.
            "egress": [{"to": ANYWHERE, "ports": tcp(HTTPS_PORT)}],
        },
    }
    for model in plan.models:
        if model.nodes_per_replica > 1:
            # TP/PP traffic (NCCL, the launcher's rendezvous) between the pods of a group, on any port.
            group = {"podSelector": {"matchLabels": {MODEL_LABEL: model.name}}}
            specs[f"group-{model.name}"] = {
                "podSelector": {"matchLabels": {MODEL_LABEL: model.name}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [group]}],
                "egress": [{"to": [group]}],
            }
    return specs


@dataclass(frozen=True)
class NetworkPoliciesArgs:
    plan: ClusterPlan


class NetworkPolicies(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:network_policies:NetworkPolicies", name, None, opts)
        for policy_name, spec in policies(args.plan).items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy_name}",
                metadata={
                    "name": policy_name,
                    "namespace": args.plan.namespace,
                    "labels": {PART_OF_LABEL: PROJECT},
                },
                spec=spec,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({})
