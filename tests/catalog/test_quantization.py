"""The checkpoint's weight format as vLLM 0.13 reads quantization_config (components/catalog/quantization.py): bytes
per weight from the scheme, the parts left 16-bit, TP limits from group and block sizes, and refusals naming the key.

Real configs (tests/catalog/configs, provenance in SOURCES.txt): gpt-oss-120b (MXFP4), nvidia Qwen3-235B-A22B-NVFP4
and Llama-3.1-70B-Instruct-FP8 (ModelOpt, hf_quant_config.json beside config.json), Qwen3-32B-FP8 (block FP8), a
bitsandbytes 8-bit Llama-3.1-8B save with its safetensors index. AWQ, GPTQ, compressed-tensors and bitsandbytes
4-bit are written in the key layout their vLLM from_config reads (no public byte copy of such a config was found).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.catalog import CATALOG_DIR, CatalogError, ModelArch, arch_from_hf_config, load_hf_config
from components.catalog.weights import param_groups
from components.planning.memory import bytes_per_param, tp_problem, weight_bytes

FIXTURES = Path(__file__).with_name("configs")
GPT_OSS = CATALOG_DIR / "configs" / "openai" / "gpt-oss-120b" / "config.json"
LLAMA_8B = CATALOG_DIR / "configs" / "meta-llama" / "Llama-3.1-8B-Instruct" / "config.json"
BNB_8BIT = FIXTURES / "jeevanchaps" / "Meta-Llama3.1-8B-Instruct-assessment"


def llama_with(quantization: dict[str, Any]) -> ModelArch:
    """Llama-3.1-8B-Instruct's real config with a quantization_config."""
    cfg = json.loads(LLAMA_8B.read_text())
    return arch_from_hf_config({**cfg, "quantization_config": quantization}, "acme/q")


def held_bytes(arch: ModelArch, bits: float, quantized: tuple[str, ...] = ("linear",)) -> float:
    """Bytes of the model with the named parts at `bits` per weight and all else 16-bit: the config's parameter
    groups, the linear layers scaled to the arch's (rounded) parameter count as weight_split does."""
    groups = param_groups(arch)
    scale = (arch.params_b * 1e9 - (groups.total - groups.linear)) / groups.linear
    parts = {
        "attention": groups.attention * scale,
        "experts": groups.experts * scale,
        "linear": groups.linear * scale,
    }
    low = sum(parts[name] for name in quantized)
    return 2 * (arch.params_b * 1e9 - low) + low * bits / 8


def compressed_tensors(weights: dict[str, Any], inputs: dict[str, Any] | None, fmt: str) -> dict[str, Any]:
    group = {"targets": ["Linear"], "weights": weights, "input_activations": inputs}
    return {
        "quant_method": "compressed-tensors",
        "format": fmt,
        "config_groups": {"group_0": group},
        "ignore": ["lm_head"],
    }


def test_mxfp4_quantizes_only_the_experts_and_keeps_the_rest_16_bit() -> None:
    arch = load_hf_config(GPT_OSS, "openai/gpt-oss-120b")
    fmt = arch.weights
    assert (fmt.method, fmt.bits, fmt.scope) == ("mxfp4", 4.25, "experts")  # e2m1 + one 8-bit scale per 32
    assert "model.layers.*.self_attn" in fmt.skipped  # the config's modules_to_not_convert
    assert weight_bytes(arch, "mxfp4", 1, 1)[1] == pytest.approx(held_bytes(arch, 4.25, ("experts",)))


def test_mxfp4_pads_expert_slices_so_no_group_limits_tp() -> None:
    arch = load_hf_config(GPT_OSS, "openai/gpt-oss-120b")
    # 2880 / 8 = 360 is not a multiple of 32, yet vLLM pads each slice (mxfp4.py create_weights).
    assert tp_problem(arch, 8, "mxfp4") is None


def test_modelopt_nvfp4_from_hf_quant_config_beside_the_config() -> None:
    arch = load_hf_config(FIXTURES / "nvidia" / "Qwen3-235B-A22B-NVFP4" / "config.json", "nvidia/Qwen3-235B-A22B-NVFP4")
    fmt = arch.weights
    assert (arch.checkpoint_dtype, fmt.group, fmt.bits) == ("nvfp4", 16, 4 + 8 / 16)  # e2m1 + fp8 scale per 16
    assert len(fmt.skipped) == 95  # 94 router gates and lm_head, all 16-bit anyway
    assert weight_bytes(arch, "nvfp4", 1, 1)[1] == pytest.approx(held_bytes(arch, 4.5))
    assert tp_problem(arch, 8, "nvfp4") is None  # expert down_proj input 1536 / 8 = 192 = 12 groups
    # 1536 / 32 = 48 = 3 groups; 1536 / 64 = 24 holds no whole group ("in features ... multiple of 16", modelopt.py).
    assert tp_problem(arch, 64, "nvfp4") == (
        "1536/64 is not a multiple of the NVFP4 group 16 of nvidia/Qwen3-235B-A22B-NVFP4"
    )


def test_modelopt_fp8_from_hf_quant_config() -> None:
    path = FIXTURES / "nvidia" / "Llama-3.1-70B-Instruct-FP8" / "config.json"
    arch = load_hf_config(path, "nvidia/Llama-3.1-70B-Instruct-FP8")
    assert (arch.checkpoint_dtype, arch.weights.bits, arch.weights.skipped) == ("fp8", 8.0, ("lm_head",))
    assert weight_bytes(arch, "fp8", 1, 1)[1] == pytest.approx(held_bytes(arch, 8.0))


def test_block_fp8_keeps_tp_on_whole_blocks() -> None:
    arch = load_hf_config(FIXTURES / "Qwen" / "Qwen3-32B-FP8" / "config.json", "Qwen/Qwen3-32B-FP8")
    assert (arch.checkpoint_dtype, arch.weights.block) == ("fp8", 128)
    assert bytes_per_param(arch, "fp8") == pytest.approx((8 + 32 / (128 * 128)) / 8)  # one fp32 scale per block
    assert tp_problem(arch, 8, "fp8") is None  # 25600 / 8 = 3200 = 25 blocks
    assert tp_problem(arch, 16, "fp8") == "25600/16 is not a multiple of the FP8 block 128 of Qwen/Qwen3-32B-FP8"


def test_bitsandbytes_8bit_matches_its_published_checkpoint_size() -> None:
    cfg = json.loads((BNB_8BIT / "config.json").read_text())
    arch = arch_from_hf_config(cfg, "jeevanchaps/Meta-Llama3.1-8B-Instruct-assessment")  # no index: estimated
    assert (arch.checkpoint_dtype, arch.weights.bits) == ("bitsandbytes", 8.0)
    total = json.loads((BNB_8BIT / "model.safetensors.index.json").read_text())["metadata"]["total_size"]
    estimated = weight_bytes(arch, "bitsandbytes", 1, 1)[1]
    # int8 linear layers + fp16 embeddings, lm_head and norms: 0.06% under the file, which adds one fp32 scale
    # (SCB) per output row.
    assert estimated == pytest.approx(total, rel=0.001)
    assert estimated < total


@pytest.mark.parametrize(
    ("quantization", "bits"),
    [
        # bnb 4-bit: one fp32 absmax per 64 weights; double quantization stores it as 8 bits + fp32 per 256 blocks.
        ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}, 4 + 32 / 64),
        (
            {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_use_double_quant": True},
            4 + 8 / 64 + 32 / (64 * 256),
        ),
        # AWQ/GPTQ: packed bits + one fp16 scale and one packed zero point per group.
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"}, 4 + 20 / 128),
        ({"quant_method": "gptq", "bits": 8, "group_size": 32, "desc_act": False}, 8 + 24 / 32),
        # compressed-tensors W4A16 symmetric groups: fp16 scale per group, no zero point.
        (
            compressed_tensors(
                {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "symmetric": True},
                None,
                "pack-quantized",
            ),
            4 + 16 / 128,
        ),
        # compressed-tensors W8A8 int8 per channel, dynamic per-token activations.
        (
            compressed_tensors(
                {"num_bits": 8, "type": "int", "strategy": "channel", "symmetric": True, "dynamic": False},
                {"num_bits": 8, "type": "int", "strategy": "token", "symmetric": True, "dynamic": True},
                "int-quantized",
            ),
            8.0,
        ),
        # compressed-tensors NVFP4: e2m1 + fp8 scale per 16, as ModelOpt's.
        (
            compressed_tensors(
                {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "symmetric": True},
                {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, "symmetric": True},
                "nvfp4-pack-quantized",
            ),
            4.5,
        ),
    ],
)
def test_bits_per_weight_come_from_the_scheme(quantization: dict[str, Any], bits: float) -> None:
    arch = llama_with(quantization)
    assert bytes_per_param(arch, arch.checkpoint_dtype) == pytest.approx(bits / 8)
    assert weight_bytes(arch, arch.checkpoint_dtype, 1, 1)[1] == pytest.approx(held_bytes(arch, bits))


def test_ignored_modules_stay_16_bit() -> None:
    base = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    quantized = weight_bytes(llama_with(base), "gptq", 1, 1)[1]
    attention_kept = llama_with({**base, "modules_to_not_convert": ["self_attn"]})
    groups = param_groups(attention_kept)
    scale = (attention_kept.params_b * 1e9 - (groups.total - groups.linear)) / groups.linear
    assert weight_bytes(attention_kept, "gptq", 1, 1)[1] - quantized == pytest.approx(
        groups.attention * scale * (2 - (4 + 20 / 128) / 8)
    )


def test_group_sizes_limit_tp_as_vllm_checks_them() -> None:
    w4a16 = llama_with(
        compressed_tensors(
            {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128}, None, "pack-quantized"
        )
    )
    assert w4a16.checkpoint_dtype == "w4a16"
    assert tp_problem(w4a16, 8, "w4a16") is None  # 14336 / 8 = 1792 = 14 groups
    # 14336 / 32 = 448: down_proj's input slice holds 3.5 groups (compressed_tensors_wNa16.py, gptq.py).
    assert tp_problem(w4a16, 32, "w4a16") == "14336/32 is not a multiple of the W4A16 group 128 of acme/q"
    gptq = llama_with({"quant_method": "gptq", "bits": 4, "group_size": 128})
    assert tp_problem(gptq, 16, "gptq") is None  # 4096 / 16 = 256 and 14336 / 16 = 896, whole groups


def test_a_vision_tower_is_counted_from_its_own_dimensions() -> None:
    arch = load_hf_config(FIXTURES / "Qwen" / "Qwen3-VL-8B-Instruct" / "config.json", "Qwen/Qwen3-VL-8B-Instruct")
    hidden, merged = 1152, 1152 * 2**2
    blocks = 27 * (4 * hidden**2 + 2 * hidden * 4304 + 4 * hidden)
    embeddings = 3 * 2 * 16 * 16 * hidden + 2304 * hidden
    mergers = (1 + 3) * (merged * merged + merged * 4096)  # the merger and three deepstack mergers
    assert arch.vision_params == blocks + embeddings + mergers
    assert param_groups(arch).vision == arch.vision_params
    # The tower sits with the embedding on the first pipeline stage, in 16 bits.
    first, _ = weight_bytes(arch, "bf16", 1, 2)
    assert first >= 2 * (param_groups(arch).embed + arch.vision_params)


@pytest.mark.parametrize(
    ("quantization", "message"),
    [
        ({"quant_method": "hqq"}, r"quant_method 'hqq' is not sized by this tool \(vLLM 0.13 runs it"),
        ({"quant_method": "exl2"}, r"quant_method 'exl2' is not a quantization method vLLM 0.13 has"),
        (
            {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_storage": "bfloat16"},
            r"quantization_config.bnb_4bit_quant_storage: 'bfloat16': vLLM 0.13 loads only uint8 storage",
        ),
        (
            {"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"},
            r"quantization_config.quant_algo: 'W4A8_AWQ': vLLM 0.13's ModelOpt support runs FP8 and NVFP4 only",
        ),
        (
            {"quant_method": "fp8", "weight_block_size": [128]},
            r"quantization_config.weight_block_size: \[128\] is not \[block_n, block_k\]",
        ),
        (
            compressed_tensors({"num_bits": 2, "type": "int", "strategy": "tensor"}, None, "pack-quantized"),
            r"compressed-tensors scheme int 2-bit tensor \(format pack-quantized\) is not one vLLM 0.13 runs",
        ),
    ],
)
def test_schemes_vllm_does_not_run_are_refused_naming_the_key(quantization: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        llama_with(quantization)


def test_a_quantization_config_without_quant_method_loads_unquantized() -> None:
    # vLLM's _verify_quantization (vllm/config/model.py) reads a missing quant_method as no quantization.
    assert llama_with({"bits": 4, "group_size": 128}).checkpoint_dtype == "bf16"


def test_online_formats_size_a_16_bit_checkpoint() -> None:
    arch = load_hf_config(LLAMA_8B, "meta-llama/Llama-3.1-8B-Instruct", 8.03)
    assert weight_bytes(arch, "fp8", 1, 1)[1] == pytest.approx(held_bytes(arch, 8.0))  # one byte per linear weight
    nf4 = held_bytes(arch, 4 + 8 / 64 + 32 / 16384)  # NF4 with double quantization (bitsandbytes_loader.py)
    assert weight_bytes(arch, "bitsandbytes", 1, 1)[1] == pytest.approx(nf4)
    assert weight_bytes(arch, "bf16", 1, 1)[1] == pytest.approx(8.03e9 * 2)
