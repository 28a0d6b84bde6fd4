"""GpuNodePool: the nodes of one pool, labelled and tainted so only its models land there.

Backend `existing`: a NodePatch per named node (server-side apply owns just these fields, and
deleting the patch gives them back). Cloud backends arrive with the node-pool issue.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.labels import GPU_LABEL, GPU_PRODUCT_LABEL, GPU_TAINT, POOL_LABEL
from components.sizing import PoolPlan

# Per-node opt-outs the NVIDIA GPU Operator honours: pools whose host image ships the driver or the
# container toolkit keep them.
DRIVER_OPT_OUT = "nvidia.com/gpu.deploy.driver"
TOOLKIT_OPT_OUT = "nvidia.com/gpu.deploy.container-toolkit"


@dataclass(frozen=True)
class GpuNodePoolArgs:
    pool: PoolPlan


def pool_node_labels(pool: PoolPlan) -> dict[str, str]:
    labels = {POOL_LABEL: pool.name, GPU_LABEL: pool.gpu, GPU_PRODUCT_LABEL: pool.gfd_product}
    if not pool.install_driver:
        labels[DRIVER_OPT_OUT] = "false"
    if not pool.install_toolkit:
        labels[TOOLKIT_OPT_OUT] = "false"
    return labels


class GpuNodePool(pulumi.ComponentResource):
    """Labels and taints of one pool's nodes."""

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:gpu_pool:GpuNodePool", name, None, opts)
        pool = args.pool
        if pool.backend != "existing":
            # Cloud node pools (Karpenter, GKE, OVHcloud) label and taint their nodes from their own
            # templates; provisioning them is the node-pool component's job, not yet in this program.
            pulumi.log.warn(
                f"pool {pool.name!r}: {pool.backend} nodes are not provisioned by this version; they must carry "
                f"{POOL_LABEL}={pool.name} and the {GPU_TAINT['key']} taint",
                resource=self,
            )
        spec = {"taints": [GPU_TAINT]} if pool.taint else None
        self.node_patches = [
            k8s.core.v1.NodePatch(
                f"{name}-{node}",
                metadata={"name": node, "labels": pool_node_labels(pool)},
                spec=spec,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for node in pool.node_names
        ]
        self.register_outputs({"nodes": pool.node_names})
