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
    # The performance model's roofline: peak HBM GB/s and dense tensor TFLOPS (0 when unknown or no FP8 cores).
    hbm_gbs: float = 0.0
    bf16_tflops: float = 0.0
    fp8_tflops: float = 0.0

    def instances_on(self, cloud: Cloud) -> tuple[CloudInstance, ...]:
        return tuple(i for i in self.instances if i.cloud == cloud)


# Which weights a quantization scheme covers: every linear layer, or only the MoE experts (vLLM 0.13's MXFP4 has no
# linear method: attention, router and dense MLPs stay 16-bit, vllm/model_executor/layers/quantization/mxfp4.py).
QuantScope = Literal["linear", "experts"]


@dataclass(frozen=True)
class WeightFormat:
    """How the checkpoint (or vLLM's online quantization) stores the weights of its linear layers, read from
    `quantization_config` by components/catalog/quantization.py.

    `bits` is what one quantized weight costs including its share of scales and zero points (4-bit AWQ with groups
    of 128: 4 + (16 + 4) / 128). Embeddings, lm_head, norms, the MoE router and a vision tower stay 16-bit, as do
    the modules `skipped` names (the config's `ignore` / `modules_to_not_convert` / `llm_int8_skip_modules`)."""

    method: str  # the checkpoint_dtype: bf16, fp16, fp32, fp8, awq, gptq, w4a16, w8a16, int8, w4a8, nvfp4, ...
    bits: float
    group: int = 0  # input elements one scale covers (a row-parallel slice must hold whole groups); 0 per channel
    block: int = 0  # block-wise FP8: the weight_block_size (intermediate / TP must stay a multiple of it)
    scope: QuantScope = "linear"
    skipped: tuple[str, ...] = ()
    detail: str = ""  # the scheme as the plan names it, e.g. "AWQ 4-bit, groups of 128"
    packed_bits: int = 0  # the weight's own bits without scales (AWQ/GPTQ `bits`); 0 when not an integer scheme

    @property
    def quantized(self) -> bool:
        return self.bits < 16


SIXTEEN_BIT_WEIGHTS = WeightFormat("bf16", 16.0)


# How a decoder layer keeps its context, as vLLM 0.13 sizes it (vllm/v1/kv_cache_interface.py): full attention
# (FullAttentionSpec), a sliding window (SlidingWindowSpec), chunked local attention (ChunkedLocalAttentionSpec), a
# constant-size recurrent state per request (MambaSpec: Mamba layers, and linear attention such as gated delta nets),
# or nothing (a NAS layer whose attention is a no-op, an MLP-only layer of a hybrid).
LayerKind = Literal["full", "sliding", "chunked", "mamba", "linear", "none"]
# The state shape a Mamba or linear-attention layer allocates (MambaStateShapeCalculator in
# vllm/model_executor/layers/mamba/mamba_utils.py, picked by the model class's get_mamba_state_shape_from_config).
StateFormula = Literal["mamba1", "mamba2", "gated_delta_net", "linear_attention"]


@dataclass(frozen=True)
class RecurrentState:
    """The numbers a Mamba / linear-attention layer's state shape is computed from; TP splits some of them, so
    the bytes depend on the layout (components/planning/kv_cache.py)."""

    formula: StateFormula
    intermediate: int = 0  # mamba1/mamba2: the SSM's inner size (expand x hidden, or heads x head_dim)
    groups: int = 0  # mamba2: n_groups
    heads: int = 0  # mamba2 / linear_attention: heads; gated_delta_net: value heads
    head_dim: int = 0  # mamba2 / linear_attention: head size; gated_delta_net: value head size
    key_heads: int = 0  # gated_delta_net
    key_head_dim: int = 0  # gated_delta_net
    state_size: int = 0  # mamba1/mamba2: d_state
    conv_kernel: int = 0
    # Bytes of one element of the SSM (temporal) state when the config fixes its dtype (NemotronH's
    # mamba_ssm_cache_dtype); 0: the model's dtype, like the convolution state.
    ssm_element_bytes: int = 0


@dataclass(frozen=True)
class LayerGroup:
    """Layers that keep their context the same way, by index in the model (pipeline stages split by index)."""

    kind: LayerKind
    layers: tuple[int, ...]
    kv_heads: int = 0  # attention kinds: KV heads of the whole model (TP splits or replicates them)
    head_dim: int = 0
    window: int = 0  # sliding: the window; chunked: the chunk size
    state: RecurrentState | None = None  # mamba / linear

    @property
    def count(self) -> int:
        return len(self.layers)


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
    # The layers whose KV cache is not plain full attention with `kv_heads` x `head_dim` (sliding window, chunked
    # local attention, Mamba / linear-attention state, NAS layers without attention or with their own KV heads),
    # read by components/catalog/layers.py; empty when every layer is plain full attention.
    layer_groups: tuple[LayerGroup, ...] = ()
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
    # The checkpoint's weight layout (quantization_config), and its size in bytes when known: metadata.total_size of
    # its model.safetensors.index.json (catalog row or the file next to a configPath), with where it was read.
    weights: WeightFormat = SIXTEEN_BIT_WEIGHTS
    checkpoint_bytes: int = 0
    checkpoint_bytes_source: str = ""
    # Parameters of a vision tower and multimodal projector, estimated from the config's vision_config.
    vision_params: int = 0
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
