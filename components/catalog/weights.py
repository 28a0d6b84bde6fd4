"""What a checkpoint stores, part by part: parameter counts from the architecture (embeddings, lm_head, attention,
MLP, MoE experts and router, norms, a vision tower) and their bytes in a WeightFormat, or the checkpoint's own size
from its model.safetensors.index.json when that is known."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

from components.catalog.config_values import ConfigValues
from components.catalog.types import ModelArch, WeightFormat

INDEX_FILE = "model.safetensors.index.json"
# Module-name pieces that place a quantization `ignore` / `modules_to_not_convert` entry in a part of the layer.
_ATTENTION = ("attn", "q_proj", "k_proj", "v_proj", "o_proj", "qkv", "q_a_proj", "q_b_proj", "kv_a_proj", "kv_b_proj")
_MLP_PROJ = ("gate_proj", "up_proj", "down_proj", "w1", "w2", "w3")
_ALWAYS_16_BIT = ("lm_head", "embed", "vision", "visual", "multi_modal", "mm_projector", "router", "mtp")


@dataclass(frozen=True)
class ParamGroups:
    """Parameter counts of the whole model by the part that holds them."""

    embed: float
    head: float
    attention: float
    dense_mlp: float
    experts: float
    shared_experts: float
    router: float
    norms: float
    vision: float

    @property
    def linear(self) -> float:
        return self.attention + self.dense_mlp + self.experts + self.shared_experts

    @property
    def total(self) -> float:
        return self.embed + self.head + self.linear + self.router + self.norms + self.vision


@dataclass(frozen=True)
class WeightSplit:
    """Bytes of the weights by where pipeline parallelism puts them: the embedding (and a vision tower) on the first
    stage, lm_head on the last, the decoder layers spread over the stages."""

    embed: float
    head: float
    vision: float
    layers: float

    @property
    def total(self) -> float:
        return self.embed + self.head + self.vision + self.layers


def param_groups(arch: ModelArch) -> ParamGroups:
    """Parameter counts from the architecture alone (no published count)."""
    h = arch.hidden
    if arch.attention == "mla":
        rope = arch.qk_rope_head_dim
        attn = (
            h * arch.heads * arch.head_dim
            + h * (arch.kv_lora_rank + rope)
            + arch.kv_lora_rank * arch.heads * (arch.head_dim - rope + 128)
            + arch.heads * 128 * h
        )
    else:
        attn = 2 * h * arch.heads * arch.head_dim + 2 * h * arch.kv_heads * arch.head_dim
    gated = 2 if arch.attention == "encoder" else 3  # encoders use a plain two-matrix MLP
    moe_layers = arch.layers - arch.dense_layers if arch.is_moe else 0
    expert = 3 * h * arch.moe_intermediate
    return ParamGroups(
        embed=float(arch.vocab * h),
        head=float(arch.vocab * h if arch.task == "generate" and not arch.tie_embeddings else 0),
        attention=float(arch.layers * attn),
        dense_mlp=float((arch.layers - moe_layers) * gated * h * arch.intermediate),
        experts=float(moe_layers * arch.experts * expert),
        shared_experts=float(moe_layers * arch.shared_experts * expert),
        router=float(moe_layers * h * arch.experts),
        norms=float((2 * arch.layers + 1) * h),
        vision=float(arch.vision_params),
    )


def weight_split(arch: ModelArch, fmt: WeightFormat, params: float | None = None) -> WeightSplit:
    """Bytes of each part held in `fmt`, for `params` parameters in all (default: the arch's params_b), the linear
    layers taking what the fixed parts (embeddings, norms, router, vision) leave, in the config's proportions."""
    groups = param_groups(arch)
    total = arch.params_b * 1e9 if params is None else params
    fixed = groups.total - groups.linear
    scale = max(total - fixed, 0.0) / groups.linear if groups.linear else 0.0
    edge = 4.0 if fmt.method == "fp32" else 2.0  # unquantized parts stay in the 16-bit dtype (fp32 when asked)
    kept = _kept_16_bit(fmt, arch.layers)
    quantized = {
        "attention": fmt.scope == "linear",
        "dense_mlp": fmt.scope == "linear",
        "experts": True,
        "shared_experts": fmt.scope == "linear",
    }
    layer_bytes = (groups.router + groups.norms) * edge
    for part, on in quantized.items():
        count = getattr(groups, part) * scale
        share = kept[part] if on and fmt.quantized else 1.0
        layer_bytes += count * share * edge + count * (1 - share) * fmt.bits / 8
    return WeightSplit(groups.embed * edge, groups.head * edge, groups.vision * edge, layer_bytes)


def checkpoint_split(arch: ModelArch) -> WeightSplit:
    """The checkpoint's own size (index total_size) split like weight_split: the 16-bit embeddings, lm_head and
    vision tower as the config sizes them, the decoder layers the rest."""
    estimate = weight_split(arch, arch.weights)
    layers = max(arch.checkpoint_bytes - estimate.embed - estimate.head - estimate.vision, 0.0)
    return WeightSplit(estimate.embed, estimate.head, estimate.vision, layers)


def _kept_16_bit(fmt: WeightFormat, layers: int) -> dict[str, float]:
    """The share of each quantizable part that the scheme's skip list leaves 16-bit. An entry naming one layer
    (`model.layers.3.mlp`) keeps 1/layers of the part; one projection keeps its share of the part's matrices."""
    kept = {"attention": 0.0, "dense_mlp": 0.0, "experts": 0.0, "shared_experts": 0.0}
    for pattern in fmt.skipped:
        name = pattern.lower().removeprefix("re:")
        if any(piece in name for piece in _ALWAYS_16_BIT) or re.search(r"mlp\.gate($|[^_])", name):
            continue
        share = 1.0 / layers if re.search(r"layers\.\d+\.", name) else 1.0
        if "shared_expert" in name:
            parts = ["shared_experts"]
        elif "expert" in name:
            parts = ["experts"]
        elif any(piece in name for piece in _ATTENTION):
            parts, share = ["attention"], share * (0.25 if name.endswith(_ATTENTION[1:5]) else 1.0)
        elif "mlp" in name or name.endswith(_MLP_PROJ):
            parts, share = ["dense_mlp", "experts", "shared_experts"], share / (3 if name.endswith(_MLP_PROJ) else 1)
        else:
            continue
        for part in parts:
            kept[part] = min(1.0, kept[part] + share)
    return kept


def vision_params(top: ConfigValues, text_hidden: int) -> int:
    """A vision tower's and its projector's parameters from the config's `vision_config` dimensions: ViT blocks
    (attention 4h^2, MLP 2 h x intermediate, norms), patch and position embeddings, and the projector(s) to the
    language model's width (a patch merger of spatial_merge_size^2 patches, one more per deepstack layer as in
    Qwen3-VL); 0 without a vision_config or without its sizes."""
    vision = top.nested("vision_config")
    if vision is None:
        return 0
    # Qwen2-VL names the tower's width embed_dim and its output hidden_size.
    hidden = vision.whole("embed_dim") or vision.whole("hidden_size") or vision.whole("width")
    layers = vision.whole("num_hidden_layers") or vision.whole("depth") or vision.whole("layers")
    if not hidden or not layers:
        return 0
    intermediate = vision.whole("intermediate_size") or 4 * hidden
    patch = vision.whole("patch_size") or 14
    channels = vision.whole("num_channels") or vision.whole("in_channels") or 3
    frames = vision.whole("temporal_patch_size") or 1
    image = vision.whole("image_size") or 0
    positions = vision.whole("num_position_embeddings") or ((image // patch) ** 2 if image else 0)
    merged = hidden * (vision.whole("spatial_merge_size") or 1) ** 2
    deepstack = vision.values.get("deepstack_visual_indexes")
    mergers = 1 + (len(deepstack) if isinstance(deepstack, list) else 0)
    blocks = layers * (4 * hidden * hidden + 2 * hidden * intermediate + 4 * hidden)
    embeddings = channels * frames * patch * patch * hidden + positions * hidden
    out = text_hidden if merged == hidden else merged
    projector = mergers * (merged * out + out * text_hidden)
    return blocks + embeddings + projector


def index_total_size(folder: Path) -> int | None:
    """metadata.total_size of the model.safetensors.index.json in `folder`; None when absent or unusable."""
    try:
        index = json.loads((folder / INDEX_FILE).read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    metadata = index.get("metadata") if isinstance(index, dict) else None
    size = metadata.get("total_size") if isinstance(metadata, dict) else None
    if isinstance(size, float) and size.is_integer():
        size = int(size)
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def with_checkpoint_bytes(arch: ModelArch, size: int, source: str) -> ModelArch:
    """The arch with its checkpoint's size: weights are then sized from the file, not from a parameter estimate. A
    16-bit (or fp32) checkpoint also gives the exact parameter count: its bytes over the bytes per parameter."""
    per_param = {"bf16": 2, "fp16": 2, "fp32": 4}.get(arch.weights.method)
    params_b = round(size / per_param / 1e9, 3) if per_param and arch.params_estimated else arch.params_b
    return replace(
        arch, checkpoint_bytes=size, checkpoint_bytes_source=source, params_b=params_b, params_estimated=False
    )


def with_index_next_to(arch: ModelArch, config_path: Path) -> ModelArch:
    """The arch with the total_size of a model.safetensors.index.json beside its config.json, when there is one."""
    size = index_total_size(config_path.parent)
    return arch if size is None else with_checkpoint_bytes(arch, size, str(config_path.parent / INDEX_FILE))
