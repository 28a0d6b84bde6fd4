"""LlmGateway: one OpenAI-compatible endpoint in front of every model server.

kind litellm: the LiteLLM proxy without a database (no spend-log table to grow, no virtual keys), its config
from the plan, master and inference keys from pulumi_random. The master key stays in LiteLLM's pod; the API
gateway injects the inference key, which LiteLLM's custom auth hook (litellm_auth.py, shipped in the config
ConfigMap) accepts on the plan's inference paths only: no admin key in Envoy, nor for a pod reaching LiteLLM.
kind vllm-router: the Rust router discovering model-server pods by label, multi-model (IGW) mode for several
models. It checks no key (--api-key only authenticates it to its workers; its /list_workers, /remove_worker,
/flush_cache answer anyone): the HTTPRoute's inference paths and the NetworkPolicy (API port from Envoy's pods
only) keep those closed. Either way the gateway never owns client keys: the API gateway in front does
(components/api_gateway.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random

from components.gateway_config import (
    CONFIG_MOUNT,
    INFERENCE_KEY_ENV,
    INFERENCE_ROUTES_ENV,
    litellm_args,
    litellm_config_files,
    router_args,
)
from components.labels import (
    COMPONENT_LABEL,
    GATEWAY_COMPONENT,
    GATEWAY_KIND_LABEL,
    INSTANCE_LABEL,
    PART_OF_LABEL,
    PROJECT,
    common_labels,
)
from components.planning.types import ClusterPlan

NAME = "llm-gateway"
CONFIG_HASH_ANNOTATION = "llm-cluster.io/config-sha256"
SELECTOR = {INSTANCE_LABEL: NAME, COMPONENT_LABEL: GATEWAY_COMPONENT}
MASTER_KEY_SECRET = "litellm-master-key"
MASTER_KEY_FIELD = "master-key"
INFERENCE_KEY_SECRET = "litellm-inference-key"
INFERENCE_KEY_FIELD = "inference-key"
# 48 alphanumerics (~285 bits). Only LiteLLM sees the master key; only Envoy and LiteLLM the inference key.
MASTER_KEY_LENGTH = 48
INFERENCE_KEY_LENGTH = 48
# LiteLLM loads its router and model list before /health answers: up to 5 minutes at the 10 s period.
LITELLM_STARTUP_FAILURES = 30


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
    annotations: dict[str, str] = field(default_factory=dict)


class LlmGateway(pulumi.ComponentResource):
    """The LLM gateway Deployment, its Service, PDB, CPU HPA and (LiteLLM) config, auth hook and keys."""

    # LiteLLM's inference key, which the API gateway injects; None for vllm-router, which checks no key.
    inference_key: pulumi.Output[str] | None

    def __init__(self, name: str, args: LlmGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:gateway:LlmGateway", name, None, opts)
        plan = args.plan
        g = plan.gateway
        self.labels = {
            **common_labels(NAME, GATEWAY_COMPONENT, g.image.rpartition(":")[2]),
            GATEWAY_KIND_LABEL: g.kind,
        }
        self.inference_key = None
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
                    **pod.container.get("securityContext", {}),
                },
            }
        )
        self.deployment = self._deployment(name, plan, pod)
        self._service_budget_and_autoscaler(name, plan, pod.ports)
        self.register_outputs({"service": NAME, "port": g.port})

    def _meta(self, plan: ClusterPlan, object_name: str = NAME) -> dict[str, Any]:
        return {"name": object_name, "namespace": plan.namespace, "labels": self.labels}

    def _key_secret(
        self, name: str, plan: ClusterPlan, secret_name: str, field: str, length: int
    ) -> tuple[pulumi.Output[str], k8s.core.v1.Secret]:
        """A random key (a Pulumi secret from the start) and the Secret holding it."""
        child = pulumi.ResourceOptions(parent=self)
        generated = pulumi_random.RandomPassword(f"{name}-{field}", length=length, special=False, opts=child)
        key: pulumi.Output[str] = pulumi.Output.secret(generated.result.apply(lambda v: f"sk-{v}"))
        secret = k8s.core.v1.Secret(
            f"{name}-{field}",
            metadata=self._meta(plan, secret_name),
            type="Opaque",
            string_data={field: key},
            opts=child,
        )
        return key, secret

    def _litellm(self, name: str, plan: ClusterPlan) -> GatewayPod:
        """LiteLLM without a database: config and auth hook from the plan, master and inference keys."""
        child, port = pulumi.ResourceOptions(parent=self), plan.gateway.port
        # The master key never leaves this pod; once custom_auth is set LiteLLM no longer accepts it on any
        # request, so it opens nothing over HTTP.
        _, master_secret = self._key_secret(name, plan, MASTER_KEY_SECRET, MASTER_KEY_FIELD, MASTER_KEY_LENGTH)
        self.inference_key, inference_secret = self._key_secret(
            name, plan, INFERENCE_KEY_SECRET, INFERENCE_KEY_FIELD, INFERENCE_KEY_LENGTH
        )
        files = litellm_config_files(plan)
        config = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=self._meta(plan, f"{NAME}-config"), data=files, opts=child
        )
        env: list[dict[str, Any]] = [
            {
                "name": "LITELLM_MASTER_KEY",
                "valueFrom": {"secretKeyRef": {"name": MASTER_KEY_SECRET, "key": MASTER_KEY_FIELD}},
            },
            {
                "name": INFERENCE_KEY_ENV,
                "valueFrom": {"secretKeyRef": {"name": INFERENCE_KEY_SECRET, "key": INFERENCE_KEY_FIELD}},
            },
            {"name": INFERENCE_ROUTES_ENV, "value": ",".join(plan.gateway.routes)},
            {"name": "LITELLM_LOCAL_MODEL_COST_MAP", "value": "True"},  # no fetch from the internet at start
            # Several workers share counters through files; /tmp is a writable emptyDir.
            {"name": "PROMETHEUS_MULTIPROC_DIR", "value": "/tmp/prometheus"},
            # The root filesystem is read-only: LiteLLM copies its UI and logo to these (proxy_server.py reads
            # both variables for read-only deployments) instead of /var/lib/litellm.
            {"name": "LITELLM_UI_PATH", "value": "/tmp/litellm/ui"},
            {"name": "LITELLM_ASSETS_PATH", "value": "/tmp/litellm/assets"},
        ]
        container: dict[str, Any] = {
            "name": "litellm",
            "image": plan.gateway.image,
            "securityContext": {"readOnlyRootFilesystem": True},
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
            depends=[master_secret, inference_secret, config],
            # LiteLLM reads its config and hook once at start: a changed ConfigMap rolls the pods.
            annotations={
                CONFIG_HASH_ANNOTATION: hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
            },
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
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "runAsGroup": 65534,
                "fsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            # Only vllm-router's pod discovery calls the Kubernetes API.
            "automountServiceAccountToken": pod.service_account is not None,
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
                "template": {"metadata": {"labels": self.labels, "annotations": pod.annotations}, "spec": pod_spec},
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
