"""ApiGateway: Envoy Gateway in front of the LLM gateway. It owns client keys and rate limits, so the LLM
gateway can be replaced without touching a single client.

One GatewayClass and Gateway (HTTPS from the operator's TLS Secret; plain HTTP only where the stack says
so), an HTTPRoute to the LLM gateway for exactly the plan's inference paths (and, under vllm-router, rerank
straight to the score model's Service: the plan's direct routes), a SecurityPolicy with one API key
per client (`sanitize` strips it, the client id travels in a header), and per-client rate limits in the plan's
scope (global: counted once across the Envoy replicas, in components/rate_limit_store.py's Redis; or local).
The Gateway names an EnvoyProxy (components/envoy_proxy.py): the Service clients connect to (the plan's type) and
the number of Envoy replicas.

Upstream credential: for LiteLLM, Envoy injects LiteLLM's inference key (components/gateway.py), never its
master key, so client keys never reach LiteLLM and what Envoy holds is no admin key: LiteLLM's custom auth hook
(components/litellm_auth.py) accepts it on the inference paths only, whoever presents it. vllm-router checks no
key, so nothing is injected; its worker-management endpoints stay out of reach because the route admits only
the inference paths and its NetworkPolicy admits only Envoy's pods to its API port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random

from components import envoy_proxy
from components.charts import chart_namespace, chart_pin, helm_release
from components.gateway import NAME as LLM_GATEWAY
from components.labels import API_GATEWAY_COMPONENT, COMPONENT_LABEL, NAME_LABEL, PART_OF_LABEL, PROJECT
from components.model_server import PORT as MODEL_PORT
from components.planning.types import ClusterPlan
from components.rate_limit_store import envoy_gateway_values

GATEWAY_CLASS = "llm-cluster"
CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
GATEWAY = "llm-api"
CLIENT_KEYS_SECRET = "llm-api-client-keys"
CLIENT_HEADER = "x-llm-client"
UPSTREAM_CREDENTIAL = "llm-gateway-credential"
LITELLM_KEY_HEADER = "x-litellm-api-key"
# Envoy proxies expose Prometheus stats here (/stats/prometheus).
ENVOY_STATS_PORT = 19001
# Longer than the LLM gateway's own timeout, so the gateway answers first with its own error.
TIMEOUT_MARGIN_SECONDS = 60
HTTPS_PORT = 443
HTTP_PORT = 80
# 40 alphanumerics (~238 bits): no guessing, and no characters a header or shell would mangle.
CLIENT_KEY_LENGTH = 40
LABELS = {PART_OF_LABEL: PROJECT, COMPONENT_LABEL: API_GATEWAY_COMPONENT}


def listeners(plan: ClusterPlan) -> list[dict[str, Any]]:
    auth = plan.auth
    out: list[dict[str, Any]] = []
    same_namespace = {"namespaces": {"from": "Same"}}
    if auth.tls_secret_name:
        https: dict[str, Any] = {
            "name": "https",
            "protocol": "HTTPS",
            "port": HTTPS_PORT,
            "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": auth.tls_secret_name}]},
            "allowedRoutes": same_namespace,
        }
        if auth.hostname:
            https["hostname"] = auth.hostname
        out.append(https)
    if auth.allow_plain_http:
        out.append({"name": "http", "protocol": "HTTP", "port": HTTP_PORT, "allowedRoutes": same_namespace})
    return out


def http_route(plan: ClusterPlan) -> dict[str, Any]:
    rule: dict[str, Any] = {
        # Exactly the plan's inference paths: a prefix would also route the gateway's admin and management API
        # (LiteLLM's /v1/model/info, /v1/mcp/..., vllm-router's /v1/... pass-through). For LiteLLM the injected
        # key is refused there anyway (litellm_auth.py); for vllm-router, which checks no key, this is the gate.
        "matches": [{"path": {"type": "Exact", "value": path}} for path in plan.gateway.routes],
        "backendRefs": [{"name": LLM_GATEWAY, "port": plan.gateway.port}],
        "timeouts": {"request": f"{plan.gateway.timeout_seconds + TIMEOUT_MARGIN_SECONDS}s"},
    }
    if plan.gateway.kind == "litellm":
        rule["filters"] = [
            # LiteLLM reads this header before Authorization (litellm/proxy/auth/user_api_key_auth.py get_api_key):
            # a client's value would displace the injected key.
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": [LITELLM_KEY_HEADER]}},
            {
                "type": "ExtensionRef",
                "extensionRef": {
                    "group": "gateway.envoyproxy.io",
                    "kind": "HTTPRouteFilter",
                    "name": UPSTREAM_CREDENTIAL,
                },
            },
        ]
    # Rerank under vllm-router, which does not route it: straight to the score model's Service, in the same
    # route, so the SecurityPolicy and rate limits that target the route cover it. No gateway answers first here.
    direct = [
        {
            "matches": [{"path": {"type": "Exact", "value": path}} for path in d.paths],
            "backendRefs": [{"name": d.model, "port": MODEL_PORT}],
            "timeouts": {"request": f"{plan.gateway.timeout_seconds}s"},
        }
        for d in plan.gateway.direct_routes
    ]
    spec: dict[str, Any] = {"parentRefs": [{"name": GATEWAY}], "rules": [rule, *direct]}
    if plan.auth.hostname:
        spec["hostnames"] = [plan.auth.hostname]
    return spec


def route_target() -> list[dict[str, str]]:
    return [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": GATEWAY}]


def security_policy(plan: ClusterPlan) -> dict[str, Any]:
    operator_secrets = sorted({c.key_secret for c in plan.auth.clients if c.key_secret})
    generated = any(not c.key_secret for c in plan.auth.clients)
    refs = ([{"name": CLIENT_KEYS_SECRET}] if generated else []) + [{"name": s} for s in operator_secrets]
    return {
        "targetRefs": route_target(),
        "apiKeyAuth": {
            "credentialRefs": refs,
            # OpenAI SDKs send `Authorization: Bearer <key>`; Envoy strips the Bearer prefix before matching.
            "extractFrom": [{"headers": ["authorization"]}],
            "forwardClientIDHeader": CLIENT_HEADER,
            "sanitize": True,
        },
    }


def rate_limits(plan: ClusterPlan) -> dict[str, Any] | None:
    """One rule per limited client, on the client id the SecurityPolicy forwards, in the plan's scope: global
    (counted in Redis by Envoy Gateway's rate-limit service, components/rate_limit_store.py) or local (per replica).
    The `type` field is left out: Envoy Gateway v1.9 deprecates it for the `global`/`local` fields themselves."""
    scope = plan.rate_limits.scope
    if scope == "none":
        return None
    rules: list[dict[str, Any]] = [
        {
            "clientSelectors": [{"headers": [{"name": CLIENT_HEADER, "type": "Exact", "value": c.name}]}],
            "limit": {"requests": c.rate_limit.requests, "unit": c.rate_limit.unit},
        }
        for c in plan.auth.clients
        if c.rate_limit
    ]
    if scope == "local":
        return {"targetRefs": route_target(), "rateLimit": {"local": {"rules": rules}}}
    # shared: one count per client for the whole policy. Unshared, Envoy Gateway keys a global count by route
    # (xds/translator/ratelimit.go buildRouteRateLimits), so each rule of the HTTPRoute (rerank beside the LLM
    # gateway's paths) would count apart. Local limits have no such option (local_ratelimit.go ignores `shared`).
    shared = [{**rule, "shared": True} for rule in rules]
    return {"targetRefs": route_target(), "rateLimit": {"global": {"rules": shared}}}


@dataclass(frozen=True)
class ApiGatewayArgs:
    plan: ClusterPlan
    # LiteLLM's inference key (LlmGateway.inference_key), injected upstream; None for vllm-router, which checks
    # no key. Never the master key.
    upstream_key: pulumi.Output[str] | None


class ApiGateway(pulumi.ComponentResource):
    """Envoy Gateway and the objects that put client authentication and rate limits before the LLM gateway."""

    client_keys: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: ApiGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:api_gateway:ApiGateway", name, None, opts)
        plan = args.plan
        # restricted: the chart's controller and certgen pods set it in their values, and the Envoy proxy pods get
        # no escalation, no capabilities, non-root 65532 and RuntimeDefault seccomp from Envoy Gateway itself
        # (internal/infrastructure/kubernetes/resource/resource.go DefaultSecurityContext, proxy/resource.go).
        self.namespace = chart_namespace(f"{name}-namespace", "gateway-helm", "restricted", self)
        self.release = helm_release(
            "gateway-helm",
            envoy_gateway_values(plan),
            pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]),
        )
        gateway_class = k8s.apiextensions.CustomResource(
            f"{name}-class",
            api_version="gateway.networking.k8s.io/v1",
            kind="GatewayClass",
            metadata={"name": GATEWAY_CLASS, "labels": LABELS},
            spec={"controllerName": CONTROLLER},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
        )
        # The proxies' Service (the plan's type, node ports, annotations) and replicas, for this Gateway only; made
        # first, so the Gateway never runs on Envoy Gateway's defaults (a LoadBalancer Service) in between.
        proxy = k8s.apiextensions.CustomResource(
            f"{name}-envoy-proxy",
            api_version=envoy_proxy.API_VERSION,
            kind=envoy_proxy.KIND,
            metadata=meta(plan, envoy_proxy.NAME),
            spec=envoy_proxy.envoy_proxy_spec(plan),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
        )
        gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version="gateway.networking.k8s.io/v1",
            kind="Gateway",
            metadata=meta(plan, GATEWAY),
            spec={
                "gatewayClassName": GATEWAY_CLASS,
                "infrastructure": {"parametersRef": envoy_proxy.parameters_ref()},
                "listeners": listeners(plan),
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway_class, proxy]),
        )
        route = self._route(name, plan, gateway, args.upstream_key)
        self._keys_and_policies(name, plan, route)
        self.register_outputs({"gateway": GATEWAY})

    def _route(
        self, name: str, plan: ClusterPlan, gateway: pulumi.Resource, upstream_key: pulumi.Output[str] | None
    ) -> pulumi.Resource:
        """The HTTPRoute to the LLM gateway, with the upstream credential injected when the gateway needs one."""
        depends: list[pulumi.Resource] = [gateway]
        if upstream_key is not None:
            # A Pulumi secret end to end: in the state, the preview and the rendered manifests.
            bearer: pulumi.Output[str] = pulumi.Output.secret(upstream_key.apply(lambda k: f"Bearer {k}"))
            credential = k8s.core.v1.Secret(
                f"{name}-upstream-credential",
                metadata=meta(plan, UPSTREAM_CREDENTIAL),
                type="Opaque",
                string_data={"credential": bearer},
                opts=pulumi.ResourceOptions(parent=self),
            )
            depends.append(
                k8s.apiextensions.CustomResource(
                    f"{name}-credential-injection",
                    api_version="gateway.envoyproxy.io/v1alpha1",
                    kind="HTTPRouteFilter",
                    metadata=meta(plan, UPSTREAM_CREDENTIAL),
                    spec={
                        "credentialInjection": {
                            "header": "Authorization",
                            "overwrite": True,
                            "credential": {"valueRef": {"name": UPSTREAM_CREDENTIAL}},
                        }
                    },
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release, credential]),
                )
            )
        route: pulumi.Resource = k8s.apiextensions.CustomResource(
            f"{name}-route",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata=meta(plan, GATEWAY),
            spec=http_route(plan),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        return route

    def _keys_and_policies(self, name: str, plan: ClusterPlan, route: pulumi.Resource) -> None:
        """Generated client keys, the SecurityPolicy that checks them and the clients' rate limits."""
        child = pulumi.ResourceOptions(parent=self)
        keys: dict[str, pulumi.Output[str]] = {}
        for client in plan.auth.clients:
            if client.key_secret:
                continue  # the operator's Secret holds this client's key
            generated = pulumi_random.RandomPassword(
                f"{name}-key-{client.name}", length=CLIENT_KEY_LENGTH, special=False, opts=child
            )
            keys[client.name] = generated.result.apply(lambda v: f"sk-llm-{v}")
        self.client_keys = pulumi.Output.secret(pulumi.Output.all(**keys)) if keys else pulumi.Output.secret({})
        policy_depends: list[pulumi.Resource] = [route]
        if keys:
            policy_depends.append(
                k8s.core.v1.Secret(
                    f"{name}-client-keys",
                    metadata=meta(plan, CLIENT_KEYS_SECRET),
                    type="Opaque",
                    string_data=dict(keys),  # RandomPassword results are secrets
                    opts=child,
                )
            )
        k8s.apiextensions.CustomResource(
            f"{name}-api-keys",
            api_version="gateway.envoyproxy.io/v1alpha1",
            kind="SecurityPolicy",
            metadata=meta(plan, GATEWAY),
            spec=security_policy(plan),
            opts=pulumi.ResourceOptions(parent=self, depends_on=policy_depends),
        )
        limits = rate_limits(plan)
        if limits:
            k8s.apiextensions.CustomResource(
                f"{name}-rate-limits",
                api_version="gateway.envoyproxy.io/v1alpha1",
                kind="BackendTrafficPolicy",
                metadata=meta(plan, GATEWAY),
                spec=limits,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[route]),
            )


def meta(plan: ClusterPlan, object_name: str) -> dict[str, Any]:
    return {"name": object_name, "namespace": plan.namespace, "labels": LABELS}


def envoy_pod_monitor(plan: ClusterPlan) -> tuple[str, str, dict[str, Any]]:
    """(name, namespace, PodMonitor spec) scraping this stack's Envoy proxies as job `envoy`."""
    return (
        "envoy",
        chart_pin("gateway-helm").namespace,
        {
            "selector": {
                "matchLabels": {
                    NAME_LABEL: "envoy",
                    "gateway.envoyproxy.io/owning-gateway-name": GATEWAY,
                    "gateway.envoyproxy.io/owning-gateway-namespace": plan.namespace,
                }
            },
            "podMetricsEndpoints": [
                {
                    "targetPort": ENVOY_STATS_PORT,
                    "path": "/stats/prometheus",
                    "interval": plan.monitoring.scrape_interval,
                    "relabelings": [{"targetLabel": "job", "replacement": "envoy"}],
                }
            ],
        },
    )
