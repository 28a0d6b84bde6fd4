"""`auth.service`: the Kubernetes Service clients connect to, in front of the API gateway's Envoy proxies.

Envoy Gateway makes that Service from an EnvoyProxy's `spec.provider.kubernetes.envoyService` (v1.9 CRD); this
model holds what a stack may set of it. The type's default is a plan decision (components/planning/api_service.py):
NodePort on existing (on-prem) nodes, where a LoadBalancer Service stays Pending unless MetalLB, kube-vip or a
similar controller runs; LoadBalancer on cloud pools, whose controller provisions one.

The API server's own rules for these values (k8s.io/kubernetes pkg/apis/core/validation, ValidateService) are
checked here, so a bad value is refused naming its field instead of failing when Envoy Gateway creates the Service:
annotation keys and the load balancer class are qualified names (ValidateQualifiedName), source ranges are CIDRs.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from components.spec.spec_model import SPEC_MODEL_CONFIG

ServiceType = Literal["LoadBalancer", "NodePort", "ClusterIP"]
# A qualified name: an optional DNS-subdomain prefix (at most 253) and '/', then a name of at most 63 characters
# (k8s.io/apimachinery/pkg/util/validation IsQualifiedName).
_QUALIFIED_NAME = re.compile(
    r"(?:(?P<prefix>[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/)?"
    r"(?P<name>[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)"
)
# What clients append /v1/... to: a scheme and an authority, no path.
_URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")
NodePort = Annotated[int, Field(ge=1, le=65535)]


class NodePortsSpec(BaseModel):
    """Fixed node ports of the API's listeners (NodePort and LoadBalancer Services). They must lie in the cluster's
    --service-node-port-range (30000-32767 unless the cluster changes it) and be free."""

    model_config = SPEC_MODEL_CONFIG

    https: NodePort | None = None
    http: NodePort | None = None


class ApiServiceSpec(BaseModel):
    """The Service in front of the Envoy proxies (EnvoyProxy envoyService)."""

    model_config = SPEC_MODEL_CONFIG

    # LoadBalancer: an address from the cluster's load-balancer controller (a cloud's, MetalLB, kube-vip);
    # NodePort: a port on every node; ClusterIP: inside the cluster only, behind an ingress or load balancer of
    # your own. Default: the plan's (NodePort on existing nodes, LoadBalancer on cloud pools).
    type: ServiceType | None = None
    # Added to the Service, e.g. metallb.universe.tf/address-pool or service.beta.kubernetes.io/aws-load-balancer-*.
    annotations: dict[str, str] = {}
    # LoadBalancer only: which controller serves it when several run (e.g. service.k8s.aws/nlb); fixed once set.
    load_balancer_class: str | None = None
    # LoadBalancer only: client CIDRs the provider's load balancer admits (not every provider honours it).
    load_balancer_source_ranges: list[str] = []
    # NodePort and LoadBalancer: Local keeps the client address and sends a node's traffic only to Envoy pods on
    # that node; Cluster lets every node forward to any Envoy pod. Default: the plan's.
    external_traffic_policy: Literal["Local", "Cluster"] | None = None
    # NodePort and LoadBalancer: fixed node ports; a NodePort Service gets the plan's defaults otherwise.
    node_ports: NodePortsSpec = NodePortsSpec()
    # The URL clients use when something in front of the Service (an external load balancer, an ingress) serves
    # the API under another address; `apiUrl` reports it instead of the one the plan derives.
    url: str | None = None


def qualified_name_error(path: str, value: str) -> str | None:
    """`<path>: ...` when `value` is not a Kubernetes qualified name (annotation keys, loadBalancerClass)."""
    match = _QUALIFIED_NAME.fullmatch(value)
    if match and len(match["name"]) <= 63 and len(match["prefix"] or "") <= 253:
        return None
    return (
        f"{path}: {value!r} is not a qualified name; use an optional DNS prefix and '/', then at most 63 letters, "
        "digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. metallb.universe.tf/address-pool)"
    )


def api_service_checks(service: ApiServiceSpec) -> list[str]:
    """The value rules of `auth.service` that need no plan, one line per problem naming its field."""
    at = "auth.service"
    errors = [qualified_name_error(f"{at}.annotations", key) for key in service.annotations]
    if service.load_balancer_class is not None:
        errors.append(qualified_name_error(f"{at}.loadBalancerClass", service.load_balancer_class))
    for i, cidr in enumerate(service.load_balancer_source_ranges):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            errors.append(f"{at}.loadBalancerSourceRanges[{i}]: {cidr!r} is not a CIDR; write e.g. 10.0.0.0/8")
    ports = service.node_ports
    if ports.https is not None and ports.https == ports.http:
        errors.append(f"{at}.nodePorts: https and http are both {ports.https}; give each listener its own port")
    if service.url is not None and not _URL.fullmatch(service.url):
        errors.append(
            f"{at}.url: {service.url!r} is not a base URL; give the scheme and address only, "
            "e.g. https://llm.example.com or http://10.0.0.5:30080 (clients add /v1/...)"
        )
    return [error for error in errors if error]
