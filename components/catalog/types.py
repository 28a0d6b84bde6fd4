"""The catalog's records: GPUs with their cloud instances, and model architectures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Cloud = Literal["aws", "gcp", "azure", "ovh"]
Attention = Literal["mha", "gqa", "mla", "encoder"]
Task = Literal["generate", "embed", "score"]


class CatalogError(ValueError):
    """A catalog row or an HF config.json that cannot be used; the message names the key and the fix."""


@dataclass(frozen=True)
class CloudInstance:
    cloud: Cloud
    type: str
    gpus: int
    nvlink_domain: int
    accelerator: str | None
    source: str


@dataclass(frozen=True)
class GpuType:
    id: str
    name: str
    architecture: str
    compute_capability: str
    memory_mib: int
    nvlink_domain: int
    peer_to_peer: bool
    native_fp8: bool
    gfd_product: str
    sources: tuple[str, ...]
    instances: tuple[CloudInstance, ...]

    def instances_on(self, cloud: Cloud) -> tuple[CloudInstance, ...]:
        return tuple(i for i in self.instances if i.cloud == cloud)


@dataclass(frozen=True)
class ModelArch:
    """Architecture numbers that sizing needs, from the catalog or a config.json."""

    id: str
    task: Task
    architecture: str
    attention: Attention
    params_b: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tie_embeddings: bool
    max_position: int
    checkpoint_dtype: str
    trust_remote_code: bool = False
    experts: int = 0
    experts_per_token: int = 0
    moe_intermediate: int = 0
    shared_experts: int = 0
    dense_layers: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    # Block-wise FP8 checkpoints need (intermediate / TP) to stay a multiple of this block.
    fp8_block: int = 0
    # AWQ/GPTQ checkpoints: bits per weight and the group one scale covers (quantization_config; 0 when not one,
    # -1 for one group per input row). A row-parallel layer's input slice (input / TP) must hold whole groups.
    quant_bits: int = 0
    quant_group: int = 0
    sliding_window_layers: int = 0
    sliding_window: int = 0
    # The architecture class generates text (*ForCausalLM, ...). A pooling task on it runs vLLM's conversion
    # (`--convert embed`, as_embedding_model in vllm/model_executor/models/adapters.py).
    generative: bool = False
    # The pooler a sentence-transformers checkpoint names (1_Pooling/config.json: LAST, MEAN, CLS, ...), as vLLM
    # reads it (get_pooling_config in vllm/transformers_utils/config.py); "" without sentence-transformers files
    # (the model class's default: LAST for decoders).
    pooling_type: str = ""
    vllm_args: tuple[str, ...] = ()
    yarn_original_max_position: int = 0
    # RoPE base frequency; 0 for learned absolute positions (BERT/XLM-R), which no rope override can extend.
    rope_theta: float = 0.0
    # The config's own RoPE scaling (rope_scaling.rope_type: yarn, llama3, ...), "default" without one, "none"
    # without RoPE; named as vLLM names it in rope_parameters.
    rope_type: str = "default"
    source: str = ""
    # Hugging Face serves the files only to an account that accepted the model's license: a token is needed.
    gated: bool = False
    gated_source: str = ""
    params_estimated: bool = False
    # False for `config: unverified` rows: hand-typed numbers, the real config.json not found.
    config_verified: bool = True
    notes: tuple[str, ...] = field(default=())

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def chunked_prefill(self) -> bool:
        """Whether vLLM splits a long prompt over several steps: generate models, and causal pooling models that
        pool the last or every token, not bidirectional encoders nor mean/CLS pooling
        (ModelConfig.is_chunked_prefill_supported in vllm/config/model.py)."""
        if self.task == "generate":
            return True
        return self.attention != "encoder" and self.pooling_type in ("", "LAST", "ALL")
