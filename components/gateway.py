"""LlmGateway: one OpenAI-compatible endpoint in front of every model server.

kind litellm: the LiteLLM proxy without a database (no spend-log table to grow, no virtual keys), its
config generated from the plan, the master key from pulumi_random. kind vllm-router: the Rust router
discovering model-server pods by label, multi-model (IGW) mode when the stack serves several models.
Either way the gateway never owns client keys: the API gateway in front does (components/api_gateway.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random
import yaml

from components.labels import (
    COMPONENT_LABEL,
    GATEWAY_COMPONENT,
    GATEWAY_KIND_LABEL,
    INSTANCE_LABEL,
    PART_OF_LABEL,
    PROJECT,
    ROLE_LABEL,
    SERVER_ROLE,
    common_labels,
)
from components.model_server import PORT as MODEL_PORT
from components.planning.types import ClusterPlan

NAME = "llm-gateway"
SELECTOR = {INSTANCE_LABEL: NAME, COMPONENT_LABEL: GATEWAY_COMPONENT}
MASTER_KEY_SECRET = "litellm-master-key"
MASTER_KEY_FIELD = "master-key"
CONFIG_MOUNT = "/etc/litellm"
# 48 alphanumerics (~285 bits); only Envoy and LiteLLM ever see it.
MASTER_KEY_LENGTH = 48
# LiteLLM loads its router and model list before /health answers: up to 5 minutes at the 10 s period.
LITELLM_STARTUP_FAILURES = 30
# LiteLLM's `mode` per task: how it calls the backend and which endpoint serves it.
LITELLM_MODES = {"generate": "chat", "embed": "embedding", "score": "rerank"}
# After this many consecutive failures a LiteLLM deployment cools down; the router's breaker matches it.
ALLOWED_FAILS = 3
COOLDOWN_SECONDS = 30
# vllm-router (images.VLLM_ROUTER_VERSION) opens a worker's breaker after 5 failures in multi-model mode whatever
# --cb-failure-threshold says (measured), and cache_aware keeps retrying the same worker until then:
# a request outlives a dead worker only with more attempts than that.
ROUTER_BREAKER_FAILURES = 5


def model_url(plan: ClusterPlan, model_name: str) -> str:
    return f"http://{model_name}.{plan.namespace}.svc.cluster.local:{MODEL_PORT}/v1"


def litellm_config(plan: ClusterPlan) -> dict[str, Any]:
    """LiteLLM proxy config.yaml: every served model as hosted_vllm/<name>, no database, Prometheus on."""
    g = plan.gateway
    return {
        "model_list": [
            {
                "model_name": m.name,
                "litellm_params": {
                    "model": f"hosted_vllm/{m.name}",
                    "api_base": model_url(plan, m.name),
                    "api_key": "none",  # vLLM serves without a key inside the cluster
                },
                "model_info": {"mode": LITELLM_MODES[m.task]},
            }
            for m in plan.models
        ],
        "general_settings": {
            "master_key": "os.environ/LITELLM_MASTER_KEY",
            # No DATABASE_URL: nothing is logged per request, so no table grows without bound.
            "disable_spend_logs": True,
            "disable_error_logs": True,
            "store_model_in_db": False,
        },
        "litellm_settings": {
            "callbacks": ["prometheus"],
            # Prometheus scrapes /metrics/ from inside the cluster; the API gateway never routes there.
            "require_auth_for_metrics_endpoint": False,
            "request_timeout": g.timeout_seconds,
            "num_retries": g.num_retries,
            "drop_params": True,
        },
        "router_settings": {
            "routing_strategy": "simple-shuffle",
            "num_retries": g.num_retries,
            "timeout": g.timeout_seconds,
            "stream_timeout": g.timeout_seconds,
            "fallbacks": [{source: targets} for source, targets in g.fallbacks.items()],
            "allowed_fails": ALLOWED_FAILS,
            "cooldown_time": COOLDOWN_SECONDS,
        },
    }


def litellm_args(plan: ClusterPlan) -> list[str]:
    return [
        "--config", f"{CONFIG_MOUNT}/config.yaml",
        "--host", "0.0.0.0",
        "--port", str(plan.gateway.port),
        "--num_workers", str(plan.gateway.workers),
    ]  # fmt: skip


def router_args(plan: ClusterPlan) -> list[str]:
    """vllm-router arguments: pod discovery by label, retries, breaker and health checks, bound to 0.0.0.0."""
    g = plan.gateway
    args = [
        "--host", "0.0.0.0",
        "--port", str(plan.gateway.port),
        "--policy", g.routing_policy,
        "--service-discovery",
        "--selector", f"{ROLE_LABEL}={SERVER_ROLE}",
        "--service-discovery-namespace", plan.namespace,
        "--service-discovery-port", str(MODEL_PORT),
        "--prometheus-host", "0.0.0.0",
        "--prometheus-port", str(plan.gateway.metrics_port),
        # The router counts attempts, not retries.
        "--retry-max-retries", str(ROUTER_BREAKER_FAILURES + g.num_retries),
        "--cb-failure-threshold", str(ALLOWED_FAILS),
        "--cb-timeout-duration-secs", str(COOLDOWN_SECONDS),
        "--health-check-endpoint", "/health",
        "--health-check-interval-secs", "10",
        "--health-failure-threshold", "3",
        "--health-check-timeout-secs", "5",
        # Per attempt: a hung worker costs attempts x this before the client sees an error.
        "--request-timeout-secs", str(g.timeout_seconds),
    ]  # fmt: skip
    if len(plan.models) > 1:
        args.append("--enable-igw")  # multi-model: each worker is registered under the model it serves
    return args


@dataclass(frozen=True)
class LlmGatewayArgs:
    plan: ClusterPlan


@dataclass
class GatewayPod:
    """What one gateway kind adds to the common pod: its container, volumes, ports and the objects it needs."""

    container: dict[str, Any]
    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]
    ports: list[dict[str, Any]]
    depends: list[pulumi.Resource]
    service_account: str | None = None


class LlmGateway(pulumi.ComponentResource):
    """The LLM gateway Deployment, its Service, PDB, CPU HPA and (LiteLLM) config and master key."""

    master_key: pulumi.Output[str] | None

    def __init__(self, name: str, args: LlmGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:gateway:LlmGateway", name, None, opts)
        plan = args.plan
        g = plan.gateway
        self.labels = {
            **common_labels(NAME, GATEWAY_COMPONENT, g.image.rpartition(":")[2]),
            GATEWAY_KIND_LABEL: g.kind,
        }
        self.master_key = None
        pod = self._litellm(name, plan) if g.kind == "litellm" else self._router(name, plan)
        pod.container.update(
            {
                "imagePullPolicy": "IfNotPresent",
                "ports": pod.ports,
                "volumeMounts": pod.mounts,
                "resources": {
                    "requests": {"cpu": f"{g.cpu_millicores}m", "memory": f"{g.memory_mib}Mi"},
                    # Bursts (a worker's start, a spike of streams) get twice the request.
                    "limits": {"cpu": f"{2 * g.cpu_millicores}m", "memory": f"{2 * g.memory_mib}Mi"},
                },
                "securityContext": {
                    "runAsNonRoot": True,
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            }
        )
        self.deployment = self._deployment(name, plan, pod)
        self._service_budget_and_autoscaler(name, plan, pod.ports)
        self.register_outputs({"service": NAME, "port": g.port})

    def _meta(self, plan: ClusterPlan, object_name: str = NAME) -> dict[str, Any]:
        return {"name": object_name, "namespace": plan.namespace, "labels": self.labels}

    def _litellm(self, name: str, plan: ClusterPlan) -> GatewayPod:
        """LiteLLM without a database: config from the plan, the master key from pulumi_random."""
        child, port = pulumi.ResourceOptions(parent=self), plan.gateway.port
        key = pulumi_random.RandomPassword(f"{name}-master-key", length=MASTER_KEY_LENGTH, special=False, opts=child)
        self.master_key = pulumi.Output.secret(key.result.apply(lambda v: f"sk-{v}"))
        secret = k8s.core.v1.Secret(
            f"{name}-master-key",
            metadata=self._meta(plan, MASTER_KEY_SECRET),
            type="Opaque",
            string_data={MASTER_KEY_FIELD: self.master_key},
            opts=child,
        )
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=self._meta(plan, f"{NAME}-config"),
            data={"config.yaml": yaml.safe_dump(litellm_config(plan), sort_keys=False)},
            opts=child,
        )
        env: list[dict[str, Any]] = [
            {
                "name": "LITELLM_MASTER_KEY",
                "valueFrom": {"secretKeyRef": {"name": MASTER_KEY_SECRET, "key": MASTER_KEY_FIELD}},
            },
            {"name": "LITELLM_LOCAL_MODEL_COST_MAP", "value": "True"},  # no fetch from the internet at start
            # Several workers share counters through files; /tmp is a writable emptyDir.
            {"name": "PROMETHEUS_MULTIPROC_DIR", "value": "/tmp/prometheus"},
        ]
        container: dict[str, Any] = {
            "name": "litellm",
            "image": plan.gateway.image,
            "args": litellm_args(plan),
            "env": env,
            "readinessProbe": _probe("/health/readiness", port),
            "livenessProbe": _probe("/health/liveliness", port),
            "startupProbe": {**_probe("/health/liveliness", port), "failureThreshold": LITELLM_STARTUP_FAILURES},
        }
        return GatewayPod(
            container=container,
            volumes=[{"name": "tmp", "emptyDir": {}}, {"name": "config", "configMap": {"name": f"{NAME}-config"}}],
            mounts=[
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            ],
            ports=[{"name": "http", "containerPort": port, "protocol": "TCP"}],
            depends=[secret, config],
        )

    def _router(self, name: str, plan: ClusterPlan) -> GatewayPod:
        """vllm-router discovering model-server pods by label, with the RBAC its discovery needs."""
        child, g = pulumi.ResourceOptions(parent=self), plan.gateway
        account = k8s.core.v1.ServiceAccount(f"{name}-account", metadata=self._meta(plan), opts=child)
        # Discovery lists and watches pods of this namespace only.
        role = k8s.rbac.v1.Role(
            f"{name}-role",
            metadata=self._meta(plan),
            rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
            opts=child,
        )
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-binding",
            metadata=self._meta(plan),
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
            subjects=[{"kind": "ServiceAccount", "name": NAME, "namespace": plan.namespace}],
            opts=child,
        )
        container = {
            "name": "vllm-router",
            "image": g.image,
            "command": ["vllm-router"],
            "args": router_args(plan),
            "readinessProbe": _probe("/readiness", g.port),
            "livenessProbe": _probe("/liveness", g.port),
        }
        return GatewayPod(
            container=container,
            volumes=[{"name": "tmp", "emptyDir": {}}],
            mounts=[{"name": "tmp", "mountPath": "/tmp"}],
            ports=[
                {"name": "http", "containerPort": g.port, "protocol": "TCP"},
                {"name": g.metrics_port_name, "containerPort": g.metrics_port, "protocol": "TCP"},
            ],
            depends=[account, role, binding],
            service_account=NAME,
        )

    def _deployment(self, name: str, plan: ClusterPlan, pod: GatewayPod) -> k8s.apps.v1.Deployment:
        pod_spec: dict[str, Any] = {
            "containers": [pod.container],
            "volumes": pod.volumes,
            "enableServiceLinks": False,  # the gateways find models by DNS or the API, never by service env vars
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "fsGroup": 65534},
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": SELECTOR},
                }
            ],
        }
        if pod.service_account:
            pod_spec["serviceAccountName"] = pod.service_account
        return k8s.apps.v1.Deployment(
            name,
            metadata=self._meta(plan),
            spec={
                "replicas": plan.gateway.min_replicas,
                "selector": {"matchLabels": SELECTOR},
                "template": {"metadata": {"labels": self.labels}, "spec": pod_spec},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=pod.depends, ignore_changes=["spec.replicas"]),
        )

    def _service_budget_and_autoscaler(self, name: str, plan: ClusterPlan, ports: list[dict[str, Any]]) -> None:
        child, g = pulumi.ResourceOptions(parent=self), plan.gateway
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=self._meta(plan),
            spec={
                "type": "ClusterIP",
                "selector": SELECTOR,
                "ports": [{"name": p["name"], "port": p["containerPort"], "targetPort": p["name"]} for p in ports],
            },
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=self._meta(plan),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}},
            opts=child,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=self._meta(plan),
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
                "minReplicas": g.min_replicas,
                "maxReplicas": g.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": g.cpu_target_percent},
                        },
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployment]),
        )


def _probe(path: str, port: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}


def gateway_service_monitor(plan: ClusterPlan) -> tuple[str, dict[str, Any]]:
    """How Prometheus scrapes the gateway: LiteLLM at /metrics/ on its port, the router on its metrics port."""
    g = plan.gateway
    return (
        NAME,
        {
            "selector": {"matchLabels": {INSTANCE_LABEL: NAME, PART_OF_LABEL: PROJECT}},
            "namespaceSelector": {"matchNames": [plan.namespace]},
            "endpoints": [
                {
                    "port": g.metrics_port_name,
                    "path": g.metrics_path,
                    "interval": plan.monitoring.scrape_interval,
                    "relabelings": [{"targetLabel": "job", "replacement": g.kind}],
                }
            ],
        },
    )
