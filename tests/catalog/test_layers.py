"""Per-layer structure read from real config.json files (components/catalog/layers.py): which layers attend fully,
in a window or in chunks, keep a recurrent state, or have no attention, as vLLM 0.13's model classes build them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.catalog import CatalogError, load_model_catalog
from components.catalog.hf_config import arch_from_hf_config, load_hf_config
from components.catalog.types import LayerGroup, ModelArch, RecurrentState
from components.planning.engine_versions import ENGINE_VERSIONS
from components.planning.kv_cache import kv_layout
from components.planning.types import SizingError

FIXTURES = Path(__file__).with_name("configs")
MODELS = load_model_catalog()


def fixture(model_id: str) -> ModelArch:
    return load_hf_config(FIXTURES / model_id / "config.json", model_id)


def by_kind(arch: ModelArch) -> dict[str, LayerGroup]:
    groups: dict[str, LayerGroup] = {g.kind: g for g in arch.layer_groups}
    assert len(groups) == len(arch.layer_groups)  # one group per kind in these models
    return groups


# A small decoder the hybrid layouts below extend; every number is a real model's where one is named.
BASE: dict[str, Any] = {
    "hidden_size": 2048,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "intermediate_size": 5632,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
}


def read(extra: dict[str, Any], layers: int = 48) -> ModelArch:
    return arch_from_hf_config({**BASE, "num_hidden_layers": layers, **extra}, "acme/model")


def test_gpt_oss_windows_its_even_layers() -> None:
    # GptOssAttention (vllm/model_executor/models/gpt_oss.py): sliding_window if layer_idx % 2 == 0.
    groups = by_kind(MODELS["openai/gpt-oss-120b"])
    assert groups["sliding"].layers == tuple(range(0, 36, 2)) and groups["sliding"].window == 128
    assert groups["full"].layers == tuple(range(1, 36, 2))
    assert groups["sliding"].kv_heads == groups["full"].kv_heads == 8


def test_gemma3_five_local_layers_to_one_global() -> None:
    groups = by_kind(fixture("google/gemma-3-27b-it"))
    assert groups["full"].layers == tuple(range(5, 62, 6))  # sliding_window_pattern 6: every 6th layer global
    assert (groups["sliding"].count, groups["sliding"].window) == (52, 1024)
    assert (groups["sliding"].kv_heads, groups["sliding"].head_dim) == (16, 128)


def test_llama4_scout_attends_locally_in_three_of_four_layers() -> None:
    groups = by_kind(fixture("meta-llama/Llama-4-Scout-17B-16E-Instruct"))
    assert groups["full"].layers == tuple(range(3, 48, 4))  # the NoPE layers (no_rope_layer_interval 4)
    assert (groups["chunked"].count, groups["chunked"].window) == (36, 8192)


def test_nemotron_super_49b_reads_its_block_configs() -> None:
    path = FIXTURES / "nvidia/Llama-3_3-Nemotron-Super-49B-v1/config.json"
    blocks = json.loads(path.read_text())["block_configs"]
    groups = by_kind(fixture("nvidia/Llama-3_3-Nemotron-Super-49B-v1"))
    no_op = tuple(i for i, b in enumerate(blocks) if b["attention"]["no_op"])
    assert groups["none"].layers == no_op and len(no_op) == 31
    assert (groups["full"].count, groups["full"].kv_heads, groups["full"].head_dim) == (49, 8, 128)


def test_qwen3_next_linear_attention_between_full_layers() -> None:
    # Qwen3NextConfig defaults in vllm/transformers_utils/configs/qwen3_next.py (the 80B-A3B shape).
    arch = read(
        {
            "model_type": "qwen3_next",
            "architectures": ["Qwen3NextForCausalLM"],
            "full_attention_interval": 4,
            "linear_num_key_heads": 16,
            "linear_num_value_heads": 32,
            "linear_key_head_dim": 128,
            "linear_value_head_dim": 128,
            "linear_conv_kernel_dim": 4,
        }
    )
    groups = by_kind(arch)
    assert groups["full"].layers == tuple(range(3, 48, 4))
    assert groups["linear"].count == 36
    assert groups["linear"].state == RecurrentState(
        "gated_delta_net", heads=32, head_dim=128, key_heads=16, key_head_dim=128, conv_kernel=4
    )


NEMOTRON_H_8B = "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-"  # NemotronHConfig's default pattern


def test_nemotron_h_pattern_names_each_layer() -> None:
    arch = read(
        {
            "model_type": "nemotron_h",
            "architectures": ["NemotronHForCausalLM"],
            "hybrid_override_pattern": NEMOTRON_H_8B,
            "mamba_num_heads": 128,
            "mamba_head_dim": 64,
            "n_groups": 8,
            "ssm_state_size": 128,
            "conv_kernel": 4,
            "mamba_ssm_cache_dtype": "float32",
        },
        layers=len(NEMOTRON_H_8B),
    )
    groups = by_kind(arch)
    assert groups["full"].layers == tuple(i for i, c in enumerate(NEMOTRON_H_8B) if c == "*")
    assert (groups["mamba"].count, groups["none"].count) == (NEMOTRON_H_8B.count("M"), NEMOTRON_H_8B.count("-"))
    state = groups["mamba"].state
    assert state is not None and (state.formula, state.intermediate, state.ssm_element_bytes) == ("mamba2", 8192, 4)


def test_jamba_attends_every_eighth_layer() -> None:
    arch = read({"model_type": "jamba", "architectures": ["JambaForCausalLM"]}, layers=32)
    groups = by_kind(arch)
    assert groups["full"].layers == (4, 12, 20, 28)  # JambaConfig: attn_layer_period 8, attn_layer_offset 4
    assert groups["mamba"].state == RecurrentState("mamba1", intermediate=2 * 2048, state_size=16, conv_kernel=4)


def test_minimax_linear_attention_from_attn_type_list() -> None:
    flags = [0] * 7 + [1]
    arch = read({"architectures": ["MiniMaxText01ForCausalLM"], "attn_type_list": flags * 2}, layers=16)
    groups = by_kind(arch)
    assert groups["full"].layers == (7, 15)
    assert groups["linear"].state == RecurrentState("linear_attention", heads=16, head_dim=256)


def test_granite_hybrid_mamba_head_size_auto() -> None:
    kinds = ["mamba"] * 5 + ["attention"]
    arch = read(
        {
            "model_type": "granitemoehybrid",
            "architectures": ["GraniteMoeHybridForCausalLM"],
            "layer_types": kinds * 2,
            "mamba_n_heads": 64,
            "mamba_d_head": "auto",
        },
        layers=12,
    )
    state = by_kind(arch)["mamba"].state
    assert state is not None and (state.heads, state.head_dim, state.intermediate) == (64, 64, 4096)


def test_a_window_on_every_layer_slides_them_all() -> None:
    # Mistral-7B-v0.1 style: no layer_types, so EngineArgs sets the model-wide CacheConfig.sliding_window.
    arch = read({"model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": 4096})
    assert [(g.kind, g.count, g.window) for g in arch.layer_groups] == [("sliding", 48, 4096)]


def test_qwen_window_needs_use_sliding_window() -> None:
    arch = read({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "sliding_window": 4096})
    assert arch.layer_groups == ()


def test_full_attention_models_have_no_groups() -> None:
    for model in ("Qwen/Qwen3-32B", "meta-llama/Llama-3.1-8B-Instruct", "deepseek-ai/DeepSeek-R1"):
        assert MODELS[model].layer_groups == ()


def test_hand_typed_gemma2_row_alternates() -> None:
    groups = by_kind(MODELS["google/gemma-2-27b-it"])
    assert groups["sliding"].layers == tuple(range(0, 46, 2)) and groups["sliding"].window == 4096


@pytest.mark.parametrize(
    ("extra", "layers", "key"),
    [
        ({"model_type": "gemma3_text", "layer_types": ["full_attention"] * 3}, 4, "layer_types"),
        ({"model_type": "gemma3_text", "layer_types": ["local"] * 4}, 4, "layer_types"),
        ({"model_type": "llama4_text", "attention_chunk_size": 8192, "no_rope_layers": [1, 2, 1, 0]}, 4, "no_rope"),
        ({"model_type": "nemotron_h", "hybrid_override_pattern": "M*M"}, 4, "hybrid_override_pattern"),
        ({"model_type": "nemotron-nas", "block_configs": [{"attention": {"no_op": False}}]}, 1, "n_heads_in_group"),
        ({"model_type": "nemotron-nas", "block_configs": [{"attention": {"n_heads_in_group": 3}}]}, 1, "divide"),
        ({"model_type": "nemotron-nas", "block_configs": "x"}, 1, "block_configs"),
        ({"model_type": "qwen3_next", "linear_num_key_heads": "16"}, 4, "linear_num_key_heads"),
        ({"model_type": "jamba", "attn_layer_offset": 9}, 4, "attn_layer_offset"),
        ({"architectures": ["MiniMaxText01ForCausalLM"], "attn_type_list": [0, 1]}, 4, "attn_type_list"),
    ],
)
def test_bad_layer_structure_names_the_key(extra: dict[str, Any], layers: int, key: str) -> None:
    with pytest.raises(CatalogError, match=key):
        read(extra, layers=layers)


# The keys that decide layer kinds, and values of every JSON type to put there.
LAYER_KEYS = (
    "layer_types", "sliding_window", "use_sliding_window", "sliding_window_pattern", "attention_chunk_size",
    "no_rope_layers", "no_rope_layer_interval", "block_configs", "hybrid_override_pattern", "full_attention_interval",
    "attn_type_list", "attn_layer_period", "attn_layer_offset", "mamba_d_head", "mamba_n_heads", "n_groups",
    "linear_num_key_heads", "mamba_ssm_cache_dtype", "num_hidden_layers",
)  # fmt: skip
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**40) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.sampled_from(["attention", "no_op"]), inner),
    max_leaves=12,
)
LAYOUTS: list[dict[str, Any]] = [
    {"model_type": "gpt_oss", "sliding_window": 128},
    {"model_type": "gemma3_text", "sliding_window": 1024, "sliding_window_pattern": 6},
    {"model_type": "llama4_text", "attention_chunk_size": 8192, "no_rope_layers": [1, 1, 1, 0] * 2},
    {"model_type": "nemotron-nas", "block_configs": [{"attention": {"n_heads_in_group": 8}}] * 8},
    {"model_type": "qwen3_next", **{k: 4 for k in ("linear_num_key_heads", "linear_num_value_heads")}},
    {"model_type": "nemotron_h", "hybrid_override_pattern": "M-M*M-M*"},
    {"model_type": "jamba"},
    {"model_type": "granitemoehybrid", "layer_types": ["mamba", "attention"] * 4},
    {"architectures": ["MiniMaxText01ForCausalLM"], "attn_type_list": [0, 1] * 4},
]


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(layout=st.sampled_from(LAYOUTS), key=st.sampled_from(LAYER_KEYS), value=JSON_VALUES)
def test_fuzzed_layer_keys_read_or_are_refused(layout: dict[str, Any], key: str, value: Any) -> None:
    extra = {"linear_num_value_heads": 4, "linear_key_head_dim": 8, "linear_value_head_dim": 8, **layout}
    try:
        arch = read({**extra, "linear_conv_kernel_dim": 4, key: value}, layers=8)
    except CatalogError as exc:
        assert "config.json of acme/model: " in str(exc)
        return
    for tp, pp in ((1, 1), (2, 2), (16, 3)):
        for version in ENGINE_VERSIONS.values():
            try:
                kv_layout(arch, tp, min(pp, arch.layers), "auto", 4096, 2048, version.kv_cache)
            except SizingError as exc:
                assert "cannot unify the KV page sizes" in exc.errors[0]
