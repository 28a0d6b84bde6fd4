"""Catalog integrity (gpus.yaml, models.yaml) and the HF config.json reader for models outside the catalog."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.catalog import (
    CatalogError,
    GpuType,
    ModelArch,
    arch_from_hf_config,
    estimate_params,
    load_gpu_catalog,
    load_model_catalog,
)
from components.planning.memory import BYTES_PER_PARAM, kv_bytes_per_token

PROJECT = Path(__file__).resolve().parents[2]
GPUS = load_gpu_catalog()
MODELS = load_model_catalog()
KIB = 1024

REQUIRED_GPUS = [
    "H100-SXM-80GB",
    "H200-SXM-141GB",
    "B200-SXM-180GB",
    "A100-SXM-80GB",
    "A100-SXM-40GB",
    "A100-PCIE-80GB",
    "H100-NVL-94GB",
    "L40S-48GB",
    "L4-24GB",
    "A10G-24GB",
    "RTX-4090-24GB",
    "RTX-5090-32GB",
]

# What the driver reports (nvidia-smi memory.total), from the reference sizing notes.
DRIVER_MIB = {
    "H100-SXM-80GB": 81559,
    "H200-SXM-141GB": 143771,
    "A100-SXM-80GB": 81920,
    "A100-PCIE-80GB": 81920,
    "L4-24GB": 23034,
    "L40S-48GB": 46068,
    "RTX-4090-24GB": 24564,
    "H100-NVL-94GB": 95830,
}

# Instances whose NVLink domain is wider than the GPU's usual board: GCP joins two HGX A100 boards
# through NVSwitch into one 16-GPU domain on a2-megagpu-16g.
WIDER_THAN_BOARD = {("gcp", "a2-megagpu-16g")}


def all_instances() -> list[tuple[GpuType, Any]]:
    return [(gpu, inst) for gpu in GPUS.values() for inst in gpu.instances]


# ---------------------------------------------------------------- GPUs


@pytest.mark.parametrize("gpu_id", REQUIRED_GPUS)
def test_required_gpu_exists(gpu_id: str) -> None:
    assert gpu_id in GPUS


@pytest.mark.parametrize(("gpu_id", "mib"), sorted(DRIVER_MIB.items()))
def test_memory_is_what_the_driver_reports(gpu_id: str, mib: int) -> None:
    assert GPUS[gpu_id].memory_mib == mib


@pytest.mark.parametrize("gpu", GPUS.values(), ids=lambda g: g.id)
def test_gpu_row(gpu: GpuType) -> None:
    assert gpu.sources and all(s.strip() for s in gpu.sources)
    assert gpu.gfd_product.startswith("NVIDIA-")
    assert " " not in gpu.gfd_product  # GFD replaces spaces in the NVML name
    assert gpu.nvlink_domain >= 1
    assert gpu.memory_mib > 0
    assert is_capability(gpu.compute_capability)
    if gpu.nvlink_domain > 1:
        assert gpu.peer_to_peer, f"{gpu.id}: NVLink without peer-to-peer"


def is_capability(capability: str) -> bool:
    major, _, minor = capability.partition(".")
    return major.isdigit() and minor.isdigit()


@pytest.mark.parametrize(("gpu", "inst"), all_instances(), ids=lambda x: getattr(x, "type", getattr(x, "id", "")))
def test_instance_row(gpu: GpuType, inst: Any) -> None:
    assert inst.cloud in {"aws", "gcp", "azure", "ovh"}
    assert inst.gpus >= 1
    assert inst.nvlink_domain >= 1
    assert inst.gpus % inst.nvlink_domain == 0, f"{inst.type}: domain {inst.nvlink_domain} of {inst.gpus} GPUs"
    if (inst.cloud, inst.type) not in WIDER_THAN_BOARD:
        assert inst.nvlink_domain <= gpu.nvlink_domain, f"{inst.type}: wider than {gpu.id}'s domain"
    else:
        assert inst.nvlink_domain == inst.gpus
    if inst.cloud == "gcp":
        assert inst.accelerator, f"{inst.type}: GKE needs the accelerator type"
    else:
        assert inst.accelerator is None
    assert inst.source.strip()


def test_instance_types_unique_per_cloud() -> None:
    counts = Counter((inst.cloud, inst.type) for _, inst in all_instances())
    assert [key for key, n in counts.items() if n > 1] == []


def test_instance_type_of_one_gpu_only() -> None:
    owner: dict[tuple[str, str], str] = {}
    for gpu, inst in all_instances():
        assert owner.setdefault((inst.cloud, inst.type), gpu.id) == gpu.id


@pytest.mark.parametrize("gpu_id", ["RTX-4090-24GB", "RTX-5090-32GB"])
def test_geforce_has_no_peer_to_peer(gpu_id: str) -> None:
    assert GPUS[gpu_id].peer_to_peer is False
    assert GPUS[gpu_id].nvlink_domain == 1


def test_gpu_ids_unique_in_yaml() -> None:
    rows = yaml.safe_load((PROJECT / "components/catalog/gpus.yaml").read_text())["gpus"]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == len(GPUS)


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("arch", MODELS.values(), ids=lambda m: m.id)
def test_model_row(arch: ModelArch) -> None:
    assert arch.source.strip()
    assert arch.params_b > 0
    assert arch.layers > 0 and arch.hidden > 0 and arch.heads > 0 and arch.head_dim > 0
    assert arch.vocab > 0 and arch.max_position > 0
    assert arch.checkpoint_dtype in BYTES_PER_PARAM
    if arch.attention == "mla":
        assert arch.kv_lora_rank > 0 and arch.qk_rope_head_dim > 0
    else:
        assert arch.heads % arch.kv_heads == 0, f"{arch.heads} heads / {arch.kv_heads} KV heads"
        assert arch.kv_lora_rank == 0
    if arch.is_moe:
        assert 1 <= arch.experts_per_token <= arch.experts
        assert arch.moe_intermediate > 0
        assert 0 <= arch.dense_layers < arch.layers
    else:
        assert arch.experts_per_token == 0 and arch.moe_intermediate == 0
    assert (arch.attention == "encoder") == (arch.task != "generate")
    if arch.fp8_block:
        assert arch.checkpoint_dtype == "fp8"
    if arch.yarn_original_max_position:
        assert arch.yarn_original_max_position <= arch.max_position
    if arch.layer_groups:
        layers = sorted(i for g in arch.layer_groups for i in g.layers)
        assert layers == list(range(arch.layers))  # every layer in exactly one group
        assert all(g.window > 0 for g in arch.layer_groups if g.kind in ("sliding", "chunked"))


# SwiGLU encoder: estimate_params assumes encoders have a two-matrix MLP.
ESTIMATE_EXCEPTIONS = {"nomic-ai/nomic-embed-text-v1"}


@pytest.mark.parametrize("arch", [m for m in MODELS.values() if m.id not in ESTIMATE_EXCEPTIONS], ids=lambda m: m.id)
def test_params_agree_with_layer_shape(arch: ModelArch) -> None:
    """Rows say params were computed from their shape; multimodal rows add a vision tower of ~0.4B."""
    estimate = estimate_params(arch) / 1e9
    assert estimate == pytest.approx(arch.params_b, rel=0.03)


def stack_models() -> list[tuple[str, str]]:
    found = []
    for stack in sorted((PROJECT / "stacks").glob("Pulumi.*.yaml")):
        cluster = yaml.safe_load(stack.read_text())["config"]["llm-cluster:cluster"]
        found += [(stack.name, m["model"]) for m in cluster["models"] if not m.get("configPath")]
    return found


def test_stacks_have_models() -> None:
    assert len(stack_models()) >= 3


@pytest.mark.parametrize(("stack", "model_id"), stack_models())
def test_stack_model_in_catalog(stack: str, model_id: str) -> None:
    assert model_id in MODELS, f"{stack} serves {model_id}, which is not in models.yaml"


# docs/reference/models.md: (layers, hidden, heads, kv_heads, head_dim, intermediate, vocab, KV KiB/token bf16 TP 1)
MODELS_MD: dict[str, tuple[int, int, int, int, int, int, int, float]] = {
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": (64, 5120, 40, 8, 128, 27648, 152064, 256),
    "Qwen/Qwen2.5-32B-Instruct": (64, 5120, 40, 8, 128, 27648, 152064, 256),
    "Qwen/Qwen2.5-Coder-32B-Instruct": (64, 5120, 40, 8, 128, 27648, 152064, 256),
    "Qwen/Qwen2.5-Coder-7B-Instruct": (28, 3584, 28, 4, 128, 18944, 152064, 56),
    "t-tech/T-lite-it-1.0": (28, 3584, 28, 4, 128, 18944, 152064, 56),
    "t-tech/T-pro-it-1.0": (64, 5120, 40, 8, 128, 27648, 152064, 256),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": (28, 1536, 12, 2, 128, 8960, 151936, 28),
    "mistralai/Ministral-3-14B-Instruct-2512": (40, 5120, 32, 8, 128, 16384, 131072, 160),
    "intfloat/multilingual-e5-large": (24, 1024, 16, 16, 64, 4096, 250002, 0),
    "BAAI/bge-m3": (24, 1024, 16, 16, 64, 4096, 250002, 0),
    "nomic-ai/nomic-embed-text-v1": (12, 768, 12, 12, 64, 3072, 30528, 0),
    "BAAI/bge-reranker-v2-m3": (24, 1024, 16, 16, 64, 4096, 250002, 0),
    "meta-llama/Llama-3.1-8B-Instruct": (32, 4096, 32, 8, 128, 14336, 128256, 128),
    "meta-llama/Llama-3.3-70B-Instruct": (80, 8192, 64, 8, 128, 28672, 128256, 320),
    "Qwen/Qwen3-32B": (64, 5120, 64, 8, 128, 25600, 151936, 256),
    "google/gemma-2-27b-it": (46, 4608, 32, 16, 128, 36864, 256000, 368),
    # MLA: 61 layers x (kv_lora_rank 512 + rope 64) x 2 bytes; docs/reference/models.md rounds it to 68.6.
    "deepseek-ai/DeepSeek-R1": (61, 7168, 128, 128, 192, 18432, 129280, 68.625),
}


@pytest.mark.parametrize(("model_id", "row"), MODELS_MD.items(), ids=list(MODELS_MD))
def test_matches_models_md(model_id: str, row: tuple[int, int, int, int, int, int, int, float]) -> None:
    arch = MODELS[model_id]
    *shape, kv_kib = row
    assert [arch.layers, arch.hidden, arch.heads, arch.kv_heads, arch.head_dim, arch.intermediate, arch.vocab] == shape
    assert kv_bytes_per_token(arch, 1, 1, "auto") == kv_kib * KIB


def test_mla_kv_is_the_compressed_latent() -> None:
    r1 = MODELS["deepseek-ai/DeepSeek-R1"]
    assert kv_bytes_per_token(r1, 1, 1, "auto") == 61 * 576 * 2
    assert kv_bytes_per_token(r1, 8, 1, "auto") == 61 * 576 * 2  # replicated on every TP rank
    assert kv_bytes_per_token(r1, 1, 1, "fp8") == 61 * 576


def test_fp8_kv_halves_and_tp_splits() -> None:
    qwen = MODELS["Qwen/Qwen2.5-32B-Instruct"]
    assert kv_bytes_per_token(qwen, 1, 1, "fp8") == 128 * KIB
    assert kv_bytes_per_token(qwen, 4, 1, "auto") == 64 * KIB
    assert kv_bytes_per_token(qwen, 1, 2, "auto") == 128 * KIB  # half the layers per stage


# ---------------------------------------------------------------- HF config.json

QWEN_7B_CONFIG: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}

MIXTRAL_CONFIG: dict[str, Any] = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 32000,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}

DEEPSEEK_V3_CONFIG: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_rope_head_dim": 64,
    "qk_nope_head_dim": 128,
    "v_head_dim": 128,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "vocab_size": 129280,
    "max_position_embeddings": 163840,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "quantization_config": {
        "quant_method": "fp8",
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "weight_block_size": [128, 128],
    },
}

MISTRAL3_CONFIG: dict[str, Any] = {
    "architectures": ["Mistral3ForConditionalGeneration"],
    "model_type": "mistral3",
    "torch_dtype": "bfloat16",
    "text_config": {
        "model_type": "mistral",
        "hidden_size": 5120,
        "intermediate_size": 32768,
        "num_hidden_layers": 40,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 131072,
        "vocab_size": 131072,
    },
    "vision_config": {"model_type": "pixtral", "hidden_size": 1024, "num_hidden_layers": 24},
}

XLMR_RERANKER_CONFIG: dict[str, Any] = {
    "architectures": ["XLMRobertaForSequenceClassification"],
    "model_type": "xlm-roberta",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "vocab_size": 250002,
    "max_position_embeddings": 8194,
    "torch_dtype": "float32",
}


def test_dense_gqa_config() -> None:
    arch = arch_from_hf_config(QWEN_7B_CONFIG, "acme/dense-7b")
    assert arch.id == "acme/dense-7b"
    assert arch.task == "generate"
    assert arch.architecture == "Qwen2ForCausalLM"
    assert arch.attention == "gqa"
    assert (arch.layers, arch.hidden, arch.heads, arch.kv_heads) == (28, 3584, 28, 4)
    assert arch.head_dim == 128  # hidden / heads
    assert arch.intermediate == 18944
    assert arch.vocab == 152064
    assert arch.max_position == 32768
    assert arch.tie_embeddings is False
    assert arch.checkpoint_dtype == "bf16"
    assert not arch.is_moe
    assert arch.params_estimated
    assert kv_bytes_per_token(arch, 1, 1, "auto") == 56 * KIB


def test_dense_params_estimate_matches_hand_count() -> None:
    c = QWEN_7B_CONFIG
    h, layers, heads, kv = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"], c["num_key_value_heads"]
    hd, inter, vocab = h // heads, c["intermediate_size"], c["vocab_size"]
    by_hand = layers * (2 * h * heads * hd + 2 * h * kv * hd + 3 * h * inter) + 2 * vocab * h  # untied
    arch = arch_from_hf_config(c, "acme/dense-7b")
    assert arch.params_b * 1e9 == pytest.approx(by_hand, rel=0.03)
    assert arch.params_b == pytest.approx(7.62, rel=0.03)  # Qwen2.5-7B's published count


def test_params_b_given_wins_over_estimate() -> None:
    arch = arch_from_hf_config(QWEN_7B_CONFIG, "acme/dense-7b", params_b=7.62)
    assert arch.params_b == 7.62
    assert not arch.params_estimated


def test_moe_config() -> None:
    arch = arch_from_hf_config(MIXTRAL_CONFIG, "acme/moe-8x7b")
    assert arch.is_moe
    assert arch.experts == 8
    assert arch.experts_per_token == 2
    assert arch.moe_intermediate == 14336  # no moe_intermediate_size: the MLP size is the expert size
    assert arch.shared_experts == 0 and arch.dense_layers == 0
    assert arch.attention == "gqa"
    assert arch.params_b == pytest.approx(46.7, rel=0.03)  # Mixtral 8x7B's published count


def test_mla_config() -> None:
    arch = arch_from_hf_config(DEEPSEEK_V3_CONFIG, "acme/mla")
    assert arch.attention == "mla"
    assert arch.kv_lora_rank == 512
    assert arch.qk_rope_head_dim == 64
    assert arch.head_dim == 128 + 64  # qk_nope + qk_rope
    assert arch.kv_heads == arch.heads == 128
    assert arch.experts == 256 and arch.experts_per_token == 8
    assert arch.moe_intermediate == 2048
    assert arch.shared_experts == 1
    assert arch.dense_layers == 3
    assert arch.checkpoint_dtype == "fp8"
    assert arch.fp8_block == 128
    assert kv_bytes_per_token(arch, 1, 1, "auto") == 61 * 576 * 2
    assert arch.params_b == pytest.approx(671, rel=0.03)


def test_nested_text_config() -> None:
    arch = arch_from_hf_config(MISTRAL3_CONFIG, "acme/mistral3", params_b=24.0)
    assert arch.architecture == "Mistral3ForConditionalGeneration"  # from the top level
    assert (arch.layers, arch.hidden, arch.heads, arch.kv_heads, arch.head_dim) == (40, 5120, 32, 8, 128)
    assert arch.intermediate == 32768
    assert arch.vocab == 131072
    assert arch.max_position == 131072
    assert arch.task == "generate"
    assert arch.checkpoint_dtype == "bf16"
    assert arch.params_b == 24.0
    assert any("text_config" in note for note in arch.notes)


def test_nested_text_config_without_vocab_gets_the_text_models_default() -> None:
    """vLLM sizes the language model from text_config (get_hf_text_config); a vocab_size only at the top level is
    not read, so transformers' MistralConfig default applies, and the notes say so."""
    cfg = {**MISTRAL3_CONFIG, "vocab_size": 131072, "text_config": dict(MISTRAL3_CONFIG["text_config"])}
    del cfg["text_config"]["vocab_size"]
    arch = arch_from_hf_config(cfg, "acme/mistral3")
    assert arch.vocab == 32000
    assert any("text_config.vocab_size" in note and "MistralConfig" in note for note in arch.notes)


def test_encoder_reranker_config() -> None:
    arch = arch_from_hf_config(XLMR_RERANKER_CONFIG, "acme/reranker")
    assert arch.attention == "encoder"
    assert arch.task == "score"
    assert arch.checkpoint_dtype == "fp32"
    assert arch.kv_heads == arch.heads == 16
    assert kv_bytes_per_token(arch, 1, 1, "auto") == 0


def test_encoder_embedding_config() -> None:
    cfg = {**XLMR_RERANKER_CONFIG, "architectures": ["XLMRobertaModel"]}
    arch = arch_from_hf_config(cfg, "acme/embedder")
    assert arch.attention == "encoder"
    assert arch.task == "embed"


def test_missing_layer_count_is_the_model_types_default_and_said() -> None:
    cfg = {k: v for k, v in QWEN_7B_CONFIG.items() if k != "num_hidden_layers"}
    arch = arch_from_hf_config(cfg, "acme/broken")
    assert arch.layers == 32  # Qwen2Config's default, what vLLM would build
    assert any(note.startswith("num_hidden_layers") and "Qwen2Config" in note for note in arch.notes)


def test_missing_layer_count_without_a_known_model_type_names_the_key() -> None:
    cfg = {k: v for k, v in QWEN_7B_CONFIG.items() if k not in ("num_hidden_layers", "model_type")}
    with pytest.raises(CatalogError) as info:
        arch_from_hf_config(cfg, "acme/broken")
    message = str(info.value)
    assert "'num_hidden_layers'" in message
    assert "acme/broken" in message
    assert "models.yaml" in message  # says where else the numbers can come from


def test_unsized_quantization_is_refused() -> None:
    cfg = {**QWEN_7B_CONFIG, "quantization_config": {"quant_method": "hqq"}}
    with pytest.raises(CatalogError, match="'hqq' is not sized"):
        arch_from_hf_config(cfg, "acme/hqq")


@pytest.mark.parametrize("method", ["awq", "gptq", "mxfp4"])
def test_prequantized_checkpoint_dtype(method: str) -> None:
    cfg = {**QWEN_7B_CONFIG, "quantization_config": {"quant_method": method}}
    assert arch_from_hf_config(cfg, "acme/q").checkpoint_dtype == method


def test_multi_query_config() -> None:
    cfg = {k: v for k, v in QWEN_7B_CONFIG.items() if k not in ("num_key_value_heads", "model_type")}
    assert arch_from_hf_config(cfg, "acme/mha").attention == "mha"
    assert arch_from_hf_config({**cfg, "multi_query": True}, "acme/mqa").kv_heads == 1


def test_a_refused_default_says_the_file_does_not_state_it() -> None:
    """Qwen2Config defaults num_key_value_heads to 32, which 28 heads cannot share: vLLM would fail the same way."""
    cfg = {k: v for k, v in QWEN_7B_CONFIG.items() if k != "num_key_value_heads"}
    with pytest.raises(CatalogError) as info:
        arch_from_hf_config(cfg, "acme/mha")
    message = str(info.value)
    assert "num_key_value_heads: 32 does not divide num_attention_heads 28" in message
    assert "num_key_value_heads" in message.split("(note: ")[1] and "not in the file" in message


def test_catalog_rows_are_reproduced_from_their_config() -> None:
    """The reader and the catalog agree on a model whose config is the Qwen2.5-7B layout."""
    row = MODELS["t-tech/T-lite-it-1.0"]
    arch = arch_from_hf_config(QWEN_7B_CONFIG, row.id, params_b=row.params_b)
    for name in ("layers", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab", "max_position"):
        assert getattr(arch, name) == getattr(row, name), name
    assert math.isclose(kv_bytes_per_token(arch, 1, 1, "auto"), kv_bytes_per_token(row, 1, 1, "auto"))
