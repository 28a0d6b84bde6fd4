"""LlmCluster: wires every component from the ClusterPlan (never from raw config)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.api_gateway import ApiGateway, ApiGatewayArgs, envoy_pod_monitor
from components.autoscaling import Autoscaling, AutoscalingArgs
from components.gateway import LlmGateway, LlmGatewayArgs, gateway_service_monitor
from components.gpu_operator import GpuOperator, GpuOperatorArgs
from components.gpu_pool import GpuNodePool, GpuNodePoolArgs
from components.leader_worker_set import LeaderWorkerSetController
from components.model_server import HF_TOKEN_KEY, VllmModel, VllmModelArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.network_policies import NetworkPolicies, NetworkPoliciesArgs
from components.planning.engine_versions import engine_version
from components.planning.types import ClusterPlan
from components.rate_limit_store import RateLimitStore, RateLimitStoreArgs
from components.rate_limit_store import pod_monitors as rate_limit_pod_monitors
from components.vllm_image import VllmImage, VllmImageArgs

HF_TOKEN_SECRET = "hf-token"
# Every pod of the serving namespace (model servers, the LLM gateway) runs non-root, without capabilities or
# escalation, under RuntimeDefault seccomp: the API server refuses any pod that does not.
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


@dataclass(frozen=True)
class LlmClusterArgs:
    plan: ClusterPlan
    # The operator's Hugging Face token (secret config `llm-cluster:hfToken`); empty for public models.
    hf_token: pulumi.Input[str]
    # secret config `llm-cluster:grafanaAdminPassword`; generated (pulumi_random) when None.
    grafana_admin_password: pulumi.Input[str] | None = None
    # Registry credentials for `images.vllm` (config llm-cluster:registryUsername, secret registryPassword).
    registry_username: pulumi.Input[str] | None = None
    registry_password: pulumi.Input[str] | None = None


class LlmCluster(pulumi.ComponentResource):
    """Namespaces, GPU pools and operator, model servers."""

    def __init__(self, name: str, args: LlmClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:cluster:LlmCluster", name, None, opts)
        plan = args.plan
        child = pulumi.ResourceOptions(parent=self)
        # Deleting or renaming the namespace would delete every claim and Secret in it: protected.
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": plan.namespace, "labels": POD_SECURITY},
            opts=pulumi.ResourceOptions(parent=self, protect=plan.protect_namespace),
        )
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        self.hf_token = k8s.core.v1.Secret(
            f"{name}-hf-token",
            metadata={"name": HF_TOKEN_SECRET, "namespace": plan.namespace},
            type="Opaque",
            string_data={HF_TOKEN_KEY: pulumi.Output.secret(args.hf_token)},
            opts=in_namespace,
        )
        self.monitoring = (
            Monitoring(
                f"{name}-monitoring",
                MonitoringArgs(
                    plan=plan,
                    grafana_admin_password=args.grafana_admin_password,
                    service_monitors=(gateway_service_monitor(plan),),
                    pod_monitors=(envoy_pod_monitor(plan), *rate_limit_pod_monitors(plan)),
                ),
                pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]),
            )
            if plan.monitoring.enabled
            else None
        )
        self.gpu_operator = GpuOperator(
            f"{name}-gpu-operator",
            GpuOperatorArgs(pools=plan.pools, service_monitor=plan.monitoring.enabled),
            pulumi.ResourceOptions(parent=self, depends_on=[self.monitoring] if self.monitoring else []),
        )
        self.pools = {
            pool.name: GpuNodePool(f"{name}-pool-{pool.name}", GpuNodePoolArgs(pool=pool), child) for pool in plan.pools
        }
        self.models = self._model_servers(name, args)
        self.gateway = LlmGateway(
            f"{name}-gateway",
            LlmGatewayArgs(plan=plan),
            pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, *self.models.values()]),
        )
        self.api_gateway = ApiGateway(
            f"{name}-api-gateway",
            ApiGatewayArgs(plan=plan, upstream_key=self.gateway.inference_key),
            pulumi.ResourceOptions(parent=self, depends_on=[self.gateway]),
        )
        # Global rate limits: the Redis Envoy Gateway's rate-limit service counts in, in Envoy Gateway's namespace.
        self.rate_limit_store = (
            RateLimitStore(
                f"{name}-rate-limit-store",
                RateLimitStoreArgs(plan=plan),
                pulumi.ResourceOptions(parent=self, depends_on=[self.api_gateway.namespace]),
            )
            if plan.rate_limits.scope == "global"
            else None
        )
        self.network_policies = NetworkPolicies(
            f"{name}-network-policies", NetworkPoliciesArgs(plan=plan), in_namespace
        )
        self.autoscaling = None
        if any(m.autoscaling for m in plan.models):
            assert self.monitoring is not None  # the spec requires monitoring for autoscaled models
            self.autoscaling = Autoscaling(
                f"{name}-autoscaling",
                AutoscalingArgs(models=plan.models, pools=plan.pools, namespace=plan.namespace),
                pulumi.ResourceOptions(parent=self, depends_on=[self.monitoring, *self.models.values()]),
            )
        self.register_outputs({"namespace": plan.namespace, "models": sorted(self.models)})

    def _model_servers(self, name: str, args: LlmClusterArgs) -> dict[str, VllmModel]:
        """The LWS controller when a replica spans nodes, the model-server image, then one VllmModel per model."""
        plan, child = args.plan, pulumi.ResourceOptions(parent=self)
        needs_lws = any(m.workload == "LeaderWorkerSet" for m in plan.models)
        self.lws = LeaderWorkerSetController(f"{name}-lws", child) if needs_lws else None
        pools = {p.name: p for p in plan.pools}
        image: pulumi.Input[str] | None = None  # each model's release (ModelPlan.image)
        if plan.images.vllm is not None:
            built = VllmImage(
                f"{name}-vllm-image",
                VllmImageArgs(
                    plan.images.vllm,
                    args.registry_username or "",
                    args.registry_password or "",
                    base_image=engine_version(plan.vllm_version).image,
                ),
                child,
            )
            image = built.repo_digest
        models = {}
        for model in plan.models:
            depends: list[pulumi.Resource] = [self.namespace, self.hf_token, self.pools[model.pool], self.gpu_operator]
            if model.workload == "LeaderWorkerSet" and self.lws is not None:
                depends.append(self.lws)
            models[model.name] = VllmModel(
                f"{name}-model-{model.name}",
                VllmModelArgs(
                    model=model,
                    pool=pools[model.pool],
                    namespace=plan.namespace,
                    hf_token_secret=HF_TOKEN_SECRET,
                    network=plan.network,
                    image=image,
                ),
                pulumi.ResourceOptions(parent=self, depends_on=depends),
            )
        return models
