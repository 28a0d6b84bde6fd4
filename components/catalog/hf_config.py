"""The HF config.json reader: a model's architecture from its config.json, for the catalog's shipped configs
and for models outside the catalog (`configPath`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from components.catalog.config_values import ConfigValues, shown
from components.catalog.layers import Dims, read_layer_groups
from components.catalog.quantization import weight_format, with_hf_quant_config
from components.catalog.rerankers import reranker_family
from components.catalog.transformers_config import EngineRefusal, defaulted_keys, engine_config
from components.catalog.types import Attention, CatalogError, ModelArch, Task, WeightFormat
from components.catalog.weights import param_groups, vision_params, with_index_next_to

_ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "nomic_bert", "distilbert", "electra", "deberta-v2", "modernbert"}
# The task vLLM 0.13 gives an architecture by the end of its name, first match wins: the runner and conversion of
# _SUFFIX_TO_DEFAULTS in vllm/config/model.py (embed conversion -> embed, classify -> score).
_SUFFIX_TASKS: tuple[tuple[str, Task], ...] = (
    ("ForCausalLM", "generate"),
    ("ForConditionalGeneration", "generate"),
    ("ChatModel", "generate"),
    ("LMHeadModel", "generate"),
    ("ForTextEncoding", "embed"),
    ("EmbeddingModel", "embed"),
    ("ForSequenceClassification", "score"),
    ("ClassificationModel", "score"),
    ("ForRewardModeling", "embed"),
    ("RewardModel", "embed"),
    ("Model", "embed"),
)
# Registered architectures whose names the suffixes misread (vllm/model_executor/models/registry.py): these
# `*Model`s generate; GritLM embeds; JinaVLForRanking scores.
_REGISTERED_TASKS: dict[str, Task] = {
    "AquilaModel": "generate",
    "ChatGLMModel": "generate",
    "MiDashengLMModel": "generate",
    "Qwen2_5OmniModel": "generate",
    "UltravoxModel": "generate",
    "GritLM": "embed",
    "JinaVLForRanking": "score",
}
_ST_POOLING = "sentence_transformers.models.Pooling"
# 1_Pooling/config.json mode names as vLLM maps them (get_pooling_config_name in vllm/transformers_utils/config.py).
_POOLING_MODES = {"lasttoken": "LAST", "mean": "MEAN", "cls": "CLS", "all": "ALL", "step": "STEP"}
_AGAIN = "download the model's config.json again (UTF-8 JSON, from its Hugging Face repository)"


def load_hf_config(path: Path, model_id: str, params_b: float | None = None) -> ModelArch:
    try:
        cfg = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"{path}: no such file; download the model's config.json there") from None
    except IsADirectoryError:
        raise CatalogError(f"{path}: is a directory; give the path of the config.json file inside it") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot be read ({exc.strerror}); make it a readable file") from None
    except ValueError as exc:  # a NUL in the path; not UTF-8; not JSON (JSONDecodeError is a ValueError)
        raise CatalogError(_unreadable(path, exc)) from None
    except RecursionError:
        raise CatalogError(f"{path}: nested too deeply to be a config.json; {_AGAIN}") from None
    if not isinstance(cfg, dict):
        raise CatalogError(f"{path}: expected a JSON object (an HF config.json), got a {_json_type(cfg)}; {_AGAIN}")
    cfg = with_hf_quant_config(cfg, path)
    arch = arch_from_hf_config(cfg, model_id, params_b, source=str(path), pooling=sentence_transformers_pooling(path))
    return with_index_next_to(arch, path)


def sentence_transformers_pooling(config_path: Path) -> str | None:
    """The pooler of a sentence-transformers checkpoint next to `config_path`: modules.json with a Pooling module
    and its config.json (get_pooling_config in vllm/transformers_utils/config.py), None without one. vLLM serves
    such a checkpoint with its pooling runner whatever its architecture. An unstated mode keeps the model class's
    default, LAST for decoders (encoders never chunk their prefill, whatever they pool)."""
    modules = _side_file(config_path.parent / "modules.json")
    if not isinstance(modules, list):
        return None
    pooling = next((m for m in modules if isinstance(m, dict) and m.get("type") == _ST_POOLING), None)
    if pooling is None:
        return None
    folder = pooling.get("path")
    settings = _side_file(config_path.parent / folder / "config.json") if isinstance(folder, str) and folder else None
    if not isinstance(settings, dict):
        return "LAST"
    mode = next((key for key, value in settings.items() if value is True), "")
    name = mode.removeprefix("pooling_mode_").split("_")[0]
    return _POOLING_MODES.get(name, "LAST")


def _side_file(path: Path) -> object:
    """A sentence-transformers JSON file, or None when it is absent or unreadable (vLLM then ignores it too)."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _unreadable(path: Path, exc: ValueError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"{path}: not UTF-8 text (byte {exc.start}); {_AGAIN}"
    if isinstance(exc, json.JSONDecodeError):
        return f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); {_AGAIN}"
    return f"{str(path)!r}: not a usable path ({exc}); give the path of the model's config.json"


def _json_type(value: object) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


def arch_from_hf_config(
    cfg: dict[str, Any],
    model_id: str,
    params_b: float | None = None,
    source: str = "config.json",
    pooling: str | None = None,
    *,
    as_written: bool = False,
) -> ModelArch:
    """Read dense, GQA, MoE, MLA and nested `text_config` layouts (multimodal) into a ModelArch.

    `pooling` is the sentence-transformers pooler shipped with the checkpoint (sentence_transformers_pooling).
    The dict is first built by transformers as vLLM loads it (engine_config); `as_written` skips that step."""
    # The steps run in this order so that a config with several problems reports the same one first.
    # Every value is read through ConfigValues, which refuses a wrong type or range naming the file and the key,
    # after transformers has filled in the model type's defaults as vLLM's config loader does.
    engine_notes: list[str] = []
    if not as_written:
        try:
            cfg, engine_notes = engine_config(cfg, f"{source} of {model_id}")
        except EngineRefusal as refusal:
            if refusal.nearest is not None:  # ConfigValues says more plainly what is wrong with a value
                arch_from_hf_config(refusal.nearest, model_id, params_b, source, pooling, as_written=True)
            raise
    try:
        return _arch(cfg, model_id, params_b, source, pooling, engine_notes)
    except CatalogError as exc:
        defaulted = [note for note in engine_notes if any(f"{key}: " in str(exc) for key in defaulted_keys(note))]
        if not defaulted:
            raise
        # A refused value the file never states came from the model type's defaults: say so.
        raise CatalogError(f"{exc} (note: {'; '.join(defaulted)})") from None


def _arch(
    cfg: dict[str, Any], model_id: str, params_b: float | None, source: str, pooling: str | None, notes: list[str]
) -> ModelArch:
    top = ConfigValues(cfg, f"{source} of {model_id}")
    architectures = top.texts("architectures") or ["unknown"]
    text, text_notes = _text_config(top)
    notes = notes + text_notes
    model_type = text.text("model_type") or top.text("model_type") or ""
    shape = _shape(text, top)
    rope_theta, rope_type = _rope(text)
    trained = text.whole("max_trained_positions")
    if trained:
        # Nomic BERT: vLLM caps the context at the trained positions unless a rope extension is configured
        # (NomicBertModelConfig in vllm/model_executor/models/config.py).
        shape.max_position = min(shape.max_position, trained)
    moe = _moe(text, shape, model_type)
    attention, mla = _attention(text, shape, model_type, architectures)
    task = _task(text, shape, model_type, architectures, attention, pooling)
    if reranker_family(model_id, architectures[0]) is not None:  # a causal-LM reranker scores unless asked otherwise
        task = "score"
    dims = Dims(shape.layers, shape.hidden, shape.heads, shape.kv_heads, shape.head_dim)
    groups = read_layer_groups(text, model_type, architectures[0], dims) if attention != "encoder" else ()
    weights = _checkpoint(top, text)

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
        tie_embeddings=_tied(top, text, attention),
        max_position=shape.max_position,
        rope_theta=rope_theta,
        rope_type=rope_type,
        checkpoint_dtype=weights.method,
        fp8_block=weights.block,
        quant_bits=weights.packed_bits if weights.method in ("awq", "gptq") else 0,
        quant_group=weights.group if weights.method in ("awq", "gptq") else 0,
        weights=weights,
        vision_params=vision_params(top, shape.hidden),
        layer_groups=groups,
        generative=attention != "encoder" and _architecture_task(architectures[0]) == "generate",
        pooling_type=pooling or "",
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


def _text_config(top: ConfigValues) -> tuple[ConfigValues, list[str]]:
    """The language model's part of the config: multimodal configs nest it under `text_config`."""
    text = top.nested("text_config")
    if text is None:
        return top, []
    return text, ["text_config read for the language model; a vision_config tower is counted from its own dimensions"]


def _shape(text: ConfigValues, top: ConfigValues) -> _Shape:
    layers = text.first_whole(("num_hidden_layers", "n_layer", "num_layers"), "layer count")
    hidden = text.first_whole(("hidden_size", "n_embd", "d_model"), "hidden size")
    heads = text.first_whole(("num_attention_heads", "n_head", "num_heads"), "attention heads")
    kv_heads = text.whole("num_key_value_heads") or (1 if text.flag("multi_query") else heads)
    if not text.whole("kv_lora_rank", minimum=0):  # MLA derives its heads from its own parts
        _check_heads(text, hidden, heads, kv_heads)
    head_dim = text.whole("head_dim") or hidden // heads
    # A multimodal config may keep the vocabulary size at the top level, outside text_config.
    vocab = text.whole("vocab_size") or top.whole("vocab_size") or text.first_whole(("vocab_size",), "vocabulary size")
    max_position = text.first_whole(
        ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"), "context length"
    )
    intermediate = text.whole("intermediate_size") or text.whole("ffn_dim") or text.whole("n_inner") or 4 * hidden
    return _Shape(layers, hidden, heads, kv_heads, head_dim, vocab, max_position, intermediate)


def _check_heads(text: ConfigValues, hidden: int, heads: int, kv_heads: int) -> None:
    """The head counts HF and vLLM build the attention from: grouped KV heads, and heads that split hidden_size."""
    if kv_heads > heads or heads % kv_heads:
        text.refuse(
            "num_key_value_heads",
            f"{kv_heads} does not divide num_attention_heads {heads} (each KV head serves a whole group of heads)",
        )
    # transformers derives head_dim = hidden_size // heads when the file has none: a remainder means the
    # projections would not be hidden_size wide, and the checkpoint's weights could not load.
    if hidden % heads and (text.whole("head_dim") or hidden // heads) == hidden // heads:
        text.refuse(
            "num_attention_heads", f"{heads} does not divide hidden_size {hidden}, and no head_dim says otherwise"
        )


def _rope(text: ConfigValues) -> tuple[float, str]:
    """(RoPE base, RoPE scaling type); (0.0, "none") for learned absolute positions."""
    # The names vLLM reads the RoPE base under (patch_rope_parameters in vllm/transformers_utils/config.py).
    rope_theta = text.number("rope_theta") or text.number("rotary_emb_base") or 0.0
    scaling = text.nested("rope_scaling")
    kind = (scaling.text("rope_type") or scaling.text("type")) if scaling else None
    return rope_theta, (kind or "default") if rope_theta else "none"


def _moe(text: ConfigValues, shape: _Shape, model_type: str) -> dict[str, int]:
    """ModelArch's MoE fields; none for a dense model. Llama-4's dense layers use their own MLP width."""
    experts = 0
    for key in ("n_routed_experts", "num_local_experts", "num_experts"):
        experts = experts or text.whole(key, minimum=0) or 0
    if not experts:
        return {}
    per_token = text.first_whole(("num_experts_per_tok", "moe_topk"), "experts per token")
    if per_token > experts:
        text.refuse("num_experts_per_tok", f"{per_token} is more than the {experts} experts")
    moe_intermediate = text.whole("moe_intermediate_size") or shape.intermediate
    shared = text.whole("n_shared_experts", minimum=0) or 0
    if model_type.startswith("llama4"):
        # Llama4MoE: one shared expert as wide as a routed one; dense layers are intermediate_size_mlp wide
        # (vllm/model_executor/models/llama4.py).
        shared = 1
        shape.intermediate = text.whole("intermediate_size_mlp") or shape.intermediate
    elif text.whole("shared_expert_intermediate_size"):  # Qwen2-MoE / Qwen3-Next: one shared expert, own width
        shared = max(1, round((text.whole("shared_expert_intermediate_size") or 0) / moe_intermediate))
    return {
        "experts": experts,
        "experts_per_token": per_token,
        "moe_intermediate": moe_intermediate,
        "shared_experts": shared,
        "dense_layers": shape.layers - _moe_layer_count(text, shape.layers),
    }


def _moe_layer_count(text: ConfigValues, layers: int) -> int:
    """How many decoder layers are MoE, by the rule of the model's vLLM class: DeepSeek's first_k_dense_replace and
    moe_layer_freq (deepseek_v2.py), Qwen-MoE's decoder_sparse_step and mlp_only_layers (qwen3_moe.py), Llama-4's
    interleave_moe_layer_step (llama4.py); every layer otherwise."""
    first_dense = text.whole("first_k_dense_replace", minimum=0) or 0
    if first_dense > layers:
        text.refuse("first_k_dense_replace", f"{first_dense} is more than the {layers} layers")
    only_mlp = text.values.get("mlp_only_layers") or []
    if not isinstance(only_mlp, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in only_mlp):
        text.refuse("mlp_only_layers", f"{shown(only_mlp)} is not a list of layer numbers")
    interleave = text.whole("interleave_moe_layer_step", minimum=0)
    sparse_step = text.whole("decoder_sparse_step", minimum=0)
    freq = text.whole("moe_layer_freq", minimum=0)

    def is_moe(i: int) -> bool:
        if i < first_dense or i in only_mlp:
            return False
        if interleave is not None:
            return interleave > 0 and (i + 1) % interleave == 0
        if sparse_step:
            return (i + 1) % sparse_step == 0
        return not freq or i % freq == 0

    return sum(1 for i in range(layers) if is_moe(i))


def _attention(
    text: ConfigValues, shape: _Shape, model_type: str, architectures: list[str]
) -> tuple[Attention, dict[str, int]]:
    """The attention kind and ModelArch's MLA fields; MLA sets the head dimension from its own parts."""
    attention: Attention = "gqa" if shape.kv_heads < shape.heads else "mha"
    mla = {}
    rank = text.whole("kv_lora_rank", minimum=0)
    if rank:
        attention = "mla"
        mla = {"kv_lora_rank": rank, "qk_rope_head_dim": text.whole("qk_rope_head_dim", minimum=0) or 64}
        nope = text.whole("qk_nope_head_dim", minimum=0)
        shape.head_dim = (128 if nope is None else nope) + mla["qk_rope_head_dim"]
    if model_type in _ENCODER_TYPES or any("Bert" in a or "Roberta" in a for a in architectures):
        attention = "encoder"
    return attention, mla


def _architecture_task(architecture: str) -> Task:
    """The task vLLM 0.13 defaults an architecture to, by its registry and the end of its name."""
    if architecture in _REGISTERED_TASKS:
        return _REGISTERED_TASKS[architecture]
    return next((task for suffix, task in _SUFFIX_TASKS if architecture.endswith(suffix)), "generate")


def _task(
    text: ConfigValues,
    shape: _Shape,
    model_type: str,
    architectures: list[str],
    attention: Attention,
    pooling: str | None,
) -> Task:
    if attention != "encoder":
        native = _architecture_task(architectures[0])
        # A sentence-transformers checkpoint runs on the pooling runner whatever its architecture; a generative
        # one is converted to an embedder (_get_default_runner_type, _get_default_convert_type).
        return "embed" if native == "generate" and pooling is not None else native
    task: Task = "score" if any(a.endswith("ForSequenceClassification") for a in architectures) else "embed"
    # RoBERTa-style position ids start after the padding index, so 8194 positions hold 8192 tokens.
    pad = text.whole("pad_token_id", minimum=0) if model_type in ("roberta", "xlm-roberta") else None
    if pad is not None:
        if pad + 1 >= shape.max_position:
            text.refuse("pad_token_id", f"{pad} leaves none of the {shape.max_position} positions for tokens")
        shape.max_position -= pad + 1
    return task


def _checkpoint(top: ConfigValues, text: ConfigValues) -> WeightFormat:
    """The checkpoint's weight format from its torch dtype and quantization_config (components/catalog/quantization.py
    reads every scheme vLLM 0.13 runs and refuses the others naming the key)."""
    return weight_format(top, text)


def _tied(top: ConfigValues, text: ConfigValues, attention: Attention) -> bool:
    """Whether lm_head shares the embedding's weights."""
    tied = top.flag("tie_word_embeddings")
    if tied is None:
        tied = text.flag("tie_word_embeddings")
    # Absent key: PretrainedConfig ties by default (encoders); decoder configs here all state it.
    return attention == "encoder" if tied is None else tied


def estimate_params(arch: ModelArch) -> float:
    """Parameter count from the architecture (used when no published count is given): every part the checkpoint
    stores, vision tower included (components/catalog/weights.py)."""
    return param_groups(arch).total
