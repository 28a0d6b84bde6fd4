"""Structure of the published-deployment reference set (bench/reference/deployments.yaml).

Only the shape of the data is checked here: every entry names its source, its model, a GPU the catalog or the
file itself describes, parallel sizes that account for the GPUs it uses, and so on. How well the planner matches
these deployments is the benchmark's business (`python -m bench.reference_deployments`), not a test's.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.catalog import load_gpu_catalog

REFERENCE = Path(__file__).parents[1] / "bench" / "reference" / "deployments.yaml"
CONFIGS = REFERENCE.parent / "configs"
# A SOURCES.txt line: <org>/<name>/<file> <- <owner/repo> @ <commit> : <path> (... sha256 <hex>, <n> bytes; ...)
SOURCE_LINE = re.compile(r"^(\S+) <- ([\w.-]+/[\w.-]+) @ ([0-9a-f]{40}) : (\S+) \(.*sha256 ([0-9a-f]{64}), (\d+) bytes")
MIN_ENTRIES = 32
TASKS = {"generate", "embed", "score"}
OUTCOMES = {"runs", "fails"}
KV_DTYPES = {"auto", "fp8", "fp8_e4m3", "fp8_e5m2"}
HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
REPO_FILE = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{7,40}:\S+")
# What issue 14 asks the set to cover: attention and quantization schemes, pooling models, and hardware.
REQUIRED_CATEGORIES = {
    "dense-gqa", "moe", "mla", "sliding-window", "chunked-attention", "hybrid",
    "fp8", "awq", "nvfp4", "mxfp4", "nf4", "decoder-embedder", "reranker",
}  # fmt: skip
REQUIRED_GPUS = {"L4-24GB", "T4-16GB", "H100-SXM-80GB", "H200-SXM-141GB", "B200-SXM-180GB", "MI300X-192GB"}
ENTRY_FIELDS = {
    "id", "categories", "model", "task", "gpu", "gpus_per_node", "node_shape_basis", "gpus_used", "nodes",
    "parallel", "quantization", "max_model_len", "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization",
    "kv_cache_dtype", "command", "source", "vllm_version", "date",
}  # fmt: skip
OPTIONAL_FIELDS = {"outcome", "minimum_stated", "inferred", "notes", "revision"}


def _data() -> dict[str, Any]:
    data = yaml.safe_load(REFERENCE.read_text())
    assert isinstance(data, dict)
    return data


DATA = _data()
ENTRIES: list[dict[str, Any]] = DATA["deployments"]
OUTSIDE: dict[str, dict[str, Any]] = {str(g["key"]): g for g in DATA.get("gpus_outside_catalog") or []}


def _ids() -> list[str]:
    return [str(e.get("id")) for e in ENTRIES]


def test_enough_entries_with_unique_ids() -> None:
    assert len(ENTRIES) >= MIN_ENTRIES
    ids = _ids()
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids())
def test_entry_is_complete_and_sourced(entry: dict[str, Any]) -> None:
    missing = ENTRY_FIELDS - set(entry)
    unknown = set(entry) - ENTRY_FIELDS - OPTIONAL_FIELDS
    assert not missing, f"missing fields {sorted(missing)}"
    assert not unknown, f"unknown fields {sorted(unknown)}"
    assert HF_ID.match(str(entry["model"])), f"model {entry['model']!r} is not a Hugging Face id"
    assert entry["categories"] and all(isinstance(c, str) for c in entry["categories"])
    assert entry["task"] in TASKS
    assert entry.get("outcome", "runs") in OUTCOMES
    assert str(entry["command"]).strip(), "the command or manifest excerpt, as read"
    assert str(entry["node_shape_basis"]).strip()
    source = entry["source"]
    assert str(source.get("url", "")).startswith("https://"), "every entry has a source URL"
    assert str(source.get("read_via", "")).strip(), "how the source was read"
    if "file" in source:
        assert REPO_FILE.match(str(source["file"])), "a repository file is cited as owner/repo@commit:path"
    for key, why in (entry.get("inferred") or {}).items():
        assert str(key).split(".")[0] in ENTRY_FIELDS, f"inferred: {key} is not a field"
        assert str(why).strip(), f"inferred: {key} needs its reason"


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids())
def test_entry_hardware_and_engine_settings(entry: dict[str, Any]) -> None:
    gpu = str(entry["gpu"])
    assert gpu in load_gpu_catalog() or gpu in OUTSIDE, f"{gpu}: neither a catalog GPU id nor in gpus_outside_catalog"
    parallel = entry["parallel"]
    assert set(parallel) == {"tp", "pp", "dp", "expert_parallel"}
    tp, pp, dp = (int(parallel[k]) for k in ("tp", "pp", "dp"))
    assert min(tp, pp, dp) >= 1
    assert isinstance(parallel["expert_parallel"], bool)
    gpus, nodes, per_node = int(entry["gpus_used"]), int(entry["nodes"]), entry["gpus_per_node"]
    assert tp * pp * dp == gpus, f"tp {tp} x pp {pp} x dp {dp} != gpus_used {gpus}"
    assert isinstance(per_node, int) and per_node >= 1
    assert (nodes - 1) * per_node < gpus <= nodes * per_node, "nodes x gpus_per_node must hold gpus_used"
    quantization = entry["quantization"]
    assert set(quantization) == {"checkpoint", "flag"}
    assert str(quantization["checkpoint"]).strip()
    assert quantization["flag"] is None or isinstance(quantization["flag"], str)
    for key in ("max_model_len", "max_num_seqs", "max_num_batched_tokens"):
        value = entry[key]
        assert value is None or (isinstance(value, int) and value > 0), f"{key}: {value!r}"
    utilization = entry["gpu_memory_utilization"]
    assert utilization is None or 0 < float(utilization) <= 1
    assert entry["kv_cache_dtype"] in KV_DTYPES


@pytest.mark.parametrize("key", sorted(OUTSIDE))
def test_gpus_outside_catalog_carry_their_specs(key: str) -> None:
    gpu = OUTSIDE[key]
    assert key not in load_gpu_catalog(), f"{key} is a catalog id; use the catalog row"
    assert str(gpu.get("name", "")).strip()
    assert gpu.get("spec_source") and all(str(s).strip() for s in gpu["spec_source"]), "a spec source"
    memory = gpu.get("memory_mib") or gpu.get("memory_gib")
    assert isinstance(memory, int | float) and memory > 0, "memory_mib (device-reported) or memory_gib"
    assert str(gpu.get("memory_basis", "")).strip(), "say whether the memory figure is reported or nominal"
    domain = gpu.get("interconnect_domain")
    assert isinstance(domain, int) and domain >= 1
    assert isinstance(gpu.get("peer_to_peer"), bool)


def test_every_outside_gpu_is_used() -> None:
    used = {str(e["gpu"]) for e in ENTRIES}
    assert set(OUTSIDE) <= used, sorted(set(OUTSIDE) - used)


def test_the_set_covers_what_issue_14_asks() -> None:
    categories = {c for e in ENTRIES for c in e["categories"]}
    gpus = {str(e["gpu"]) for e in ENTRIES}
    assert categories >= REQUIRED_CATEGORIES, sorted(REQUIRED_CATEGORIES - categories)
    assert gpus >= REQUIRED_GPUS, sorted(REQUIRED_GPUS - gpus)
    assert any(e.get("outcome") == "fails" for e in ENTRIES), "recorded failures pin the lower bound"


def _sources() -> dict[str, re.Match[str]]:
    lines = [line for line in (CONFIGS / "SOURCES.txt").read_text().splitlines() if line and not line.startswith("#")]
    matches = {line: SOURCE_LINE.match(line) for line in lines}
    assert all(matches.values()), [line for line, m in matches.items() if m is None]
    return {m.group(1): m for m in matches.values() if m is not None}


def test_shipped_configs_are_sourced_and_unchanged() -> None:
    """Every file under bench/reference/configs has its provenance line, and its bytes are the ones recorded there."""
    sources = _sources()
    files = {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*") if p.is_file() and p.name != "SOURCES.txt"}
    assert files - set(sources) == set(), "files without a SOURCES.txt line"
    assert set(sources) - files == set(), "SOURCES.txt lines without a file"
    for name, line in sources.items():
        data = (CONFIGS / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == line.group(5), f"{name}: sha256 differs from SOURCES.txt"
        assert len(data) == int(line.group(6)), f"{name}: size differs from SOURCES.txt"
        assert isinstance(json.loads(data), dict), f"{name}: not a JSON object"


def test_shipped_configs_belong_to_reference_models() -> None:
    models = {str(e["model"]) for e in ENTRIES}
    folders = {str(p.parent.relative_to(CONFIGS)) for p in CONFIGS.rglob("config.json")}
    assert folders <= models, sorted(folders - models)
