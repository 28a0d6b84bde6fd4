"""`catalog`: the GPUs and models the planner knows, with the facts sizing uses, as text, markdown or JSON.

Rows come from the typed loaders; a `config: missing` model (refused by the planner) is listed from its raw row,
so the listing shows what a stack cannot use and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import yaml

from components.catalog import CATALOG_DIR, ModelArch, load_gpu_catalog, load_model_catalog
from components.tools.text_layout import table, wrap_line

CLOUDS = ("aws", "gcp", "azure", "ovh")
LEGEND = (
    "kv: key-value heads (fewer than heads: grouped-query attention). "
    "config: verified = sizing reads the model's real config.json (shipped under components/catalog/configs); "
    "unverified = hand-typed numbers, the real file not found; missing = refused until it is shipped. "
    "gated: Hugging Face serves the files only to an account that accepted the license (set llm-cluster:hfToken)."
)


def _clouds(gpu: dict[str, Any]) -> str:
    counts = [(c, sum(i["cloud"] == c for i in gpu["instances"])) for c in CLOUDS]
    return ", ".join(f"{c} {n}" for c, n in counts if n) or "none (on-prem)"


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


_Row = dict[str, Any]


def _fact(key: str) -> Callable[[_Row], str]:
    return lambda r: "-" if r.get(key) is None else f"{r[key]:g}" if isinstance(r[key], float) else str(r[key])


# Columns by header over the JSON rows (catalog_data); `--wide` and markdown add the second group of each.
_GPU_COLUMNS: dict[str, Callable[[_Row], str]] = {
    "gpu": _fact("id"),
    "arch": _fact("architecture"),
    "cc": _fact("compute_capability"),
    "memory GiB": lambda g: f"{g['memory_mib'] / 1024:.0f}",
    "nvlink": _fact("nvlink_domain"),
    "p2p": lambda g: _yes(g["peer_to_peer"]),
    "fp8": lambda g: _yes(g["native_fp8"]),
    "cloud instance types": _clouds,
}
_GPU_WIDE: dict[str, Callable[[_Row], str]] = {
    "name": _fact("name"),
    "node label (gpu.product)": _fact("gfd_product"),
}
_MODEL_COLUMNS: dict[str, Callable[[_Row], str]] = {
    "model": _fact("id"),
    "task": _fact("task"),
    "params B": _fact("params_b"),
    "layers": _fact("layers"),
    "heads": _fact("heads"),
    "kv": _fact("kv_heads"),
    "max position": _fact("max_position"),
    "dtype": _fact("checkpoint_dtype"),
    "config": _fact("config"),
    "gated": lambda m: _yes(m.get("gated")),
}
_MODEL_WIDE: dict[str, Callable[[_Row], str]] = {
    "architecture": _fact("architecture"),
    "attention": _fact("attention"),
    "hidden": _fact("hidden"),
    "head dim": _fact("head_dim"),
    "experts": _fact("experts"),
}


def _model_facts(arch: ModelArch) -> _Row:
    facts = {k: v for k, v in asdict(arch).items() if k != "notes"}
    reason = arch.notes[0] if not arch.config_verified and arch.notes else ""
    return {**facts, "config": "verified" if arch.config_verified else "unverified", "config_reason": reason}


def _refused_facts(row: _Row, reason: str) -> _Row:
    """A `config: missing` row: what the raw row says; the architecture is unknown until its config.json ships."""
    facts = {k: row.get(k) for k in ("id", "task", "params_b", "checkpoint_dtype")}
    return {**facts, "gated": bool(row.get("gated")), "config": "missing", "config_reason": reason}


def catalog_data() -> dict[str, list[_Row]]:
    """Every GPU (all its facts and cloud instances) and every model row, in catalog order."""
    gpus = [{**asdict(g), "memory_gib": round(g.memory_mib / 1024, 1)} for g in load_gpu_catalog().values()]
    models = load_model_catalog()
    refused: dict[str, str] = getattr(models, "refused", {})
    rows: list[_Row] = yaml.safe_load((CATALOG_DIR / "models.yaml").read_text())["models"]
    return {
        "gpus": gpus,
        "models": [
            _refused_facts(row, refused[row["id"]]) if row["id"] in refused
            else _model_facts(dict.__getitem__(models, row["id"]))
            for row in rows
        ],
    }  # fmt: skip


def format_catalog(data: dict[str, Any], markdown: bool, width: int | None) -> str:
    """Two tables, GPUs then models; `width` None (wide, markdown) adds the columns the default leaves out."""
    gpu_columns = _GPU_COLUMNS if width is not None else {**_GPU_COLUMNS, **_GPU_WIDE}
    model_columns = _MODEL_COLUMNS if width is not None else {**_MODEL_COLUMNS, **_MODEL_WIDE}
    gpu_rows = [[cell(g) for cell in gpu_columns.values()] for g in data["gpus"]]
    model_rows = [[cell(m) for cell in model_columns.values()] for m in data["models"]]
    h = "### " if markdown else ""
    lines = [
        *(["## Catalog", ""] if markdown else []),
        f"{h}GPUs ({len(gpu_rows)})",
        table(list(gpu_columns), gpu_rows, markdown, width),
        "",
        f"{h}Models ({len(model_rows)})",
        table(list(model_columns), model_rows, markdown, width),
        "",
        *wrap_line(LEGEND, width, hanging=""),
    ]
    return "\n".join(lines)
