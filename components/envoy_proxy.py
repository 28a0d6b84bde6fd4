"""The EnvoyProxy (gateway.envoyproxy.io/v1alpha1) that shapes this stack's Envoy proxies: the Service clients
connect to, from the plan's `api_service`, and the number of proxy replicas (`auth.replicas`).

The Gateway names it in `spec.infrastructure.parametersRef` (components/api_gateway.py), so it applies to this
Gateway only and lives in the Gateway's namespace (Envoy Gateway v1.9, "Customize EnvoyProxy"). Envoy Gateway
builds the Service from `provider.kubernetes.envoyService` (internal/infrastructure/kubernetes/proxy/
resource_provider.go Service, resource/resource.go ExpectedServiceSpec): type, annotations, the LoadBalancer-only
fields, the external traffic policy (NodePort and LoadBalancer only) and a name. It has no node-port field: a
strategic-merge `patch` sets them, on the Service's ports merged by `port` (a Service's port list merge key), which
Envoy Gateway sets to the listener's port.
"""

from __future__ import annotations

from typing import Any

from components.planning.api_service import LISTENER_PORTS
from components.planning.types import ApiServicePlan, ClusterPlan

API_VERSION = "gateway.envoyproxy.io/v1alpha1"
KIND = "EnvoyProxy"
NAME = "llm-api"


def envoy_service(service: ApiServicePlan) -> dict[str, Any]:
    """`envoyService`: only the fields the plan's Service type takes (the CRD's CEL rules refuse the others)."""
    out: dict[str, Any] = {"name": service.name, "type": service.type}
    if service.annotations:
        out["annotations"] = dict(service.annotations)
    if service.load_balancer_class is not None:
        out["loadBalancerClass"] = service.load_balancer_class
    if service.load_balancer_source_ranges:
        out["loadBalancerSourceRanges"] = list(service.load_balancer_source_ranges)
    if service.external_traffic_policy is not None:
        out["externalTrafficPolicy"] = service.external_traffic_policy
    if service.node_ports:
        ports = [{"port": LISTENER_PORTS[listener], "nodePort": port} for listener, port in service.node_ports.items()]
        out["patch"] = {"type": "StrategicMerge", "value": {"spec": {"ports": ports}}}
    return out


def envoy_proxy_spec(plan: ClusterPlan) -> dict[str, Any]:
    kubernetes = {
        "envoyService": envoy_service(plan.api_service),
        "envoyDeployment": {"replicas": plan.auth.replicas},
    }
    return {"provider": {"type": "Kubernetes", "kubernetes": kubernetes}}


def parameters_ref() -> dict[str, str]:
    """The Gateway's `spec.infrastructure.parametersRef` to this EnvoyProxy (same namespace)."""
    return {"group": API_VERSION.split("/")[0], "kind": KIND, "name": NAME}
