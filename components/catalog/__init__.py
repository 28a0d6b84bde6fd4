"""Typed loaders for the GPU and model catalogs, and the HF config.json reader for models outside them.

The YAML files hold facts only, each row with its source; this module turns them into frozen
dataclasses (`types`) that `components.planning` consumes. The config.json reader is in `hf_config`;
both are re-exported here, the package's one import path.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import yaml

from components.catalog.hf_config import arch_from_hf_config, estimate_params, load_hf_config
from components.catalog.layers import row_layer_groups
from components.catalog.quantization import DEFAULT_FORMATS
from components.catalog.types import (
    SIXTEEN_BIT_WEIGHTS,
    Attention,
    CatalogError,
    Cloud,
    CloudInstance,
    GpuType,
    ModelArch,
    Task,
    WeightFormat,
)
from components.catalog.weights import with_checkpoint_bytes

__all__ = [
    "CATALOG_DIR",
    "Attention",
    "CatalogError",
    "Cloud",
    "CloudInstance",
    "ConfigStatus",
    "GpuType",
    "ModelArch",
    "ModelCatalog",
    "Task",
    "WeightFormat",
    "arch_from_hf_config",
    "config_path",
    "estimate_params",
    "load_gpu_catalog",
    "load_hf_config",
    "load_model_catalog",
]

CATALOG_DIR = Path(__file__).parent


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
            hbm_gbs=float((row.get("perf") or {}).get("hbm_gbs", 0.0)),
            bf16_tflops=float((row.get("perf") or {}).get("bf16_tflops", 0.0)),
            fp8_tflops=float((row.get("perf") or {}).get("fp8_tflops", 0.0)),
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
              "yarn_original_max_position", "source", "gated", "gated_source"}  # fmt: skip
# `checkpoint_bytes: {total_size, source}`: metadata.total_size of the model's model.safetensors.index.json and
# where it was read; the plan then sizes the weights from it instead of a parameter estimate.
_CHECKPOINT_BYTES = "checkpoint_bytes"
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


def _check_gated(row: dict[str, Any], where: str) -> None:
    """`gated: true` only with the model page that says so; a flag without a source is a guess."""
    gated, source = row.get("gated", False), str(row.get("gated_source") or "")
    if not isinstance(gated, bool):
        raise CatalogError(f"{where}: gated: expected true or false, got {gated!r}")
    page = f"https://huggingface.co/{row['id']}"
    if gated and (source.split() or [""])[0].rstrip("/") != page:
        raise CatalogError(f"{where}: gated: true needs gated_source starting with its model page {page}")
    if source and not gated:
        raise CatalogError(f"{where}: gated_source without gated: true; remove it or set gated: true")


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
    overrides: dict[str, Any] = {k: row[k] for k in _ROW_FACTS - {"id", "params_b", "task"} if row.get(k) is not None}
    overrides["vllm_args"] = tuple(str(a) for a in overrides.get("vllm_args", ()))
    overrides["source"] = f"configs/{row['id']}/config.json; {row.get('source', '')}".rstrip("; ")
    return replace(arch, **overrides)


def _from_row(row: dict[str, Any], reason: str) -> ModelArch:
    values = {k: v for k, v in row.items() if v is not None and k not in ("config", _CHECKPOINT_BYTES)}
    values["vllm_args"] = tuple(str(a) for a in values.get("vllm_args", ()))
    values["checkpoint_dtype"] = str(values.get("checkpoint_dtype", "bf16"))
    values["weights"] = DEFAULT_FORMATS.get(values["checkpoint_dtype"], SIXTEEN_BIT_WEIGHTS)
    notes = (f"numbers not verified against the real config.json: {reason}",)
    values["layer_groups"] = row_layer_groups(values)
    return ModelArch(**values, config_verified=False, notes=notes)


def _checkpoint_bytes(row: dict[str, Any], where: str, arch: ModelArch) -> ModelArch:
    """The row's checkpoint size, a sourced fact: a whole number of bytes with where it was read."""
    value = row.get(_CHECKPOINT_BYTES)
    if value is None:
        return arch
    size = value.get("total_size") if isinstance(value, dict) else None
    source = str(value.get("source") or "") if isinstance(value, dict) else ""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or not source.strip():
        raise CatalogError(
            f"{where}: checkpoint_bytes: expected {{total_size: <bytes from model.safetensors.index.json "
            f"metadata>, source: <where it was read>}}, got {value!r}"
        )
    return with_checkpoint_bytes(arch, size, source)


@functools.cache
def load_model_catalog(path: Path = CATALOG_DIR / "models.yaml") -> dict[str, ModelArch]:
    """Rows with a shipped config.json take their architecture from it; `config: unverified` rows (models a stack
    serves) keep hand-typed numbers; `config: missing` rows are refused on lookup."""
    catalog = ModelCatalog()
    for row in yaml.safe_load(path.read_text())["models"]:
        where = f"{path}: model {row.get('id')}"
        unknown = set(row) - (_CONFIG_FACTS | _ROW_FACTS | {"config", _CHECKPOINT_BYTES})
        if unknown:
            raise CatalogError(f"{where}: unknown keys {sorted(unknown)}")
        if row["id"] in catalog or row["id"] in catalog.refused:
            raise CatalogError(f"{path}: model id {row['id']} appears twice")
        status, reason = _status(row, where)
        _check_gated(row, where)
        if status == "missing":
            catalog.refused[row["id"]] = reason
        elif status == "unverified":
            catalog[row["id"]] = _checkpoint_bytes(row, where, _from_row(row, reason))
        else:
            catalog[row["id"]] = _checkpoint_bytes(row, where, _from_shipped_config(row, where))
    return catalog
