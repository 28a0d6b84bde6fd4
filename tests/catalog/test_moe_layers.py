"""Which decoder layers are MoE, by the rule of each model's vLLM class, checked on real configs against the
parameter counts their model cards publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.catalog import CatalogError, arch_from_hf_config, load_hf_config

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize(
    ("path", "dense_layers", "shared", "published_b"),
    [
        # Model cards: Llama-4-Scout "17B active, 109B total", Maverick "17B active, 400B total".
        ("tests/catalog/configs/meta-llama/Llama-4-Scout-17B-16E-Instruct/config.json", 0, 1, 109),
        ("bench/reference/configs/meta-llama/Llama-4-Maverick-17B-128E-Instruct/config.json", 24, 1, 400),
        # Qwen3-235B-A22B: "235B in total"; gpt-oss-120b: "117B parameters".
        ("bench/reference/configs/Qwen/Qwen3-235B-A22B/config.json", 0, 0, 235),
        ("components/catalog/configs/openai/gpt-oss-120b/config.json", 0, 0, 117),
    ],
)
def test_moe_layers_and_shared_experts_give_the_published_size(
    path: str, dense_layers: int, shared: int, published_b: float
) -> None:
    arch = load_hf_config(ROOT / path, "acme/moe")
    assert (arch.dense_layers, arch.shared_experts) == (dense_layers, shared)
    assert arch.params_b == pytest.approx(published_b, rel=0.02)


def test_interleaved_llama4_dense_layers_use_their_own_mlp_width() -> None:
    arch = load_hf_config(
        ROOT / "bench/reference/configs/meta-llama/Llama-4-Maverick-17B-128E-Instruct/config.json", "m"
    )
    assert (arch.intermediate, arch.moe_intermediate) == (16384, 8192)


def test_qwen_moe_mlp_only_layers_and_sparse_step() -> None:
    base = {
        "architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 1024, "num_attention_heads": 8,
        "num_key_value_heads": 4, "num_hidden_layers": 8, "intermediate_size": 2048, "moe_intermediate_size": 256,
        "num_experts": 8, "num_experts_per_tok": 2, "vocab_size": 1000, "max_position_embeddings": 4096,
    }  # fmt: skip
    assert arch_from_hf_config({**base, "decoder_sparse_step": 2}, "a", as_written=True).dense_layers == 4
    assert arch_from_hf_config({**base, "mlp_only_layers": [0, 7]}, "a", as_written=True).dense_layers == 2
    with pytest.raises(CatalogError, match="mlp_only_layers"):
        arch_from_hf_config({**base, "mlp_only_layers": "0,7"}, "a", as_written=True)
