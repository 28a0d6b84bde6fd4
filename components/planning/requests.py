"""What sizing is asked: the GPU shape a model is sized on (GpuShape) and the model as the operator asked for it
(SizingRequest), from a stack's ModelSpec or the `size` CLI."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from components.catalog import GpuType, ModelArch
from components.planning.engine_versions import DEFAULT_VLLM_VERSION, ENGINE_VERSIONS, EngineVersion, engine_version
from components.spec import ModelSpec, SpecError

# How far the CLI looks for multi-node shapes when no pool bounds it.
CLI_MAX_NODES = 16

Objective = Literal["throughput", "latency"]

# gpu_memory_utilization of the oldest supported release, for a request naming an unsupported one (refused later).
OLDEST_DEFAULT_UTILIZATION = 0.9


class SizingError(SpecError):
    """A model that cannot run as asked; one line per problem, each naming the field and the fix."""


@dataclass(frozen=True)
class GpuShape:
    """What sizing needs to know about a node: its GPU, how many, and how they are wired."""

    gpu_id: str
    gpu_name: str
    memory_mib: int
    gpus_per_node: int
    nvlink_domain: int
    peer_to_peer: bool
    native_fp8: bool
    compute_capability: str

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024

    @classmethod
    def of(cls, gpu: GpuType, gpus_per_node: int, nvlink_domain: int | None = None) -> GpuShape:
        domain = nvlink_domain or math.gcd(gpu.nvlink_domain, gpus_per_node)
        return cls(
            gpu_id=gpu.id,
            gpu_name=gpu.name,
            memory_mib=gpu.memory_mib,
            gpus_per_node=gpus_per_node,
            nvlink_domain=domain,
            peer_to_peer=gpu.peer_to_peer,
            native_fp8=gpu.native_fp8,
            compute_capability=gpu.compute_capability,
        )


@dataclass(frozen=True)
class SizingRequest:
    """One model as the operator asked for it (from a ModelSpec or the `size` CLI)."""

    arch: ModelArch
    field: str = "model"  # where errors point: "models[3]" in a stack, "--model" in the CLI
    served_name: str | None = None
    revision: str | None = None
    task: str | None = None
    quantization: str = "auto"
    kv_cache_dtype: str = "auto"
    max_model_len: int | None = None
    rope_factor: float | None = None
    rope_original: int | None = None
    objective: Objective = "throughput"
    min_concurrency: int = 1
    gpu_memory_utilization: float = 0.0  # 0: the release's own default (__post_init__)
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    tensor_parallel: int | None = None
    pipeline_parallel: int | None = None
    deterministic: bool = False
    seed: int = 0
    prefix_caching: bool | None = None
    tool_call_parser: str | None = None
    trust_remote_code: bool | None = None
    extra_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    secret_env: tuple[str, ...] = ()  # names only: the plan checks them, the values stay in Secrets
    vllm_version: str = DEFAULT_VLLM_VERSION
    # Set by layout_choice.py when it picked TP x PP by prediction: why, in place of "pinned in the stack".
    layout_reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.gpu_memory_utilization:
            # vLLM's own default for the release (0.92 from 0.33, which counts CUDA graphs inside the budget);
            # an unsupported release is refused where `engine` is read, so fall back to the oldest default here.
            row = ENGINE_VERSIONS.get(self.vllm_version)
            object.__setattr__(
                self,
                "gpu_memory_utilization",
                row.default_gpu_memory_utilization if row else OLDEST_DEFAULT_UTILIZATION,
            )

    @property
    def engine(self) -> EngineVersion:
        """The table row of the vLLM release this model runs (components/planning/engine_versions.py)."""
        return engine_version(self.vllm_version, f"{self.field}.vllmVersion")

    @classmethod
    def from_spec(
        cls, model: ModelSpec, arch: ModelArch, index: int, stack_vllm_version: str | None = None
    ) -> SizingRequest:
        rope = model.rope_scaling
        return cls(
            arch=arch,
            field=f"models[{index}]",
            vllm_version=model.vllm_version or stack_vllm_version or DEFAULT_VLLM_VERSION,
            served_name=model.name,
            revision=model.revision,
            task=model.task,
            quantization=model.quantization,
            kv_cache_dtype=model.kv_cache_dtype,
            max_model_len=model.max_model_len,
            rope_factor=rope.factor if rope else None,
            rope_original=rope.original_max_position if rope else None,
            objective=model.objective,
            min_concurrency=model.min_concurrency,
            gpu_memory_utilization=model.gpu_memory_utilization or 0.0,
            max_num_seqs=model.max_num_seqs,
            max_num_batched_tokens=model.max_num_batched_tokens,
            tensor_parallel=model.tensor_parallel,
            pipeline_parallel=model.pipeline_parallel,
            deterministic=model.deterministic,
            seed=model.seed,
            prefix_caching=model.prefix_caching,
            tool_call_parser=model.tool_call_parser,
            trust_remote_code=model.trust_remote_code,
            extra_args=tuple(model.extra_args),
            env=tuple(sorted(model.env.items())),
            secret_env=tuple(sorted(model.secret_env)),
        )
