"""Typed loaders for the GPU and model catalogs, and the HF config.json reader for models outside them.

The YAML files hold facts only, each row with its source; this module turns them into frozen
dataclasses that `components.sizing` consumes.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

CATALOG_DIR = Path(__file__).parent

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

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024

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
    sliding_window_layers: int = 0
    sliding_window: int = 0
    vllm_args: tuple[str, ...] = ()
    yarn_original_max_position: int = 0
    source: str = ""
    params_estimated: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def is_moe(self) -> bool:
        return self.experts > 0


@functools.cache
def load_gpu_catalog(path: Path = CATALOG_DIR / "gpus.yaml") -> dict[str, GpuType]:
    rows = yaml.safe_load(path.read_text())["gpus"]
    catalog: dict[str, GpuType] = {}
    for row in rows:
        instances = tuple(
            CloudInstance(
                cloud=i["cloud"],
                type=i["type"],
                gpus=int(i["gpus"]),
                nvlink_domain=int(i["nvlink_domain"]),
                accelerator=i.get("accelerator"),
                source=str(i.get("source", "")),
            )
            for i in row.get("instances") or []
        )
        gpu = GpuType(
            id=row["id"],
            name=row["name"],
            architecture=row["architecture"],
            compute_capability=str(row["compute_capability"]),
            memory_mib=int(row["memory_mib"]),
            nvlink_domain=int(row["nvlink_domain"]),
            peer_to_peer=bool(row["peer_to_peer"]),
            native_fp8=bool(row["native_fp8"]),
            gfd_product=row["gfd_product"],
            sources=tuple(row.get("sources") or ()),
            instances=instances,
        )
        if gpu.id in catalog:
            raise CatalogError(f"{path}: GPU id {gpu.id} appears twice")
        catalog[gpu.id] = gpu
    return catalog


_MODEL_KEYS = {f for f in ModelArch.__dataclass_fields__} - {"params_estimated", "notes"}


@functools.cache
def load_model_catalog(path: Path = CATALOG_DIR / "models.yaml") -> dict[str, ModelArch]:
    rows = yaml.safe_load(path.read_text())["models"]
    catalog: dict[str, ModelArch] = {}
    for row in rows:
        unknown = set(row) - _MODEL_KEYS
        if unknown:
            raise CatalogError(f"{path}: model {row.get('id')}: unknown keys {sorted(unknown)}")
        values = {k: v for k, v in row.items() if v is not None}
        values["vllm_args"] = tuple(str(a) for a in values.get("vllm_args", ()))
        values["checkpoint_dtype"] = str(values.get("checkpoint_dtype", "bf16"))
        arch = ModelArch(**values)
        if arch.id in catalog:
            raise CatalogError(f"{path}: model id {arch.id} appears twice")
        catalog[arch.id] = arch
    return catalog


# ---------------------------------------------------------------- HF config.json

_ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "nomic_bert", "distilbert", "electra", "deberta-v2", "modernbert"}
_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def _first(cfg: dict[str, Any], keys: tuple[str, ...], what: str, source: str) -> Any:
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    raise CatalogError(
        f"{source}: missing '{keys[0]}' ({what})"
        + (f"; also looked for {', '.join(keys[1:])}" if len(keys) > 1 else "")
        + "; use the model's original config.json or add the model to components/catalog/models.yaml"
    )


def arch_from_hf_config(
    cfg: dict[str, Any], model_id: str, params_b: float | None = None, source: str = "config.json"
) -> ModelArch:
    """Read dense, GQA, MoE, MLA and nested `text_config` layouts (multimodal) into a ModelArch."""
    where = f"{source} of {model_id}"
    architectures = cfg.get("architectures") or ["unknown"]
    notes: list[str] = []
    text = cfg
    if isinstance(cfg.get("text_config"), dict):
        text = {**cfg["text_config"]}
        text.setdefault("vocab_size", cfg.get("vocab_size"))
        notes.append("text_config read for the language model; vision tower parameters come from params_b")
    model_type = str(text.get("model_type") or cfg.get("model_type") or "")

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

    experts = int(text.get("n_routed_experts") or text.get("num_local_experts") or text.get("num_experts") or 0)
    moe = {}
    if experts:
        moe = {
            "experts": experts,
            "experts_per_token": int(_first(text, ("num_experts_per_tok", "moe_topk"), "experts per token", where)),
            "moe_intermediate": int(text.get("moe_intermediate_size") or intermediate),
            "shared_experts": int(text.get("n_shared_experts") or 0),
            "dense_layers": int(text.get("first_k_dense_replace") or 0),
        }

    attention: Attention = "gqa" if kv_heads < heads else "mha"
    mla = {}
    if text.get("kv_lora_rank"):
        attention = "mla"
        mla = {"kv_lora_rank": int(text["kv_lora_rank"]), "qk_rope_head_dim": int(text.get("qk_rope_head_dim") or 64)}
        head_dim = int(text.get("qk_nope_head_dim", 128)) + mla["qk_rope_head_dim"]
    if model_type in _ENCODER_TYPES or any("Bert" in a or "Roberta" in a for a in architectures):
        attention = "encoder"

    task: Task = "generate"
    if attention == "encoder":
        task = "score" if any(a.endswith("ForSequenceClassification") for a in architectures) else "embed"

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

    arch = ModelArch(
        id=model_id,
        task=task,
        architecture=architectures[0],
        attention=attention,
        params_b=0.0,
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=kv_heads if attention != "mla" else heads,
        head_dim=head_dim,
        intermediate=intermediate,
        vocab=vocab,
        tie_embeddings=bool(cfg.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        max_position=max_position,
        checkpoint_dtype=checkpoint_dtype,
        fp8_block=fp8_block,
        source=source,
        notes=tuple(notes),
        **moe,  # type: ignore[arg-type]
        **mla,  # type: ignore[arg-type]
    )
    if params_b is not None:
        return replace(arch, params_b=params_b)
    return replace(arch, params_b=round(estimate_params(arch) / 1e9, 3), params_estimated=True)


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
