"""The HF config.json reader: a model's architecture from its config.json, for the catalog's shipped configs
and for models outside the catalog (`configPath`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from components.catalog.types import Attention, CatalogError, ModelArch, Task

_ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "nomic_bert", "distilbert", "electra", "deberta-v2", "modernbert"}
_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def load_hf_config(path: Path, model_id: str, params_b: float | None = None) -> ModelArch:
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise CatalogError(f"{path}: no such file; download the model's config.json there") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(cfg, dict):
        raise CatalogError(f"{path}: expected a JSON object (an HF config.json)")
    return arch_from_hf_config(cfg, model_id, params_b, source=str(path))


def arch_from_hf_config(
    cfg: dict[str, Any], model_id: str, params_b: float | None = None, source: str = "config.json"
) -> ModelArch:
    """Read dense, GQA, MoE, MLA and nested `text_config` layouts (multimodal) into a ModelArch."""
    # The steps run in this order so that a config with several problems reports the same one first.
    where = f"{source} of {model_id}"
    architectures = cfg.get("architectures") or ["unknown"]
    text, notes = _text_config(cfg)
    model_type = str(text.get("model_type") or cfg.get("model_type") or "")
    shape = _shape(text, where)
    rope_theta, rope_type = _rope(text)
    if text.get("max_trained_positions"):
        # Nomic BERT: vLLM caps the context at the trained positions unless a rope extension is configured
        # (NomicBertModelConfig in vllm/model_executor/models/config.py).
        shape.max_position = min(shape.max_position, int(text["max_trained_positions"]))
    moe = _moe(text, shape.intermediate, where)
    attention, mla = _attention(text, shape, model_type, architectures)
    task = _task(text, shape, model_type, architectures, attention)
    sliding = _sliding_window(text, shape.layers, model_type)
    checkpoint_dtype, fp8_block = _checkpoint(cfg, text, where)

    arch = ModelArch(
        id=model_id,
        task=task,
        architecture=architectures[0],
        attention=attention,
        params_b=0.0,
        layers=shape.layers,
        hidden=shape.hidden,
        heads=shape.heads,
        kv_heads=shape.kv_heads if attention != "mla" else shape.heads,
        head_dim=shape.head_dim,
        intermediate=shape.intermediate,
        vocab=shape.vocab,
        # Absent key: PretrainedConfig ties by default (encoders); decoder configs here all state it.
        tie_embeddings=bool(cfg.get("tie_word_embeddings", text.get("tie_word_embeddings", attention == "encoder"))),
        max_position=shape.max_position,
        rope_theta=rope_theta,
        rope_type=rope_type,
        checkpoint_dtype=checkpoint_dtype,
        fp8_block=fp8_block,
        sliding_window_layers=sliding[0],
        sliding_window=sliding[1],
        source=source,
        notes=tuple(notes),
        **moe,  # type: ignore[arg-type]
        **mla,  # type: ignore[arg-type]
    )
    if params_b is not None:
        return replace(arch, params_b=params_b)
    return replace(arch, params_b=round(estimate_params(arch) / 1e9, 3), params_estimated=True)


@dataclass
class _Shape:
    """The transformer's dimensions, adjusted in place by the attention and task steps."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    max_position: int
    intermediate: int


def _first(cfg: dict[str, Any], keys: tuple[str, ...], what: str, source: str) -> Any:
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    raise CatalogError(
        f"{source}: missing '{keys[0]}' ({what})"
        + (f"; also looked for {', '.join(keys[1:])}" if len(keys) > 1 else "")
        + "; use the model's original config.json or add the model to components/catalog/models.yaml"
    )


def _text_config(cfg: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The language model's part of the config: multimodal configs nest it under `text_config`."""
    if not isinstance(cfg.get("text_config"), dict):
        return cfg, []
    text = {**cfg["text_config"]}
    text.setdefault("vocab_size", cfg.get("vocab_size"))
    return text, ["text_config read for the language model; vision tower parameters come from params_b"]


def _shape(text: dict[str, Any], where: str) -> _Shape:
    layers = int(_first(text, ("num_hidden_layers", "n_layer", "num_layers"), "layer count", where))
    hidden = int(_first(text, ("hidden_size", "n_embd", "d_model"), "hidden size", where))
    heads = int(_first(text, ("num_attention_heads", "n_head", "num_heads"), "attention heads", where))
    kv_heads = int(text.get("num_key_value_heads") or (1 if text.get("multi_query") else heads))
    head_dim = int(text.get("head_dim") or hidden // heads)
    vocab = int(_first(text, ("vocab_size",), "vocabulary size", where))
    max_position = int(
        _first(text, ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"), "context length", where)
    )
    intermediate = int(text.get("intermediate_size") or text.get("ffn_dim") or text.get("n_inner") or 4 * hidden)
    return _Shape(layers, hidden, heads, kv_heads, head_dim, vocab, max_position, intermediate)


def _rope(text: dict[str, Any]) -> tuple[float, str]:
    """(RoPE base, RoPE scaling type); (0.0, "none") for learned absolute positions."""
    # The names vLLM reads the RoPE base under (patch_rope_parameters in vllm/transformers_utils/config.py).
    rope_theta = float(text.get("rope_theta") or text.get("rotary_emb_base") or 0.0)
    scaling = text.get("rope_scaling") or {}
    rope_type = str(scaling.get("rope_type") or scaling.get("type") or "default") if rope_theta else "none"
    return rope_theta, rope_type


def _moe(text: dict[str, Any], intermediate: int, where: str) -> dict[str, int]:
    """ModelArch's MoE fields; none for a dense model."""
    experts = int(text.get("n_routed_experts") or text.get("num_local_experts") or text.get("num_experts") or 0)
    if not experts:
        return {}
    return {
        "experts": experts,
        "experts_per_token": int(_first(text, ("num_experts_per_tok", "moe_topk"), "experts per token", where)),
        "moe_intermediate": int(text.get("moe_intermediate_size") or intermediate),
        "shared_experts": int(text.get("n_shared_experts") or 0),
        "dense_layers": int(text.get("first_k_dense_replace") or 0),
    }


def _attention(
    text: dict[str, Any], shape: _Shape, model_type: str, architectures: list[str]
) -> tuple[Attention, dict[str, int]]:
    """The attention kind and ModelArch's MLA fields; MLA sets the head dimension from its own parts."""
    attention: Attention = "gqa" if shape.kv_heads < shape.heads else "mha"
    mla = {}
    if text.get("kv_lora_rank"):
        attention = "mla"
        mla = {"kv_lora_rank": int(text["kv_lora_rank"]), "qk_rope_head_dim": int(text.get("qk_rope_head_dim") or 64)}
        shape.head_dim = int(text.get("qk_nope_head_dim", 128)) + mla["qk_rope_head_dim"]
    if model_type in _ENCODER_TYPES or any("Bert" in a or "Roberta" in a for a in architectures):
        attention = "encoder"
    return attention, mla


def _task(text: dict[str, Any], shape: _Shape, model_type: str, architectures: list[str], attention: Attention) -> Task:
    if attention != "encoder":
        return "generate"
    task: Task = "score" if any(a.endswith("ForSequenceClassification") for a in architectures) else "embed"
    # RoBERTa-style position ids start after the padding index, so 8194 positions hold 8192 tokens.
    if model_type in ("roberta", "xlm-roberta") and text.get("pad_token_id") is not None:
        shape.max_position -= int(text["pad_token_id"]) + 1
    return task


def _sliding_window(text: dict[str, Any], layers: int, model_type: str) -> tuple[int, int]:
    """(layers with a sliding window, window); Qwen2 configs state a window they do not use."""
    window = int(text.get("sliding_window") or 0)
    if not window or text.get("use_sliding_window") is False:
        return 0, 0
    kinds = text.get("layer_types")
    if isinstance(kinds, list):
        count = sum(1 for k in kinds if k == "sliding_attention")
    elif model_type == "gemma2":
        count = layers // 2  # Gemma 2 alternates local and global layers
    else:
        return 0, 0
    return (count, window) if 0 < count < layers else (0, 0)


def _checkpoint(cfg: dict[str, Any], text: dict[str, Any], where: str) -> tuple[str, int]:
    """(checkpoint dtype, FP8 block size) from the torch dtype and quantization_config."""
    quant = cfg.get("quantization_config") or text.get("quantization_config") or {}
    fp8_block = 0
    checkpoint_dtype = _DTYPES.get(str(text.get("torch_dtype") or cfg.get("torch_dtype") or "bfloat16"), "bf16")
    method = str(quant.get("quant_method", ""))
    if method == "fp8" or (
        method == "compressed-tensors" and "float" in json.dumps(quant) and '"num_bits": 8' in json.dumps(quant)
    ):
        checkpoint_dtype = "fp8"
        block = quant.get("weight_block_size")
        fp8_block = int(block[0]) if block else 0
    elif method in ("awq", "gptq", "mxfp4", "bitsandbytes"):
        checkpoint_dtype = method
    elif method:
        raise CatalogError(
            f"{where}: quantization_config.quant_method {method!r} is not sized by this tool; "
            "use a bf16, fp8, awq, gptq or mxfp4 checkpoint"
        )
    return checkpoint_dtype, fp8_block


def estimate_params(arch: ModelArch) -> float:
    """Parameter count from the architecture (used when no published count is given)."""
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
    dense_mlp = gated * h * arch.intermediate
    if arch.is_moe:
        moe_mlp = (arch.experts + arch.shared_experts) * 3 * h * arch.moe_intermediate + h * arch.experts
        mlp_total = arch.dense_layers * dense_mlp + (arch.layers - arch.dense_layers) * moe_mlp
    else:
        mlp_total = arch.layers * dense_mlp
    embeddings = arch.vocab * h * (1 if arch.tie_embeddings or arch.attention == "encoder" else 2)
    return float(arch.layers * attn + mlp_total + embeddings)
