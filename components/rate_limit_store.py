"""RateLimitStore: the Redis that holds the clients' global request counts, for Envoy Gateway's rate-limit service.

With `rateLimits.scope: global` in the plan, Envoy Gateway runs its rate-limit service (envoyproxy/ratelimit,
Deployment `envoy-ratelimit` in its own namespace) once the EnvoyGateway config names a Redis backend
(`envoy_gateway_values`); every Envoy replica asks that service, and the service increments one counter per client
and window in this Redis, so a client's limit holds across replicas.

One replica, no persistence: a counter lives for one limit window (a second to a day) and Envoy's rate-limit
service re-creates it on the next request, so a restart forgets at most the current window's counts; a volume would
only bring those back late. A second replica would be a second, unreplicated set of counters, so there is none, and
no PodDisruptionBudget (one with a single pod would block every node drain). While Redis is away the limits are not
enforced: Envoy Gateway's rateLimit.failClosed is false (components/planning/rate_limits.py FAIL_OPEN).

Access: only the rate-limit service's pods reach 6379 and only Prometheus reaches the exporter (NetworkPolicy);
Redis itself has no password, since Envoy Gateway v1.9 passes none (RateLimitRedisSettings: url, urlRef, tls).
Monitoring: a redis_exporter sidecar (redis_up, memory, evictions) and the rate-limit service's own metrics
(`ratelimit_service_rate_limit_*`, `ratelimit_service_should_rate_limit_error{err_type="redis_error"}`), each by a
PodMonitor (`pod_monitors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.charts import chart_pin
from components.images import REDIS_EXPORTER_IMAGE, REDIS_IMAGE
from components.labels import COMPONENT_LABEL, NAME_LABEL, PART_OF_LABEL, PROJECT, PROMETHEUS_POD_LABELS
from components.planning.types import ClusterPlan

NAME = "rate-limit-redis"
COMPONENT = "rate-limit-store"
REDIS_PORT = 6379
EXPORTER_PORT = 9121  # redis_exporter's default listen address, 0.0.0.0:9121
SELECTOR = {NAME_LABEL: NAME, PART_OF_LABEL: PROJECT}
LABELS = {**SELECTOR, COMPONENT_LABEL: COMPONENT, "app.kubernetes.io/managed-by": "pulumi"}
# The labels Envoy Gateway gives its rate-limit service's pods (internal/infrastructure/kubernetes/ratelimit/
# resource.go rateLimitLabels, v1.9.0) and the container port of their Prometheus metrics (PrometheusPort 19001,
# named `metrics`).
RATE_LIMIT_SERVICE_PODS = {
    NAME_LABEL: "envoy-ratelimit",
    COMPONENT_LABEL: "ratelimit",
    "app.kubernetes.io/managed-by": "envoy-gateway",
}
RATE_LIMIT_SERVICE_METRICS_PORT = "metrics"
# Counters are a few hundred bytes each (one per client and window); 96 MiB holds millions. Past it, Redis evicts the
# keys closest to expiry first (every counter has a TTL), never refusing a write.
MAX_MEMORY_MIB = 96
MEMORY_LIMIT_MIB = 160
# The alpine image's redis user (uid 999, group 1000); redis_exporter's image user 59000:59000 (components/images.py).
REDIS_UID, REDIS_GID = 999, 1000
EXPORTER_ID = 59000
DATA_MOUNT = "/data"  # the image's WORKDIR; nothing is saved there (--save "", --appendonly no)
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def namespace() -> str:
    """Envoy Gateway's namespace: its rate-limit service runs there, and it enforces Pod Security restricted."""
    return chart_pin("gateway-helm").namespace


def redis_url() -> str:
    """host:port as Envoy Gateway passes it to the rate-limit service's REDIS_URL (no scheme; the Service's DNS
    name without the cluster domain, like Envoy Gateway's own examples)."""
    return f"{NAME}.{namespace()}.svc:{REDIS_PORT}"


def envoy_gateway_values(plan: ClusterPlan) -> dict[str, Any]:
    """gateway-helm values that turn on Envoy Gateway's global rate limiting with this Redis: the chart merges
    `config.envoyGateway` into the EnvoyGateway config (templates/envoy-gateway-config.yaml, v1.9.0); empty unless
    the plan's scope is global."""
    if plan.rate_limits.scope != "global":
        return {}
    rate_limit = {
        "backend": {"type": "Redis", "redis": {"url": redis_url()}},
        # The default, written out: unlimited rather than refused when the counts cannot be read.
        "failClosed": False,
    }
    return {"config": {"envoyGateway": {"rateLimit": rate_limit}}}


def pod_monitors(plan: ClusterPlan) -> tuple[tuple[str, str, dict[str, Any]], ...]:
    """(name, namespace, PodMonitor spec) for the store's exporter (job `rate-limit-redis`) and the rate-limit
    service (job `envoy-ratelimit`); none unless the plan's scope is global."""
    if plan.rate_limits.scope != "global":
        return ()

    def monitor(job: str, labels: dict[str, str], port: str) -> tuple[str, str, dict[str, Any]]:
        endpoint = {
            "port": port,
            "path": "/metrics",
            "interval": plan.monitoring.scrape_interval,
            "relabelings": [{"targetLabel": "job", "replacement": job}],
        }
        return (job, namespace(), {"selector": {"matchLabels": labels}, "podMetricsEndpoints": [endpoint]})

    return (
        monitor(NAME, SELECTOR, "metrics"),
        monitor("envoy-ratelimit", RATE_LIMIT_SERVICE_PODS, RATE_LIMIT_SERVICE_METRICS_PORT),
    )


def redis_container() -> dict[str, Any]:
    args = [
        "redis-server",
        # Counters only: no snapshots, no append-only file (see the module docstring).
        *("--save", ""),
        *("--appendonly", "no"),
        *("--maxmemory", f"{MAX_MEMORY_MIB}mb"),
        *("--maxmemory-policy", "volatile-ttl"),
    ]
    ping = {"exec": {"command": ["redis-cli", "-p", str(REDIS_PORT), "ping"]}}
    return {
        "name": "redis",
        "image": REDIS_IMAGE,
        "args": args,
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        "readinessProbe": {**ping, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {
            "tcpSocket": {"port": REDIS_PORT},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 6,
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": f"{MEMORY_LIMIT_MIB}Mi"},
            "limits": {"cpu": "1", "memory": f"{MEMORY_LIMIT_MIB}Mi"},
        },
        "securityContext": {**CONTAINER_SECURITY, "runAsUser": REDIS_UID, "runAsGroup": REDIS_GID},
        "volumeMounts": [{"name": "data", "mountPath": DATA_MOUNT}],
    }


def exporter_container() -> dict[str, Any]:
    return {
        "name": "exporter",
        "image": REDIS_EXPORTER_IMAGE,
        "env": [{"name": "REDIS_ADDR", "value": f"redis://localhost:{REDIS_PORT}"}],
        "ports": [{"name": "metrics", "containerPort": EXPORTER_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": EXPORTER_PORT}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}},
        "securityContext": {**CONTAINER_SECURITY, "runAsUser": EXPORTER_ID, "runAsGroup": EXPORTER_ID},
    }


def deployment_spec() -> dict[str, Any]:
    pod_spec = {
        "containers": [redis_container(), exporter_container()],
        "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "64Mi"}}],
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": REDIS_UID,
            "runAsGroup": REDIS_GID,
            "fsGroup": REDIS_GID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 10,
    }
    return {
        "replicas": 1,
        # Never two at once: a second pod behind the Service would split the counts.
        "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": SELECTOR},
        "template": {"metadata": {"labels": LABELS}, "spec": pod_spec},
    }


def network_policy_spec() -> dict[str, Any]:
    """Ingress: the rate-limit service's pods to Redis, Prometheus's pods to the exporter; no egress (the exporter
    reaches Redis over the pod's loopback, which no NetworkPolicy governs)."""

    def peer(namespace_name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace_name}},
            "podSelector": {"matchLabels": labels},
        }

    prometheus_namespace = chart_pin("kube-prometheus-stack").namespace
    return {
        "podSelector": {"matchLabels": SELECTOR},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [peer(namespace(), RATE_LIMIT_SERVICE_PODS)],
                "ports": [{"protocol": "TCP", "port": REDIS_PORT}],
            },
            {
                "from": [peer(prometheus_namespace, PROMETHEUS_POD_LABELS)],
                "ports": [{"protocol": "TCP", "port": EXPORTER_PORT}],
            },
        ],
        "egress": [],
    }


@dataclass(frozen=True)
class RateLimitStoreArgs:
    plan: ClusterPlan


class RateLimitStore(pulumi.ComponentResource):
    """Redis for the global rate-limit counts, its Service and its NetworkPolicy, in Envoy Gateway's namespace."""

    def __init__(self, name: str, args: RateLimitStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:rate_limit_store:RateLimitStore", name, None, opts)
        if args.plan.rate_limits.scope != "global":
            raise ValueError(
                f"RateLimitStore: the plan's rate-limit scope is {args.plan.rate_limits.scope!r}, not global"
            )
        child = pulumi.ResourceOptions(parent=self)
        metadata = {"name": NAME, "namespace": namespace(), "labels": LABELS}
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy", metadata=metadata, spec=network_policy_spec(), opts=child
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=metadata, spec=deployment_spec(), opts=child
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata,
            spec={
                "type": "ClusterIP",
                "selector": SELECTOR,
                "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}],
            },
            opts=child,
        )
        self.register_outputs({"url": redis_url()})
