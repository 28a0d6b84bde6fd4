"""The catalog's architecture comes from each model's real config.json shipped in components/catalog/configs."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.catalog import (
    CATALOG_DIR,
    CatalogError,
    ModelArch,
    arch_from_hf_config,
    config_path,
    load_model_catalog,
)

PROJECT = CATALOG_DIR.parents[1]
CONFIGS = CATALOG_DIR / "configs"
ROWS: list[dict[str, Any]] = yaml.safe_load((CATALOG_DIR / "models.yaml").read_text())["models"]
MODELS = load_model_catalog()
SOURCE_LINE = re.compile(r"^(\S+) <- ([\w.-]+/[\w.-]+) @ ([0-9a-f]{40}) : (\S+)")
# A file whose repository the index does not name is shipped only when published digests prove it: the
# line gives its git blob hash, which the test recomputes.
DIGEST_LINE = re.compile(r"^(\S+) <- (git-blob) @ ([0-9a-f]{40}) : (.+)")


def status(row: dict[str, Any]) -> str:
    return str((row.get("config") or {}).get("status", "shipped"))


SHIPPED = [r["id"] for r in ROWS if status(r) == "shipped"]
REFUSED = [r["id"] for r in ROWS if status(r) == "missing"]
UNVERIFIED = [r["id"] for r in ROWS if status(r) == "unverified"]


def git_blob(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sources() -> dict[str, tuple[str, str, str]]:
    lines = (CONFIGS / "SOURCES.txt").read_text().splitlines()
    found = {}
    for line in lines:
        if line.strip() and not line.startswith("#"):
            match = SOURCE_LINE.match(line) or DIGEST_LINE.match(line)
            assert match, f"SOURCES.txt line not in the '<file> <- <repo> @ <commit> : <path>' form: {line}"
            if match[2] == "git-blob":
                assert git_blob(CONFIGS / match[1]) == match[3], f"{match[1]}: not the file its digest names"
            found[match[1]] = (match[2], match[3], match[4])
    return found


def raw(model_id: str) -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads(config_path(model_id).read_text())
    return cfg


def stack_models() -> set[str]:
    found = set()
    for stack in (PROJECT / "stacks").glob("Pulumi.*.yaml"):
        cluster = yaml.safe_load(stack.read_text())["config"]["llm-cluster:cluster"]
        found |= {m["model"] for m in cluster["models"] if not m.get("configPath")}
    return found


def test_every_row_is_accounted_for() -> None:
    assert len(ROWS) == 21
    assert sorted(SHIPPED + REFUSED + UNVERIFIED) == sorted(r["id"] for r in ROWS)
    assert set(MODELS) == set(SHIPPED + UNVERIFIED)


@pytest.mark.parametrize("model_id", SHIPPED)
def test_shipped_config_has_a_source_line(model_id: str) -> None:
    assert config_path(model_id).is_file()
    assert f"{model_id}/config.json" in sources()


def test_every_shipped_file_has_a_source_line_and_back() -> None:
    shipped = {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.json")}
    assert shipped == set(sources())


@pytest.mark.parametrize("model_id", SHIPPED)
def test_catalog_reads_the_file(model_id: str) -> None:
    """The catalog's numbers are the file's, as the reader turns them into a ModelArch."""
    arch, cfg = MODELS[model_id], raw(model_id)
    assert arch.layers == cfg["num_hidden_layers"]
    assert arch.hidden == cfg["hidden_size"]
    assert arch.heads == cfg["num_attention_heads"]
    assert arch.vocab == cfg["vocab_size"]
    assert arch.architecture == cfg["architectures"][0]
    from_file = arch_from_hf_config(cfg, model_id, arch.params_b)
    for name in ("layers", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab", "max_position"):
        assert getattr(arch, name) == getattr(from_file, name), name
    assert arch.source.startswith(f"configs/{model_id}/config.json")


# Model-card facts: (layers, attention heads, KV heads, vocab, max_position_embeddings as the file states it).
CARD = {
    # Qwen3-32B card: 64 layers, 64 Q / 8 KV heads, 32,768 native context (the config states 40960).
    "Qwen/Qwen3-32B": (64, 64, 8, 151936, 40960),
    # DeepSeek-R1 = DeepSeek-V3 architecture: 61 layers, 128 heads (MLA), 128K context via YaRN x40 over 4096.
    "deepseek-ai/DeepSeek-R1": (61, 128, 128, 129280, 163840),
    # gpt-oss-120b card: 36 layers, 64 query / 8 KV heads, 128K context, o200k_harmony vocabulary.
    "openai/gpt-oss-120b": (36, 64, 8, 201088, 131072),
    # Llama 3.1 8B: 32 layers, 32 heads, GQA 8, 128K context, 128,256-token vocabulary.
    "meta-llama/Llama-3.1-8B-Instruct": (32, 32, 8, 128256, 131072),
    # bge-reranker-v2-m3: bge-m3 (XLM-R large) backbone, 8192 tokens (+2 XLM-R position offset in the file).
    "BAAI/bge-reranker-v2-m3": (24, 16, 16, 250002, 8194),
    # Qwen2.5-32B-Instruct card: 64 layers, 40 Q / 8 KV heads, 32,768 native context (131,072 with YaRN).
    "Qwen/Qwen2.5-32B-Instruct": (64, 40, 8, 152064, 32768),
    # multilingual-e5-large: XLM-R large (24 layers, 16 heads, 250,002-token vocabulary), 512 tokens (+2).
    "intfloat/multilingual-e5-large": (24, 16, 16, 250002, 514),
    # bge-m3: XLM-R large, 8192 tokens (+2).
    "BAAI/bge-m3": (24, 16, 16, 250002, 8194),
    # DeepSeek-R1-Distill-Qwen-1.5B: Qwen2.5-Math-1.5B shape, 28 layers, 12 Q / 2 KV heads, 128K context.
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": (28, 12, 2, 151936, 131072),
}


@pytest.mark.parametrize(("model_id", "card"), CARD.items(), ids=list(CARD))
def test_file_agrees_with_the_model_card(model_id: str, card: tuple[int, int, int, int, int]) -> None:
    cfg, arch = raw(model_id), MODELS[model_id]
    layers, heads, kv_heads, vocab, max_position = card
    assert cfg["num_hidden_layers"] == layers == arch.layers
    assert cfg["num_attention_heads"] == heads == arch.heads
    # MLA and encoder configs have no num_key_value_heads: every head keeps its own K/V.
    assert cfg.get("num_key_value_heads", heads) == kv_heads == arch.kv_heads
    assert cfg["vocab_size"] == vocab == arch.vocab
    assert cfg["max_position_embeddings"] == max_position


def test_every_shipped_model_has_card_facts() -> None:
    assert set(CARD) == set(SHIPPED)


def test_xlm_roberta_position_offset() -> None:
    arch = MODELS["BAAI/bge-reranker-v2-m3"]
    assert arch.max_position == raw(arch.id)["max_position_embeddings"] - 2
    assert arch.task == "score"


def test_sliding_window_from_layer_types() -> None:
    arch, cfg = MODELS["openai/gpt-oss-120b"], raw("openai/gpt-oss-120b")
    sliding = [g for g in arch.layer_groups if g.kind == "sliding"]
    assert [(g.count, g.window) for g in sliding] == [(18, cfg["sliding_window"])]
    assert arch.checkpoint_dtype == "mxfp4" and arch.experts == 128 and arch.experts_per_token == 4


def test_unused_qwen2_window_is_ignored() -> None:
    cfg = {**raw("Qwen/Qwen3-32B"), "sliding_window": 131072, "use_sliding_window": False}
    assert arch_from_hf_config(cfg, "acme/qwen").layer_groups == ()


def test_block_fp8_and_mla_from_the_file() -> None:
    r1 = MODELS["deepseek-ai/DeepSeek-R1"]
    assert (r1.checkpoint_dtype, r1.fp8_block, r1.attention, r1.kv_lora_rank) == ("fp8", 128, "mla", 512)


@pytest.mark.parametrize("model_id", REFUSED)
def test_missing_config_is_refused(model_id: str) -> None:
    for lookup in (MODELS.__getitem__, MODELS.get):
        with pytest.raises(CatalogError) as info:
            lookup(model_id)
        assert model_id in str(info.value)
        assert "real config.json could not be found" in str(info.value)
    assert model_id not in MODELS


# Gated models no shipped stack serves (a stack file cannot hold the token's ciphertext for another's key), kept
# for the published deployments the sizing tests reproduce with them.
SIZING_ANCHORS = {
    "meta-llama/Llama-3.3-70B-Instruct": "llm-d's measured 33.88 GiB per GPU for the FP8 checkpoint at TP 2",
    "google/gemma-2-27b-it": "GKE's gemma-2-27b blueprint on 4 x L4 (ai-ml/llm-serving-gemma)",
}


@pytest.mark.parametrize("model_id", UNVERIFIED)
def test_unverified_rows_are_stack_models_or_sizing_anchors_and_say_so(model_id: str) -> None:
    served = model_id in stack_models()
    assert served or model_id in SIZING_ANCHORS, "only models a stack serves may keep hand-typed numbers"
    assert not (served and model_id in SIZING_ANCHORS), "a served model needs no other reason"
    assert any("not verified against the real config.json" in n for n in MODELS[model_id].notes)


def test_no_stack_model_is_refused() -> None:
    assert not stack_models() & set(REFUSED)


def write_catalog(tmp_path: Path, row: dict[str, Any]) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": [row]}))
    return path


def test_row_may_not_repeat_what_the_config_says(tmp_path: Path) -> None:
    row = {"id": "Qwen/Qwen3-32B", "task": "generate", "params_b": 32.76, "layers": 64, "source": "x"}
    with pytest.raises(CatalogError, match=r"come from its shipped config\.json"):
        load_model_catalog(write_catalog(tmp_path, row))


def test_row_without_config_or_status_is_refused_at_load(tmp_path: Path) -> None:
    row = {"id": "acme/nothing", "task": "generate", "params_b": 1.0, "source": "x"}
    with pytest.raises(CatalogError, match=r"mark the row config: missing"):
        load_model_catalog(write_catalog(tmp_path, row))


def test_task_must_match_the_config(tmp_path: Path) -> None:
    row = {"id": "BAAI/bge-reranker-v2-m3", "task": "embed", "params_b": 0.57, "source": "x"}
    with pytest.raises(CatalogError, match=r"its config\.json says 'score'"):
        load_model_catalog(write_catalog(tmp_path, row))


def test_revisions_are_full_hashes_with_a_source() -> None:
    revisions = yaml.safe_load((CATALOG_DIR / "revisions.yaml").read_text())["revisions"]
    assert revisions
    for model_id, entry in revisions.items():
        assert re.fullmatch(r"[0-9a-f]{40}", entry["revision"]), model_id
        assert entry["source"].strip(), model_id


def test_catalog_values_are_model_archs() -> None:
    assert all(isinstance(a, ModelArch) for a in MODELS.values())
