"""Per-layer structure of a decoder, read from its config.json the way vLLM 0.13's model classes build their
layers: which layers attend fully, in a sliding window or in local chunks, keep a Mamba / linear-attention state,
or have no attention, with the KV heads and head size of each (components/planning/kv_cache.py sizes them).

The config keys that decide a layer's kind are the ones the model classes read (vllm/model_executor/models/*.py,
vLLM 0.13.0), with the defaults transformers 4.57's configuration classes give an absent key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.catalog.config_values import ConfigValues, shown
from components.catalog.types import LayerGroup, LayerKind, RecurrentState

# Model types whose configuration class drops `sliding_window` unless `use_sliding_window` is true
# (transformers Qwen2Config / Qwen3Config ...: `sliding_window if use_sliding_window else None`).
_WINDOW_OPT_IN = {"qwen2", "qwen2_moe", "qwen3", "qwen3_moe"}
# Model types whose classes lay their layers out themselves (read_layer_groups dispatches on them).
_STRUCTURED_TYPES = {
    "gpt_oss", "gemma2", "gemma3", "gemma3_text", "llama4", "llama4_text", "nemotron-nas", "qwen3_next", "nemotron_h",
    "jamba", "granitemoehybrid",
}  # fmt: skip
# Layers a per-layer layout is built for; past it the count is a typo (the deepest models have a few hundred).
MAX_LAYERS = 100_000
# Bytes of the dtypes a config may name for a state (NemotronH mamba_ssm_cache_dtype).
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class Dims:
    """The model-wide numbers a layer falls back to (hf_config's shape)."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int


# One layer: (kind, KV heads, head size, window or chunk size).
_Layer = tuple[LayerKind, int, int, int]


def read_layer_groups(text: ConfigValues, model_type: str, architecture: str, dims: Dims) -> tuple[LayerGroup, ...]:
    """The layer groups of a decoder; () when every layer is full attention with the model's KV heads."""
    full: _Layer = ("full", dims.kv_heads, dims.head_dim, 0)
    state: RecurrentState | None = None
    kinds: list[_Layer]
    if not _structured(text, model_type, architecture):
        return ()
    if dims.layers > MAX_LAYERS:
        text.refuse("num_hidden_layers", f"{dims.layers} layers is more than any model has (at most {MAX_LAYERS})")
    if model_type == "gpt_oss":
        # GptOssAttention: even layers use the window, odd ones attend fully (gpt_oss.py), whatever layer_types says.
        sliding: _Layer = ("sliding", dims.kv_heads, dims.head_dim, text.whole("sliding_window", minimum=0) or 128)
        kinds = [sliding if i % 2 == 0 else full for i in range(dims.layers)]
    elif model_type in ("gemma2", "gemma3", "gemma3_text"):
        kinds = _gemma(text, model_type, dims, full)
    elif model_type in ("llama4", "llama4_text"):
        kinds = _llama4(text, dims, full)
    elif model_type == "nemotron-nas" or architecture == "DeciLMForCausalLM":
        kinds = _nas(text, dims)
    elif model_type == "qwen3_next":
        kinds, state = _qwen3_next(text, dims, full)
    elif model_type == "nemotron_h":
        kinds, state = _nemotron_h(text, dims, full)
    elif model_type == "jamba":
        kinds, state = _jamba(text, dims, full)
    elif model_type == "granitemoehybrid":
        kinds, state = _granite_hybrid(text, dims, full)
    elif architecture == "MiniMaxText01ForCausalLM":
        kinds, state = _minimax(text, dims, full)
    else:
        kinds = _generic(text, model_type, dims, full)
    if all(kind == full for kind in kinds):
        return ()
    return _grouped(kinds, state)


def _structured(text: ConfigValues, model_type: str, architecture: str) -> bool:
    """Whether some layer may differ from plain full attention: a model class with its own layout, or a config
    stating windows, chunks or layer types."""
    if model_type in _STRUCTURED_TYPES or architecture in ("DeciLMForCausalLM", "MiniMaxText01ForCausalLM"):
        return True
    return any(text.present(key) for key in ("sliding_window", "attention_chunk_size", "layer_types"))


def _grouped(kinds: list[_Layer], state: RecurrentState | None) -> tuple[LayerGroup, ...]:
    indices: dict[_Layer, list[int]] = {}
    for i, kind in enumerate(kinds):
        indices.setdefault(kind, []).append(i)
    return tuple(
        LayerGroup(
            kind=kind[0],
            layers=tuple(layers),
            kv_heads=kind[1],
            head_dim=kind[2],
            window=kind[3],
            state=state if kind[0] in ("mamba", "linear") else None,
        )
        for kind, layers in indices.items()
    )


def _window(text: ConfigValues, model_type: str, default: int = 0) -> int:
    """The sliding window the configuration class keeps; 0 when it has none."""
    if text.flag("use_sliding_window") is False:
        return 0
    if model_type in _WINDOW_OPT_IN and not text.flag("use_sliding_window"):
        return 0
    return text.whole("sliding_window", minimum=0) or default


def _layer_types(text: ConfigValues, layers: int, allowed: tuple[str, ...]) -> list[str] | None:
    """`layer_types`: one allowed name per layer (transformers' layer_type_validation); None when absent."""
    kinds = text.texts("layer_types")
    if kinds is None:
        return None
    if len(kinds) != layers:
        text.refuse("layer_types", f"has {len(kinds)} entries for {layers} layers (num_hidden_layers)")
    for kind in kinds:
        if kind not in allowed:
            text.refuse("layer_types", f"{shown(kind)} is not one of {', '.join(allowed)}")
    return kinds


def _gemma(text: ConfigValues, model_type: str, dims: Dims, full: _Layer) -> list[_Layer]:
    """Gemma 2/3: `layer_types`, or every `sliding_window_pattern`-th layer global (Gemma2Config, Gemma3TextConfig
    defaults); gemma2.py / gemma3.py give the sliding ones the config's window."""
    window = _window(text, model_type, 4096)
    kinds = _layer_types(text, dims.layers, ("sliding_attention", "full_attention"))
    if kinds is None:
        pattern = 2 if model_type == "gemma2" else (text.whole("sliding_window_pattern") or 6)
        kinds = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(dims.layers)]
    sliding: _Layer = ("sliding", dims.kv_heads, dims.head_dim, window)
    return [sliding if kind == "sliding_attention" and window else full for kind in kinds]


def _llama4(text: ConfigValues, dims: Dims, full: _Layer) -> list[_Layer]:
    """Llama 4: layers with RoPE attend in chunks of `attention_chunk_size`, the NoPE ones (no_rope_layers[i] == 0,
    by default every `no_rope_layer_interval`-th) globally (Llama4Attention in llama4.py, Llama4TextConfig)."""
    chunk = text.whole("attention_chunk_size")
    if not chunk:
        return [full] * dims.layers
    flags = _bits(text, "no_rope_layers", dims.layers)
    if not flags:  # absent or [] (Llama4TextConfig treats [] as absent)
        interval = text.whole("no_rope_layer_interval") or 4
        flags = [int((i + 1) % interval != 0) for i in range(dims.layers)]
    chunked: _Layer = ("chunked", dims.kv_heads, dims.head_dim, chunk)
    return [chunked if flag else full for flag in flags]


def _bits(text: ConfigValues, key: str, layers: int) -> list[int]:
    """A per-layer list of 0/1 (no_rope_layers, attn_type_list); [] when absent, null or empty."""
    value: Any = text.values.get(key)
    if value is None or value == []:
        return []
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        text.refuse(key, f"{shown(value)} is not a list of 0 and 1")
    if any(v not in (0, 1) for v in value):
        text.refuse(key, f"{shown(value)} holds values other than 0 and 1")
    if len(value) != layers:
        text.refuse(key, f"has {len(value)} entries for {layers} layers (num_hidden_layers)")
    return list(value)


def _nas(text: ConfigValues, dims: Dims) -> list[_Layer]:
    """Nemotron NAS (DeciLM): each of `block_configs` says whether its attention is a no-op, and otherwise how many
    query heads share a KV head (DeciLMDecoderLayer in nemotron_nas.py)."""
    blocks: Any = text.values.get("block_configs")
    if not isinstance(blocks, list) or len(blocks) != dims.layers:
        found = f"{len(blocks)} entries" if isinstance(blocks, list) else shown(blocks)
        text.refuse("block_configs", f"{found} where a list of {dims.layers} layer blocks (num_hidden_layers) belongs")
    kinds: list[_Layer] = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            text.refuse(f"block_configs[{i}]", f"{shown(block)} is not a JSON object")
        layer = ConfigValues(block, text.where, f"{text.prefix}block_configs[{i}].")
        attention = layer.nested("attention") or layer.refuse("attention", "missing")
        if attention.flag("no_op"):
            kinds.append(("none", 0, 0, 0))
            continue
        group = attention.whole("n_heads_in_group") or attention.refuse("n_heads_in_group", "missing")
        if dims.heads % group:
            attention.refuse("n_heads_in_group", f"{group} does not divide num_attention_heads {dims.heads}")
        kinds.append(("full", dims.heads // group, dims.head_dim, 0))
    return kinds


def _qwen3_next(text: ConfigValues, dims: Dims, full: _Layer) -> tuple[list[_Layer], RecurrentState]:
    """Qwen3-Next: `layer_types`, or every `full_attention_interval`-th layer full (Qwen3NextConfig); the others
    are gated delta nets (qwen3_next.py get_mamba_state_shape_from_config)."""
    kinds = _layer_types(text, dims.layers, ("linear_attention", "full_attention"))
    if kinds is None:
        interval = text.whole("full_attention_interval") or 4
        kinds = ["linear_attention" if (i + 1) % interval else "full_attention" for i in range(dims.layers)]
    state = RecurrentState(
        "gated_delta_net",
        key_heads=_need(text, "linear_num_key_heads"),
        heads=_need(text, "linear_num_value_heads"),
        key_head_dim=_need(text, "linear_key_head_dim"),
        head_dim=_need(text, "linear_value_head_dim"),
        conv_kernel=_need(text, "linear_conv_kernel_dim"),
    )
    linear: _Layer = ("linear", 0, 0, 0)
    return [linear if kind == "linear_attention" else full for kind in kinds], state


def _nemotron_h(text: ConfigValues, dims: Dims, full: _Layer) -> tuple[list[_Layer], RecurrentState]:
    """Nemotron-H: `hybrid_override_pattern` names each layer, M Mamba-2, * attention, - MLP, E MoE (nemotron_h.py);
    the SSM state keeps `mamba_ssm_cache_dtype` (NemotronHForCausalLMConfig in models/config.py, float16 when
    unset)."""
    pattern = text.text("hybrid_override_pattern") or text.refuse("hybrid_override_pattern", "missing")
    if len(pattern) != dims.layers or set(pattern) - set("M*-E"):
        text.refuse(
            "hybrid_override_pattern",
            f"{shown(pattern)} must name each of the {dims.layers} layers with M, *, - or E",
        )
    heads = text.whole("mamba_num_heads") or 128
    head_dim = text.whole("mamba_head_dim") or 64
    dtype = text.text("mamba_ssm_cache_dtype") or "float16"
    if dtype not in _DTYPE_BYTES:
        text.refuse("mamba_ssm_cache_dtype", f"{shown(dtype)} is not one of {', '.join(_DTYPE_BYTES)}")
    state = RecurrentState(
        "mamba2",
        intermediate=heads * head_dim,
        groups=text.whole("n_groups") or text.whole("mamba_n_groups") or 8,
        heads=heads,
        head_dim=head_dim,
        state_size=text.whole("ssm_state_size") or 128,
        conv_kernel=text.whole("conv_kernel") or text.whole("mamba_d_conv") or 4,
        ssm_element_bytes=_DTYPE_BYTES[dtype],
    )
    by_char: dict[str, _Layer] = {"M": ("mamba", 0, 0, 0), "*": full, "-": ("none", 0, 0, 0), "E": ("none", 0, 0, 0)}
    return [by_char[c] for c in pattern], state


def _jamba(text: ConfigValues, dims: Dims, full: _Layer) -> tuple[list[_Layer], RecurrentState]:
    """Jamba: attention where i % attn_layer_period == attn_layer_offset, Mamba-1 elsewhere (JambaConfig
    layers_block_type; jamba.py get_mamba_state_shape_from_config)."""
    period = text.whole("attn_layer_period") or 8
    offset = text.whole("attn_layer_offset", minimum=0)
    offset = 4 if offset is None else offset
    if offset >= period:
        text.refuse("attn_layer_offset", f"{offset} must be less than attn_layer_period {period}")
    state = RecurrentState(
        "mamba1",
        intermediate=(text.whole("mamba_expand") or 2) * dims.hidden,
        state_size=text.whole("mamba_d_state") or 16,
        conv_kernel=text.whole("mamba_d_conv") or 4,
    )
    mamba: _Layer = ("mamba", 0, 0, 0)
    return [full if i % period == offset else mamba for i in range(dims.layers)], state


def _granite_hybrid(text: ConfigValues, dims: Dims, full: _Layer) -> tuple[list[_Layer], RecurrentState]:
    """Granite 4.0-H: `layer_types` of mamba / attention (granitemoehybrid.py), Mamba-2 shaped by the
    GraniteMoeHybridConfig numbers (mamba_d_head "auto": the inner size over the heads)."""
    kinds = _layer_types(text, dims.layers, ("mamba", "attention"))
    if kinds is None:
        text.refuse("layer_types", "missing (granitemoehybrid names each layer mamba or attention)")
    intermediate = (text.whole("mamba_expand") or 2) * dims.hidden
    heads = text.whole("mamba_n_heads") or 128
    head_dim = intermediate // heads if text.values.get("mamba_d_head") == "auto" else text.whole("mamba_d_head")
    state = RecurrentState(
        "mamba2",
        intermediate=intermediate,
        groups=text.whole("mamba_n_groups") or 1,
        heads=heads,
        head_dim=head_dim or intermediate // heads or 1,
        state_size=text.whole("mamba_d_state") or 256,
        conv_kernel=text.whole("mamba_d_conv") or 4,
    )
    mamba: _Layer = ("mamba", 0, 0, 0)
    return [mamba if kind == "mamba" else full for kind in kinds], state


def _minimax(text: ConfigValues, dims: Dims, full: _Layer) -> tuple[list[_Layer], RecurrentState]:
    """MiniMax-Text-01: `attn_type_list` (0 linear, 1 softmax attention), else `layer_types`, else all full
    (MiniMaxText01Model in minimax_text_01.py); a linear layer keeps heads x head_dim x head_dim."""
    flags = _bits(text, "attn_type_list", dims.layers)
    if not flags:
        kinds = _layer_types(text, dims.layers, ("linear_attention", "full_attention"))
        flags = [int(kind == "full_attention") for kind in kinds] if kinds else [1] * dims.layers
    state = RecurrentState("linear_attention", heads=dims.heads, head_dim=dims.head_dim)
    linear: _Layer = ("linear", 0, 0, 0)
    return [full if flag else linear for flag in flags], state


def _generic(text: ConfigValues, model_type: str, dims: Dims, full: _Layer) -> list[_Layer]:
    """Other decoders: `layer_types` decides per layer (llama.py and the classes built like it); a window without
    interleaved layer types applies to every layer (EngineArgs sets CacheConfig.sliding_window only when the
    model is not interleaved, vllm/engine/arg_utils.py)."""
    window = _window(text, model_type)
    kinds = text.texts("layer_types")
    if kinds is not None and len(kinds) != dims.layers:
        text.refuse("layer_types", f"has {len(kinds)} entries for {dims.layers} layers (num_hidden_layers)")
    if not window:
        chunk = text.whole("attention_chunk_size")
        if kinds and chunk:
            chunked: _Layer = ("chunked", dims.kv_heads, dims.head_dim, chunk)
            return [chunked if kind == "chunked_attention" else full for kind in kinds]
        return [full] * dims.layers
    sliding: _Layer = ("sliding", dims.kv_heads, dims.head_dim, window)
    if kinds and len(set(kinds)) > 1:
        return [sliding if kind == "sliding_attention" else full for kind in kinds]
    return [sliding] * dims.layers


def _need(text: ConfigValues, key: str) -> int:
    value = text.whole(key)
    if value is None:
        text.refuse(key, "missing")
    return value


def row_layer_groups(values: dict[str, Any]) -> tuple[LayerGroup, ...]:
    """The groups of a hand-typed catalog row, which states `sliding_window` and `sliding_window_layers` (the
    count): one global layer every `layers / (layers - count)` layers, as the Gemma configuration classes lay them
    out ("sliding_attention" where (i + 1) % pattern != 0). Pops the two keys from `values`."""
    window = int(values.pop("sliding_window", 0) or 0)
    count = int(values.pop("sliding_window_layers", 0) or 0)
    layers = int(values["layers"])
    if not window or not 0 < count < layers:
        return ()
    pattern = layers // (layers - count)
    kinds: list[_Layer] = [
        ("sliding", values["kv_heads"], values["head_dim"], window)
        if (i + 1) % pattern
        else ("full", values["kv_heads"], values["head_dim"], 0)
        for i in range(layers)
    ]
    return _grouped(kinds, None)
