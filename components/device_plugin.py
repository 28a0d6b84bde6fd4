"""The NVIDIA device plugin's per-node configuration for shared GPUs, as the GPU Operator deploys it: one ConfigMap
(chart values devicePlugin.config) with a whole-GPU default and one time-slicing config per sharing pool, selected
on each shared node by the label nvidia.com/device-plugin.config.

Formats at the pinned versions: GPU Operator v25.10.1 (deployments/gpu-operator/values.yaml `devicePlugin.config`,
templates/plugin_config.yaml writes `data` into the ConfigMap, templates/clusterpolicy.yaml hands `name` and
`default` to the ClusterPolicy); its device plugin v0.18.1 (api/config/v1: Config, Sharing, ReplicatedResources;
cmd/config-manager/main.go DefaultConfigLabel). Pools that do not share keep the plugin's defaults: a stack with
no sharing pool sets none of these values.
"""

from __future__ import annotations

from typing import Any

import yaml

from components.planning.sharing_types import WHOLE_GPU_RESOURCE
from components.planning.types import PoolPlan

CONFIG_MAP_NAME = "device-plugin-config"
CONFIG_LABEL = "nvidia.com/device-plugin.config"
# Nodes without the label: whole GPUs, the plugin's own default (the chart's example `default` config).
WHOLE_CONFIG = "whole-gpus"


def whole_gpus_config() -> dict[str, Any]:
    return {"version": "v1", "flags": {"migStrategy": "none"}}


def time_slicing_config(slices: int) -> dict[str, Any]:
    """Every GPU of the node as `slices` replicas named nvidia.com/gpu.shared (renameByDefault), one per pod
    (failRequestsGreaterThanOne: a pod asking for two would get no more memory, only a second share of time)."""
    return {
        "version": "v1",
        "flags": {"migStrategy": "none"},
        "sharing": {
            "timeSlicing": {
                "renameByDefault": True,
                "failRequestsGreaterThanOne": True,
                "resources": [{"name": WHOLE_GPU_RESOURCE, "replicas": slices}],
            }
        },
    }


def device_plugin_configs(pools: list[PoolPlan]) -> dict[str, dict[str, Any]]:
    """Config name -> device plugin config, for the ConfigMap; empty when no pool shares."""
    shared = [p for p in pools if p.sharing is not None]
    if not shared:
        return {}
    configs = {WHOLE_CONFIG: whole_gpus_config()}
    for pool in shared:
        assert pool.sharing is not None
        configs[pool.sharing.config_name] = time_slicing_config(pool.sharing.slices_per_gpu)
    return configs


def device_plugin_values(pools: list[PoolPlan]) -> dict[str, Any]:
    """The GPU Operator chart's `devicePlugin` values: the chart creates the ConfigMap; nothing without sharing."""
    configs = device_plugin_configs(pools)
    if not configs:
        return {}
    data = {name: yaml.safe_dump(config, sort_keys=False) for name, config in configs.items()}
    return {
        "devicePlugin": {"config": {"create": True, "name": CONFIG_MAP_NAME, "default": WHOLE_CONFIG, "data": data}}
    }


def sharing_labels(pool: PoolPlan, node: str | None = None) -> dict[str, str]:
    """The label that selects the pool's sharing config, on a shared node (an existing node by name, or every node
    of a cloud pool's template when `node` is None); nothing elsewhere."""
    sharing = pool.sharing
    if sharing is None:
        return {}
    if sharing.all_nodes or (node is not None and node in sharing.node_names):
        return {CONFIG_LABEL: sharing.config_name}
    return {}
