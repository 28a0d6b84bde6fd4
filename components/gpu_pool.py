"""GpuNodePool: the nodes of one pool, provisioned or adopted, labelled and tainted for its models.

Backends:
- existing: a NodePatch per named node (server-side apply owns just these fields; deleting the patch
  gives them back).
- karpenter: an EC2NodeClass and a NodePool for a running Karpenter (EKS), instance types from the catalog.
- gke: a pulumi-gcp container.NodePool with guest accelerators.
- ovh: a pulumi-ovh MKS node pool with a GPU flavor.
Cloud SDKs are imported only by the backend that needs them (requirements-cloud.txt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.device_plugin import sharing_labels
from components.labels import GPU_LABEL, GPU_PRODUCT_LABEL, GPU_RESOURCE, GPU_TAINT, POOL_LABEL
from components.planning.types import PoolPlan
from components.spec import GkeBackendSpec, KarpenterBackendSpec, OvhBackendSpec

# Per-node opt-outs the NVIDIA GPU Operator honours: pools whose host image ships the driver or the
# container toolkit keep them.
DRIVER_OPT_OUT = "nvidia.com/gpu.deploy.driver"
TOOLKIT_OPT_OUT = "nvidia.com/gpu.deploy.container-toolkit"
ALL_OPERANDS_OPT_OUT = "nvidia.com/gpu.deploy.operands"
# GKE runs its own device plugin unless a node carries this label (GPU Operator on GKE).
GKE_NO_DEVICE_PLUGIN = "gke-no-default-nvidia-gpu-device-plugin"
KARPENTER_DISCOVERY_TAG = "karpenter.sh/discovery"


# The Python package each cloud backend imports (see requirements-cloud.txt).
BACKEND_SDKS = {"gke": "pulumi_gcp", "ovh": "pulumi_ovh"}


def missing_sdks(pools: list[PoolPlan]) -> list[str]:
    """One line per pool whose backend's SDK is not installed, naming the fix."""
    import importlib.util

    return [
        f"pools: {p.name!r} uses the {p.backend.kind} backend, which needs "
        f"{BACKEND_SDKS[p.backend.kind].replace('_', '-')}; install it with `pip install -r requirements-cloud.txt`"
        for p in pools
        if p.backend.kind in BACKEND_SDKS and importlib.util.find_spec(BACKEND_SDKS[p.backend.kind]) is None
    ]


@dataclass(frozen=True)
class GpuNodePoolArgs:
    pool: PoolPlan


def pool_node_labels(pool: PoolPlan, node: str | None = None) -> dict[str, str]:
    """Labels every node of the pool carries: the pool, its GPU, the GPU Operator's opt-outs, and on a shared node
    (an existing one by name, or any node of a cloud pool that shares) its device-plugin config."""
    labels = {POOL_LABEL: pool.name, GPU_LABEL: pool.gpu, GPU_PRODUCT_LABEL: pool.gfd_product}
    labels.update(sharing_labels(pool, node))
    backend = pool.backend
    if isinstance(backend, GkeBackendSpec) and backend.driver_version != "INSTALLATION_DISABLED":
        # GKE owns driver and device plugin on these nodes; the operator stays off them entirely.
        labels[ALL_OPERANDS_OPT_OUT] = "false"
        return labels
    if isinstance(backend, GkeBackendSpec):
        labels[GKE_NO_DEVICE_PLUGIN] = "true"
    if not pool.install_driver:
        labels[DRIVER_OPT_OUT] = "false"
    if not pool.install_toolkit:
        labels[TOOLKIT_OPT_OUT] = "false"
    return labels


# ---------------------------------------------------------------- karpenter


def karpenter_node_class(pool: PoolPlan, backend: KarpenterBackendSpec) -> dict[str, Any]:
    """EC2NodeClass spec: the NVIDIA variant of the AMI family, discovery by cluster tag, a disk for images."""
    discovery = [{"tags": {KARPENTER_DISCOVERY_TAG: backend.cluster_name}}]
    # AL2023 has one root volume; Bottlerocket keeps images on its second (data) volume.
    device = "/dev/xvda" if backend.ami_family == "al2023" else "/dev/xvdb"
    return {
        "role": backend.node_role,
        "amiSelectorTerms": [{"alias": f"{backend.ami_family}@latest"}],
        "subnetSelectorTerms": discovery,
        "securityGroupSelectorTerms": discovery,
        "blockDeviceMappings": [
            {
                "deviceName": device,
                "ebs": {
                    "volumeSize": f"{backend.volume_size_gib}Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }
        ],
        "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
        "tags": {POOL_LABEL: pool.name},
    }


def karpenter_node_pool(pool: PoolPlan, backend: KarpenterBackendSpec, node_class: str) -> dict[str, Any]:
    """NodePool spec: the catalog's instance types for this GPU, GPU limits from maxNodes, no mid-request drains."""
    template_spec: dict[str, Any] = {
        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": node_class},
        "requirements": [
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(backend.instance_types)},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [backend.capacity_type]},
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        ],
        # GPU nodes live as long as their models; they are replaced by a rollout, not a timer.
        "expireAfter": "Never",
    }
    if pool.taint:
        template_spec["taints"] = [GPU_TAINT]
    return {
        "template": {"metadata": {"labels": pool_node_labels(pool)}, "spec": template_spec},
        "limits": {GPU_RESOURCE: str(pool.max_nodes * pool.gpus_per_node)},
        "disruption": {
            # Only empty nodes are consolidated; a node serving a model is never drained to save cost,
            # and drift (a new AMI) waits for a rollout instead of evicting replicas mid-request.
            "consolidationPolicy": "WhenEmpty",
            "consolidateAfter": "10m",
            "budgets": [{"nodes": "0", "reasons": ["Drifted"]}, {"nodes": "1"}],
        },
    }


# ---------------------------------------------------------------- gke


def gke_node_pool_args(pool: PoolPlan, backend: GkeBackendSpec) -> dict[str, Any]:
    """Inputs of gcp.container.NodePool (snake_case, as the SDK takes them)."""
    machine = pool.instance_types[0]
    node_config: dict[str, Any] = {
        "machine_type": machine,
        "disk_size_gb": backend.disk_size_gb,
        "disk_type": "pd-ssd",
        "spot": backend.spot,
        "labels": pool_node_labels(pool),
        "guest_accelerators": [
            {
                "type": pool.accelerator,
                "count": pool.gpus_per_node,
                "gpu_driver_installation_config": {"gpu_driver_version": backend.driver_version},
            }
        ],
        "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    }
    if pool.taint:
        node_config["taints"] = [{"key": GPU_TAINT["key"], "value": GPU_TAINT["value"], "effect": "NO_SCHEDULE"}]
    args: dict[str, Any] = {
        "name": pool.name,
        "project": backend.project,
        "location": backend.location,
        "cluster": backend.cluster,
        "node_config": node_config,
        "management": {"auto_repair": True, "auto_upgrade": True},
        # Surge 0: an upgrade replaces one node at a time without asking for GPUs nobody reserved.
        "upgrade_settings": {"max_surge": 0, "max_unavailable": 1},
    }
    if pool.min_nodes == pool.max_nodes:
        args["node_count"] = pool.max_nodes
    else:
        args["initial_node_count"] = pool.min_nodes
        args["autoscaling"] = {
            "total_min_node_count": pool.min_nodes,
            "total_max_node_count": pool.max_nodes,
            "location_policy": "ANY",
        }
    if pool.compact_placement:
        args["placement_policy"] = {"type": "COMPACT"}
    return args


# ---------------------------------------------------------------- ovh


def ovh_node_pool_args(pool: PoolPlan, backend: OvhBackendSpec) -> dict[str, Any]:
    """Inputs of ovh.cloudproject.KubeNodePool."""
    taints = [dict(GPU_TAINT)] if pool.taint else []
    autoscale = pool.min_nodes != pool.max_nodes
    return {
        "service_name": backend.service_name,
        "kube_id": backend.kube_id,
        "name": pool.name,
        "flavor_name": backend.flavor,
        "autoscale": autoscale,
        "min_nodes": pool.min_nodes,
        "max_nodes": pool.max_nodes,
        "desired_nodes": max(pool.min_nodes, pool.nodes_used_min),
        "monthly_billed": backend.monthly_billed and not autoscale,
        "template": {
            "metadata": {"labels": pool_node_labels(pool), "annotations": {}, "finalizers": []},
            "spec": {"taints": taints, "unschedulable": False},
        },
    }


class GpuNodePool(pulumi.ComponentResource):
    """One pool's nodes: adopted (existing) or provisioned (Karpenter, GKE, OVHcloud)."""

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:gpu_pool:GpuNodePool", name, None, opts)
        pool = args.pool
        backend = pool.backend
        child = pulumi.ResourceOptions(parent=self)
        self.resources: list[pulumi.Resource] = []
        if backend.kind == "existing":
            spec = {"taints": [GPU_TAINT]} if pool.taint else None
            self.resources = [
                k8s.core.v1.NodePatch(
                    f"{name}-{node}",
                    metadata={"name": node, "labels": pool_node_labels(pool, node)},
                    spec=spec,
                    opts=child,
                )
                for node in pool.node_names
            ]
        elif isinstance(backend, KarpenterBackendSpec):
            node_class = k8s.apiextensions.CustomResource(
                f"{name}-node-class",
                api_version="karpenter.k8s.aws/v1",
                kind="EC2NodeClass",
                metadata={"name": pool.name},
                spec=karpenter_node_class(pool, backend),
                opts=child,
            )
            node_pool = k8s.apiextensions.CustomResource(
                f"{name}-node-pool",
                api_version="karpenter.sh/v1",
                kind="NodePool",
                metadata={"name": pool.name},
                spec=karpenter_node_pool(pool, backend, pool.name),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[node_class]),
            )
            self.resources = [node_class, node_pool]
        elif isinstance(backend, GkeBackendSpec):
            import pulumi_gcp as gcp  # only stacks with GKE pools need the SDK

            self.resources = [gcp.container.NodePool(f"{name}-gke", **gke_node_pool_args(pool, backend), opts=child)]
        elif isinstance(backend, OvhBackendSpec):
            import pulumi_ovh as ovh  # only stacks with OVHcloud pools need the SDK

            self.resources = [
                ovh.cloudproject.KubeNodePool(f"{name}-mks", **ovh_node_pool_args(pool, backend), opts=child)
            ]
        self.register_outputs({"backend": backend.kind})
