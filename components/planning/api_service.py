"""How clients reach the API gateway: the type of the Service in front of the Envoy proxies, its node ports and
traffic policy, and the base URL clients use, each with its reason.

The type's default follows where the nodes are. Existing nodes are on-prem (seed 000): no cloud controller
provisions load balancers there, and a LoadBalancer Service stays Pending (no address) unless MetalLB, kube-vip or a
similar controller runs, so the default is NodePort, on fixed ports so that the URL survives the Service being
recreated. Cloud pools (Karpenter on EKS, GKE, OVHcloud MKS) get LoadBalancer: their controllers provision one.
ClusterIP is for clusters that already run an ingress or load balancer of their own in front of the Service.
"""

from __future__ import annotations

from typing import Literal

from components.chart_pins import chart_pin
from components.planning.types import ApiServicePlan, ModelPlan, SizingError
from components.spec import ClusterSpec, ExistingBackendSpec, ServiceType

# Node ports a NodePort Service gets when the stack fixes none: inside Kubernetes' default --service-node-port-range
# (30000-32767), and easy to tell apart. `auth.service.nodePorts` moves them when another Service holds them.
DEFAULT_NODE_PORTS = {"https": 30443, "http": 30080}
# The Gateway's listeners serve these ports (components/api_gateway.py); a URL on them needs no port.
LISTENER_PORTS = {"https": 443, "http": 80}
# Envoy Gateway runs the proxies and their Service in its own namespace (charts/versions.yaml).
ENVOY_GATEWAY_CHART = "gateway-helm"
GATEWAY_NAME = "llm-api"  # components/api_gateway.py GATEWAY


def service_type(spec: ClusterSpec) -> tuple[ServiceType, str]:
    """The Service type with its reason: the stack's, else NodePort on existing nodes, LoadBalancer on cloud pools."""
    asked = spec.auth.service.type
    if asked is not None:
        return asked, "set in the stack (auth.service.type)"
    clouds = sorted({p.backend.kind for p in spec.pools if not isinstance(p.backend, ExistingBackendSpec)})
    if not clouds:
        return "NodePort", (
            "every pool is existing nodes (on-prem): no cloud controller provisions load balancers, and a "
            "LoadBalancer Service stays Pending unless MetalLB, kube-vip or similar runs (then set "
            "auth.service.type: LoadBalancer)"
        )
    return "LoadBalancer", f"pools on {', '.join(clouds)}: the cloud's controller provisions a load balancer"


def _misplaced(spec: ClusterSpec, kind: ServiceType, listeners: list[str]) -> list[str]:
    """Settings the chosen type or the Gateway's listeners cannot take, each naming its field and the fix."""
    asked, at = spec.auth.service, "auth.service"
    why = f"the Service is {kind} ({'set' if asked.type else 'the plan default; set auth.service.type'})"
    errors: list[str] = []
    if kind != "LoadBalancer":
        if asked.load_balancer_class is not None:
            errors.append(f"{at}.loadBalancerClass: only a LoadBalancer Service takes one; {why}")
        if asked.load_balancer_source_ranges:
            errors.append(f"{at}.loadBalancerSourceRanges: only a LoadBalancer Service takes them; {why}")
    if kind == "ClusterIP":
        if asked.external_traffic_policy is not None:
            errors.append(f"{at}.externalTrafficPolicy: a ClusterIP Service has none; {why}")
        if asked.node_ports.https is not None or asked.node_ports.http is not None:
            errors.append(f"{at}.nodePorts: a ClusterIP Service has no node ports; {why}")
    fixes = {"https": "name auth.tlsSecretName", "http": "set auth.allowPlainHttp: true"}
    for listener, port in (("https", asked.node_ports.https), ("http", asked.node_ports.http)):
        if port is not None and listener not in listeners:
            errors.append(f"{at}.nodePorts.{listener}: the Gateway has no {listener} listener; {fixes[listener]}")
    return errors


def _node_ports(spec: ClusterSpec, kind: ServiceType, listeners: list[str]) -> dict[str, int]:
    """Listener -> fixed node port: the stack's, and for a NodePort Service the defaults for the others."""
    asked = spec.auth.service.node_ports
    fixed = {name: port for name, port in (("https", asked.https), ("http", asked.http)) if port is not None}
    if kind == "NodePort":
        taken = set(fixed.values())
        for name in listeners:
            if name not in fixed and DEFAULT_NODE_PORTS[name] not in taken:
                fixed[name] = DEFAULT_NODE_PORTS[name]
    return {name: port for name, port in fixed.items() if name in listeners}


def _traffic_policy(spec: ClusterSpec, kind: ServiceType) -> tuple[Literal["Local", "Cluster"] | None, str]:
    asked = spec.auth.service.external_traffic_policy
    if kind == "ClusterIP":
        return None, "a ClusterIP Service has no external traffic policy"
    if asked is not None:
        return asked, "set in the stack (auth.service.externalTrafficPolicy)"
    if kind == "NodePort":
        return "Cluster", (
            "every node's port reaches an Envoy pod wherever it runs (Local would answer only on nodes running "
            "one); the client address is not kept, and nothing needs it: clients are known by their key"
        )
    return "Local", (
        "Envoy Gateway's default: the load balancer sends only to nodes running an Envoy pod and the client "
        "address is kept"
    )


def _url(
    spec: ClusterSpec, kind: ServiceType, node_ports: dict[str, int], name: str, namespace: str
) -> tuple[str, str]:
    """The base URL clients use (they add /v1/...), or how to find its address, with the reason."""
    auth = spec.auth
    if auth.service.url is not None:
        return auth.service.url, "set in the stack (auth.service.url)"
    scheme = "https" if auth.tls_secret_name else "http"
    plain = "" if scheme == "https" else "; plain HTTP (auth.allowPlainHttp, no TLS Secret)"
    if kind == "NodePort":
        port = node_ports[scheme]  # resolve_api_service fixes one for every listener
        if auth.hostname:
            return f"{scheme}://{auth.hostname}:{port}", (
                f"node port {port} of the {scheme} listener; {auth.hostname} must resolve to the nodes{plain}"
            )
        return f"{scheme}://<any node's address: kubectl get nodes -o wide>:{port}", (
            f"node port {port} of the {scheme} listener, on every node; no auth.hostname{plain}"
        )
    if kind == "LoadBalancer":
        if auth.hostname:
            return f"{scheme}://{auth.hostname}", f"{auth.hostname} must resolve to the load balancer's address{plain}"
        return f"{scheme}://<EXTERNAL-IP of: kubectl get service -n {namespace} {name}>", (
            f"the address the load-balancer controller assigns; no auth.hostname{plain}"
        )
    if auth.hostname:
        return f"{scheme}://{auth.hostname}", (
            f"the ingress or load balancer in front of Service {namespace}/{name} must serve {auth.hostname}; "
            f"set auth.service.url if it serves another address{plain}"
        )
    return f"{scheme}://{name}.{namespace}.svc", (
        f"inside the cluster only; point an ingress or load balancer at this Service and set auth.service.url{plain}"
    )


def resolve_api_service(spec: ClusterSpec) -> ApiServicePlan:
    """The API's Service and URL; SizingError naming each setting the chosen type or listeners cannot take."""
    kind, type_reason = service_type(spec)
    auth = spec.auth
    listeners = (["https"] if auth.tls_secret_name else []) + (["http"] if auth.allow_plain_http else [])
    errors = _misplaced(spec, kind, listeners)
    node_ports = _node_ports(spec, kind, listeners)
    if kind == "NodePort" and set(node_ports) != set(listeners):
        errors.append(
            f"auth.service.nodePorts: {sorted(node_ports.values())} leave no default port for the other listener; "
            "fix both https and http"
        )
    if errors:
        raise SizingError(errors)
    name, namespace = f"{GATEWAY_NAME}-{spec.namespace}", chart_pin(ENVOY_GATEWAY_CHART).namespace
    policy, traffic_reason = _traffic_policy(spec, kind)
    url, url_reason = _url(spec, kind, node_ports, name, namespace)
    asked = auth.service
    return ApiServicePlan(
        name=name,
        namespace=namespace,
        type=kind,
        type_reason=type_reason,
        annotations=dict(asked.annotations),
        load_balancer_class=asked.load_balancer_class,
        load_balancer_source_ranges=list(asked.load_balancer_source_ranges),
        external_traffic_policy=policy,
        traffic_reason=traffic_reason,
        node_ports=node_ports,
        url=url,
        url_reason=url_reason,
    )


def models_by_task(models: list[ModelPlan]) -> dict[str, list[str]]:
    """The names clients send as `model`, by task (generate: chat and completions; embed: embeddings; score:
    rerank), in the stack's order; only the tasks the stack serves."""
    out: dict[str, list[str]] = {}
    for model in models:
        out.setdefault(model.task, []).append(model.name)
    return out
