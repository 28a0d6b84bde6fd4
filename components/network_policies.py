"""NetworkPolicies of the serving namespace: deny by default, then only the paths the design needs.

API gateway (Envoy proxies) -> LLM gateway -> model servers, and Envoy -> the servers of a model the plan
routes to directly (rerank under vllm-router); Prometheus -> metrics ports; members of a
LeaderWorkerSet group <-> each other; DNS to the cluster DNS pods only; the weights download (a Job, or
servers with per-pod caches) out to the weights source only; the router out to the Kubernetes API.
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
    PROMETHEUS_POD_LABELS,
    ROLE_LABEL,
    SERVER_ROLE,
    WEIGHTS_DOWNLOAD_COMPONENT,
)
from components.model_server import PORT as MODEL_PORT
from components.planning.types import ClusterPlan, NetworkPlan

# The Kubernetes API as pods reach it: the kubernetes Service (443) and the API servers behind it (6443).
KUBERNETES_API_PORTS = (443, 6443)
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
GATEWAY_PODS = {COMPONENT_LABEL: GATEWAY_COMPONENT}
MODEL_PODS = {COMPONENT_LABEL: MODEL_SERVER_COMPONENT}
ANYWHERE = [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
PROMETHEUS_PODS = {"matchLabels": PROMETHEUS_POD_LABELS}


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
            "egress": [{"to": dns_peers(plan.network), "ports": DNS_PORTS}],
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
            # Nothing outside the namespace: the weights come from the download Job (or each pod's own, below).
            "egress": [],
        },
        **download_policies(plan),
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
    direct = sorted({d.model for d in plan.gateway.direct_routes})
    if direct:
        # The API gateway's direct routes (rerank under vllm-router): Envoy's pods to those servers' API port.
        specs["api-gateway-direct"] = {
            "podSelector": {
                "matchLabels": {**MODEL_PODS, ROLE_LABEL: SERVER_ROLE},
                "matchExpressions": [{"key": MODEL_LABEL, "operator": "In", "values": direct}],
            },
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [envoy], "ports": tcp(MODEL_PORT)}],
        }
    return specs


def dns_peers(network: NetworkPlan) -> list[dict[str, Any]]:
    """The cluster DNS pods, and the addresses that answer outside any pod (NodeLocal DNSCache)."""
    pods = {**namespace_is(network.dns_namespace), "podSelector": {"matchLabels": network.dns_pod_labels}}
    return [pods, *({"ipBlock": {"cidr": cidr}} for cidr in network.dns_cidrs)]


def download_policies(plan: ClusterPlan) -> dict[str, dict[str, Any]]:
    """Egress to the weights source for the pods that download: the Jobs, and servers with per-pod caches."""
    network = plan.network
    if not network.weights_cidrs:
        return {}
    egress = [{"to": [{"ipBlock": {"cidr": c}} for c in network.weights_cidrs], "ports": tcp(network.weights_port)}]
    specs: dict[str, dict[str, Any]] = {}
    if any(m.cache.download == "job" for m in plan.models):
        specs["weights-download-jobs"] = {
            "podSelector": {"matchLabels": {COMPONENT_LABEL: WEIGHTS_DOWNLOAD_COMPONENT}},
            "policyTypes": ["Egress"],
            "egress": egress,
        }
    downloading = sorted(m.name for m in plan.models if m.cache.download == "pod")
    if downloading:
        specs["weights-download-servers"] = {
            "podSelector": {
                "matchLabels": MODEL_PODS,
                "matchExpressions": [{"key": MODEL_LABEL, "operator": "In", "values": downloading}],
            },
            "policyTypes": ["Egress"],
            "egress": egress,
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
