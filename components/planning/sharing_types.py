"""The plan's types for shared GPUs (components/planning/sharing.py decides them): how a pool slices its GPUs and
how a model runs on one slice. Kept apart from types.py so ModelPlan and PoolPlan can hold them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

# The extended resource a whole GPU is, and the one a slice is: the device plugin renames replicated GPUs to
# `<resource>.shared` with renameByDefault (k8s-device-plugin v0.18.1 README, "Shared Access to GPUs"), so a
# whole-GPU pod can never be handed a slice of a GPU that others use.
WHOLE_GPU_RESOURCE = "nvidia.com/gpu"
SHARED_GPU_RESOURCE = "nvidia.com/gpu.shared"

SharingStrategy = Literal["time-slicing"]


class _Plan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSharing(_Plan):
    """One model's engine on one slice: the memory it may take, and why that is safe beside any other tenants."""

    slices_per_gpu: int
    gpu_gib: float  # the whole GPU's memory, as cudaMemGetInfo reports it (the catalog's)
    slice_gib: float  # the GPU's memory over its slices
    margin_gib: float  # CUDA context + CUDA graphs + vLLM's profiling slack, held outside the engine's budget
    gpu_memory_utilization: float  # of the whole GPU, as vLLM reads it: (slice - margin) / GPU memory
    footprint_gib: float  # the most this engine holds on its GPU: context + budget (or what it uses) + graphs
    reason: str


class PoolSharing(_Plan):
    """A pool that offers shared GPUs: its device-plugin configuration, its shared nodes and what sharing saves."""

    strategy: SharingStrategy
    strategy_reason: str
    slices_per_gpu: int
    resource: str  # what shared pods request, one each
    config_name: str  # the key of the device plugin's ConfigMap, and the value of its node label
    all_nodes: bool  # a cloud pool: every node of the pool shares (one node template)
    node_names: list[str]  # existing nodes that share; empty when all_nodes
    nodes_reason: str
    shared_models: list[str]
    slices_min: int  # slices the shared models take at min and max replicas
    slices_max: int
    gpus_used_min_unshared: int  # what the pool would use if every model took whole GPUs
    gpus_used_max_unshared: int
    reasons: list[str]  # per model: shared or not, and why
