"""Typed loaders for the GPU and model catalogs, and the HF config.json reader for models outside them.

The YAML files hold facts only, each row with its source; this module turns them into frozen
dataclasses that `components.planning` consumes.
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
    # RoPE base frequency; 0 for learned absolute positions (BERT/XLM-R), which no rope override can extend.
    rope_theta: float = 0.0
    # The config's own RoPE scaling (rope_scaling.rope_type: yarn, llama3, ...), "default" without one, "none"
    # without RoPE; named as vLLM names it in rope_parameters.
    rope_type: str = "default"
    source: str = ""
    params_estimated: bool = False
    # False for `config: unverified` rows: hand-typed numbers, the real config.json not found.
    config_verified: bool = True
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


# The architecture a config.json states; a row with a shipped config must not repeat these.
_CONFIG_FACTS = {
    "architecture", "attention", "layers", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab",
    "tie_embeddings", "max_position", "experts", "experts_per_token", "moe_intermediate", "shared_experts",
    "dense_layers", "kv_lora_rank", "qk_rope_head_dim", "fp8_block", "sliding_window_layers", "sliding_window",
    "rope_theta", "rope_type",
}  # fmt: skip
# Facts a config.json does not carry (or that the card adds); these stay in models.yaml.
_ROW_FACTS = {"id", "task", "params_b", "checkpoint_dtype", "trust_remote_code", "vllm_args",
              "yarn_original_max_position", "source"}  # fmt: skip
ConfigStatus = Literal["shipped", "unverified", "missing"]


def config_path(model_id: str) -> Path:
    """Where the model's real HF config.json is shipped (components/catalog/configs/<org>/<name>/config.json)."""
    return CATALOG_DIR / "configs" / model_id / "config.json"


class ModelCatalog(dict[str, ModelArch]):
    """The usable models by id; a model whose real config.json was not found is refused on lookup."""

    def __init__(self, refused: dict[str, str] | None = None) -> None:
        super().__init__()
        self.refused: dict[str, str] = dict(refused or {})

    def _refuse(self, model_id: str) -> None:
        if model_id in self.refused:
            ship = config_path(model_id).relative_to(CATALOG_DIR.parents[1])
            raise CatalogError(
                f"model {model_id}: refused by components/catalog/models.yaml: its real config.json could not be "
                f"found ({self.refused[model_id]}); ship it as {ship} "
                "with a line in configs/SOURCES.txt, or pass configPath"
            )

    def __getitem__(self, model_id: str) -> ModelArch:
        self._refuse(model_id)
        return super().__getitem__(model_id)

    def get(self, model_id: str, default: Any = None, /) -> Any:
        self._refuse(model_id)
        return super().get(model_id, default)


def _status(row: dict[str, Any], where: str) -> tuple[ConfigStatus, str]:
    config = row.get("config")
    if config is None:
        return "shipped", ""
    valid = isinstance(config, dict) and config.get("status") in ("unverified", "missing") and config.get("reason")
    if not valid:
        raise CatalogError(f"{where}: config: expected {{status: unverified|missing, reason: ...}}, got {config!r}")
    return config["status"], str(config["reason"])


def _from_shipped_config(row: dict[str, Any], where: str) -> ModelArch:
    repeated = sorted(_CONFIG_FACTS & set(row))
    if repeated:
        raise CatalogError(f"{where}: {repeated} come from its shipped config.json; remove them from the row")
    path = config_path(row["id"])
    if not path.is_file():
        raise CatalogError(f"{where}: no shipped config at {path}; ship the real file or mark the row config: missing")
    arch = load_hf_config(path, row["id"], float(row["params_b"]))
    if row["task"] != arch.task:
        raise CatalogError(f"{where}: task {row['task']!r} but its config.json says {arch.task!r}")
    overrides = {k: row[k] for k in _ROW_FACTS - {"id", "params_b", "task"} if row.get(k) is not None}
    overrides["vllm_args"] = tuple(str(a) for a in overrides.get("vllm_args", ()))
    overrides["source"] = f"configs/{row['id']}/config.json; {row.get('source', '')}".rstrip("; ")
    return replace(arch, **overrides)


def _from_row(row: dict[str, Any], reason: str) -> ModelArch:
    values = {k: v for k, v in row.items() if v is not None and k != "config"}
    values["vllm_args"] = tuple(str(a) for a in values.get("vllm_args", ()))
    values["checkpoint_dtype"] = str(values.get("checkpoint_dtype", "bf16"))
    notes = (f"numbers not verified against the real config.json: {reason}",)
    return ModelArch(**values, config_verified=False, notes=notes)


@functools.cache
def load_model_catalog(path: Path = CATALOG_DIR / "models.yaml") -> dict[str, ModelArch]:
    """Rows with a shipped config.json take their architecture from it; `config: unverified` rows (models a stack
    serves) keep hand-typed numbers; `config: missing` rows are refused on lookup."""
    catalog = ModelCatalog()
    for row in yaml.safe_load(path.read_text())["models"]:
        where = f"{path}: model {row.get('id')}"
        unknown = set(row) - (_CONFIG_FACTS | _ROW_FACTS | {"config"})
        if unknown:
            raise CatalogError(f"{where}: unknown keys {sorted(unknown)}")
        if row["id"] in catalog or row["id"] in catalog.refused:
            raise CatalogError(f"{path}: model id {row['id']} appears twice")
        status, reason = _status(row, where)
        if status == "missing":
            catalog.refused[row["id"]] = reason
        elif status == "unverified":
            catalog[row["id"]] = _from_row(row, reason)
        else:
            catalog[row["id"]] = _from_shipped_config(row, where)
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
    # The names vLLM reads the RoPE base under (patch_rope_parameters in vllm/transformers_utils/config.py).
    rope_theta = float(text.get("rope_theta") or text.get("rotary_emb_base") or 0.0)
    scaling = text.get("rope_scaling") or {}
    rope_type = str(scaling.get("rope_type") or scaling.get("type") or "default") if rope_theta else "none"
    if text.get("max_trained_positions"):
        # Nomic BERT: vLLM caps the context at the trained positions unless a rope extension is configured
        # (NomicBertModelConfig in vllm/model_executor/models/config.py).
        max_position = min(max_position, int(text["max_trained_positions"]))

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
        # RoBERTa-style position ids start after the padding index, so 8194 positions hold 8192 tokens.
        if model_type in ("roberta", "xlm-roberta") and text.get("pad_token_id") is not None:
            max_position -= int(text["pad_token_id"]) + 1
    sliding = _sliding_window(text, layers, model_type)

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
        # Absent key: PretrainedConfig ties by default (encoders); decoder configs here all state it.
        tie_embeddings=bool(cfg.get("tie_word_embeddings", text.get("tie_word_embeddings", attention == "encoder"))),
        max_position=max_position,
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
