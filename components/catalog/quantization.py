"""The checkpoint's weight format from its config.json `quantization_config`, read the way vLLM 0.13 reads it
(vllm/model_executor/layers/quantization/*.py), with the bits one stored weight costs derived from the scheme:
packed weight bits plus its share of scales and zero points. Schemes vLLM does not run are refused naming the key.

Online quantization (the stack's `quantization: fp8 | bitsandbytes` on a 16-bit checkpoint) has its own formats
here too (ONLINE_FORMATS), so that planning reads one record for both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.catalog.config_values import ConfigValues
from components.catalog.types import SIXTEEN_BIT_WEIGHTS, CatalogError, QuantScope, WeightFormat

_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
HF_QUANT_CONFIG = "hf_quant_config.json"  # ModelOpt <= 0.29 keeps its quantization_config in this file
# bitsandbytes 4-bit (NF4/FP4) blocks: one absmax per 64 weights (bnb's quantize_4bit default blocksize, which
# vLLM's loader keeps); double quantization stores that absmax as 8 bits with one fp32 scale per 256 blocks.
BNB_BLOCK = 64
BNB_NESTED_BLOCK = 256
NVFP4_GROUP = 16  # NVFP4: one fp8 (e4m3) scale per 16 e2m1 weights (ModelOptNvFp4Config, modelopt.py)
MXFP4_GROUP = 32  # MXFP4: one 8-bit (e8m0) scale per 32 e2m1 weights (mxfp4.py create_weights)
# Bits per weight of the AWQ/GPTQ kernels vLLM 0.13 has (AWQConfig, GPTQConfig in awq.py, gptq.py), and of
# compressed-tensors weight-only schemes (WNA16_SUPPORTED_BITS, compressed_tensors_wNa16.py).
INT_BITS = {"awq": (4,), "gptq": (2, 3, 4, 8)}
WNA16_BITS = (4, 8)
# quant_method values vLLM 0.13 accepts (QUANTIZATION_METHODS in quantization/__init__.py) whose weight layout this
# tool does not model: refused with that reason rather than sized wrong.
_UNSIZED = {
    "deepspeedfp", "tpu_int8", "fp_quant", "bitblas", "gguf", "gptq_marlin_24", "gptq_bitblas", "hqq", "ipex",
    "quark", "moe_wna16", "torchao", "auto-round", "rtn", "inc", "petit_nvfp4", "cpu_gptq", "cpu_awq", "ptpc_fp8",
    "experts_int8",
}  # fmt: skip


def _fmt(
    method: str,
    bits: float,
    detail: str,
    *,
    group: int = 0,
    block: int = 0,
    scope: QuantScope = "linear",
    skipped: tuple[str, ...] = (),
    packed: int = 0,
) -> WeightFormat:
    return WeightFormat(method, bits, group, block, scope, skipped, detail, packed)


def _bnb4(double_quant: bool, kind: str = "nf4") -> WeightFormat:
    scale_bits = 8 / BNB_BLOCK + 32 / (BNB_BLOCK * BNB_NESTED_BLOCK) if double_quant else 32 / BNB_BLOCK
    nested = ", double-quantized scales" if double_quant else ""
    return _fmt("bitsandbytes", 4 + scale_bits, f"bitsandbytes 4-bit {kind.upper()}, blocks of {BNB_BLOCK}{nested}")


# What vLLM makes of a 16-bit checkpoint at load time. --quantization fp8: FP8 weights with one scale per tensor,
# MoE experts included (Fp8LinearMethod / Fp8MoEMethod with is_checkpoint_fp8_serialized false, fp8.py).
# --quantization bitsandbytes: NF4 with compress_statistics=True, i.e. double quantization
# (BitsAndBytesModelLoader._quantize_loaded_weight, vllm/model_executor/model_loader/bitsandbytes_loader.py).
ONLINE_FORMATS = {
    "bf16": SIXTEEN_BIT_WEIGHTS,
    "fp16": WeightFormat("fp16", 16.0),
    "fp32": WeightFormat("fp32", 32.0),
    "fp8": _fmt("fp8", 8.0, "FP8 per-tensor (online)"),
    "bitsandbytes": _bnb4(True),
}
# Every format at its most common layout, for catalog rows that name a checkpoint_dtype without a config.json.
DEFAULT_FORMATS = {
    **ONLINE_FORMATS,
    "fp8": _fmt("fp8", 8.0, "FP8 per-tensor"),
    "awq": _fmt("awq", 4 + 20 / 128, "AWQ 4-bit, groups of 128", group=128, packed=4),
    "gptq": _fmt("gptq", 4 + 20 / 128, "GPTQ 4-bit, groups of 128", group=128, packed=4),
    "w4a16": _fmt("w4a16", 4 + 16 / 128, "compressed-tensors W4A16 int, groups of 128", group=128),
    "w8a16": _fmt("w8a16", 8.0, "compressed-tensors W8A16 int, per channel"),
    "int8": _fmt("int8", 8.0, "compressed-tensors W8A8 int8 channel"),
    "w4a8": _fmt("w4a8", 4 + 16 / 128, "compressed-tensors W4A8", group=128),
    "nvfp4": _fmt("nvfp4", 4 + 8 / NVFP4_GROUP, f"NVFP4, fp8 scales per {NVFP4_GROUP}", group=NVFP4_GROUP),
    "mxfp4": _fmt("mxfp4", 4 + 8 / MXFP4_GROUP, f"MXFP4 experts, scales per {MXFP4_GROUP}", scope="experts"),
}


def weight_format(top: ConfigValues, text: ConfigValues) -> WeightFormat:
    """The checkpoint's weight format: its torch dtype, or the scheme its quantization_config names."""
    # transformers >= 4.56 writes `dtype` where older configs say `torch_dtype`.
    named = text.text("torch_dtype") or top.text("torch_dtype") or text.text("dtype") or top.text("dtype")
    dtype = _DTYPES.get(named or "bfloat16", "bf16")
    # vLLM reads `quantization_config`, else the older `compression_config` (get_quant_config, weight_utils.py).
    quant = None
    for config in (top, text):
        for key in ("quantization_config", "compression_config"):
            quant = quant or config.nested(key)
    if quant is None or not quant.values:
        return ONLINE_FORMATS[dtype]
    method = (quant.text("quant_method") or _modelopt_method(quant)).lower()
    readers = {
        "fp8": _fp8,
        "fbgemm_fp8": _fp8,
        "awq": _int_quant,
        "gptq": _int_quant,
        "bitsandbytes": _bitsandbytes,
        "mxfp4": _mxfp4,
        "modelopt": _modelopt,
        "modelopt_fp4": _modelopt,
        "compressed-tensors": _compressed_tensors,
    }
    if method in readers:
        return readers[method](quant, method)
    if not method:
        # vLLM takes a quantization_config without quant_method as no quantization (_verify_quantization in
        # vllm/config/model.py): the weights load in the checkpoint's dtype.
        return ONLINE_FORMATS[dtype]
    if method in _UNSIZED:
        raise CatalogError(
            f"{top.where}: {quant.prefix}quant_method {method!r} is not sized by this tool (vLLM 0.13 runs it, but "
            "its weight layout is not modelled); use a bf16, fp8, awq, gptq, compressed-tensors, modelopt "
            "(FP8/NVFP4), mxfp4 or bitsandbytes checkpoint"
        )
    raise CatalogError(
        f"{top.where}: {quant.prefix}quant_method {method!r} is not a quantization method vLLM 0.13 has "
        "(QUANTIZATION_METHODS in vllm/model_executor/layers/quantization/__init__.py); use the model's original "
        "config.json, or a checkpoint in a scheme vLLM runs"
    )


def with_hf_quant_config(cfg: dict[str, Any], config_path: Path) -> dict[str, Any]:
    """The config with ModelOpt's hf_quant_config.json from beside it as its quantization_config, as vLLM reads a
    checkpoint of ModelOpt 0.29 and before (get_config in vllm/transformers_utils/config.py); unchanged when the
    config has its own or the file is absent or unreadable (vLLM then fails on it, not this tool)."""
    if cfg.get("quantization_config") is not None:
        return cfg
    try:
        sidecar = json.loads((config_path.parent / HF_QUANT_CONFIG).read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return cfg
    return {**cfg, "quantization_config": sidecar} if isinstance(sidecar, dict) else cfg


def _modelopt_method(quant: ConfigValues) -> str:
    """The quant_method vLLM gives a ModelOpt config without one: producer.name modelopt and quantization.quant_algo
    FP8 -> modelopt, NVFP4 -> modelopt_fp4 (ModelConfig._parse_quant_hf_config, vllm/config/model.py)."""
    producer = quant.values.get("producer")
    if not isinstance(producer, dict) or producer.get("name") != "modelopt":
        return ""
    inner = quant.nested("quantization")
    algo = inner.text("quant_algo") if inner is not None else None
    return {"FP8": "modelopt", "NVFP4": "modelopt_fp4"}.get(algo or "", "modelopt")


def _skipped(quant: ConfigValues, *keys: str) -> tuple[str, ...]:
    """Modules the scheme leaves unquantized, under the key each method uses; a non-list is refused."""
    names: list[str] = []
    for key in keys:
        names += quant.texts(key) or []
    return tuple(names)


def _fp8(quant: ConfigValues, method: str) -> WeightFormat:
    """FP8 weights (Fp8Config.from_config, fp8.py): one fp32 scale per tensor, or per weight_block_size block."""
    skipped = _skipped(quant, "ignored_layers", "modules_to_not_convert")
    block = quant.wholes("weight_block_size")
    if block is None:
        return _fmt("fp8", 8.0, "FP8 per-tensor", skipped=skipped)
    if len(block) != 2:
        quant.refuse("weight_block_size", f"{block} is not [block_n, block_k] (vLLM reads two sizes)")
    block_n, block_k = block
    return _fmt(
        "fp8", 8 + 32 / (block_n * block_k), f"FP8 blocks of {block_n}x{block_k}", block=block_k, skipped=skipped
    )


def _int_quant(quant: ConfigValues, method: str) -> WeightFormat:
    """AWQ/GPTQ under the keys vLLM reads (AWQConfig, GPTQConfig.from_config): packed int weights, one 16-bit scale
    and one packed zero point per group and output column; group -1 is one group per input row."""
    bits_key = "w_bit" if method == "awq" and quant.present("w_bit") else "bits"
    group_key = "q_group_size" if method == "awq" and quant.present("q_group_size") else "group_size"
    bits = quant.whole(bits_key) or 4
    if bits not in INT_BITS[method]:
        quant.refuse(bits_key, f"{bits}-bit {method.upper()} has no vLLM kernel (it runs {INT_BITS[method]} bits)")
    group = quant.whole(group_key, minimum=-1) or 0
    overhead = (16 + bits) / group if group > 0 else 0.0
    shown = f"groups of {group}" if group > 0 else "per channel"
    skipped = _skipped(quant, "modules_to_not_convert")
    detail = f"{method.upper()} {bits}-bit, {shown}"
    return _fmt(method, bits + overhead, detail, group=group, skipped=skipped, packed=bits)


def _bitsandbytes(quant: ConfigValues, method: str) -> WeightFormat:
    """BitsAndBytesConfig.from_config (bitsandbytes.py): 8-bit LLM.int8 rows (int8 + one fp32 scale per row), or
    4-bit NF4/FP4 blocks of 64."""
    skipped = _skipped(quant, "llm_int8_skip_modules")
    storage = quant.text("bnb_4bit_quant_storage") or "uint8"
    if storage != "uint8":
        quant.refuse("bnb_4bit_quant_storage", f"{storage!r}: vLLM 0.13 loads only uint8 storage")
    if quant.flag("load_in_8bit"):
        return _fmt("bitsandbytes", 8.0, "bitsandbytes 8-bit (LLM.int8)", skipped=skipped)
    kind = quant.text("bnb_4bit_quant_type") or "fp4"  # vLLM's default when the key is absent
    if kind not in ("nf4", "fp4"):
        quant.refuse("bnb_4bit_quant_type", f"{kind!r} is not nf4 or fp4")
    fmt = _bnb4(bool(quant.flag("bnb_4bit_use_double_quant")), kind)
    return _fmt(fmt.method, fmt.bits, fmt.detail, skipped=skipped)


def _mxfp4(quant: ConfigValues, method: str) -> WeightFormat:
    """MXFP4 (Mxfp4Config, mxfp4.py): e2m1 experts with an 8-bit scale per 32; vLLM 0.13 has no MXFP4 linear method,
    so every linear layer outside the MoE experts stays 16-bit (gpt-oss lists them in modules_to_not_convert)."""
    return _fmt(
        "mxfp4",
        4 + 8 / MXFP4_GROUP,
        f"MXFP4 experts, scales per {MXFP4_GROUP}",
        scope="experts",
        skipped=_skipped(quant, "modules_to_not_convert"),
    )


def _modelopt(quant: ConfigValues, method: str) -> WeightFormat:
    """NVIDIA ModelOpt checkpoints (ModelOptQuantConfigBase.from_config, modelopt.py): `quant_algo` FP8 or NVFP4,
    at the top of quantization_config or under its `quantization` object (hf_quant_config.json layout)."""
    inner = quant.nested("quantization")
    algo_from = inner if inner is not None else quant
    algo = algo_from.text("quant_algo")
    if not algo:
        algo_from.refuse("quant_algo", "missing; vLLM reads FP8 or NVFP4 there")
    skipped = _skipped(inner, "exclude_modules") if inner is not None else _skipped(quant, "ignore")
    if algo == "FP8" and method == "modelopt":
        return _fmt("fp8", 8.0, "ModelOpt FP8 per-tensor", skipped=skipped)
    if "FP4" in algo.upper():
        group = algo_from.whole("group_size") or NVFP4_GROUP
        return _nvfp4(group, "ModelOpt", skipped)
    algo_from.refuse("quant_algo", f"{algo!r}: vLLM 0.13's ModelOpt support runs FP8 and NVFP4 only")


def _nvfp4(group: int, producer: str, skipped: tuple[str, ...]) -> WeightFormat:
    # e2m1 weights, one fp8 scale per group, one fp32 global scale per tensor (negligible).
    return _fmt("nvfp4", 4 + 8 / group, f"{producer} NVFP4, fp8 scales per {group}", group=group, skipped=skipped)


def _compressed_tensors(quant: ConfigValues, method: str) -> WeightFormat:
    """compressed-tensors (CompressedTensorsConfig, compressed_tensors.py): the scheme of the group that targets
    the linear layers, matched in the order _get_scheme_from_parts tries them; `ignore` stays 16-bit."""
    groups = quant.nested("config_groups")
    if groups is None or not groups.values:
        quant.refuse("config_groups", "missing; vLLM reads the weight scheme from it")
    names = list(groups.values)
    linear = [n for n in names if "Linear" in ((groups.nested(n) or groups).texts("targets") or [])]
    group = groups.nested((linear or names)[0])
    assert group is not None  # nested() refuses a non-object
    weights = group.nested("weights")
    if weights is None:
        group.refuse("weights", "missing; a compressed-tensors scheme quantizes the weights")
    fmt = group.text("format") or quant.text("format") or ""
    return _ct_scheme(weights, group.nested("input_activations"), fmt, _skipped(quant, "ignore"))


def _ct_scheme(w: ConfigValues, act: ConfigValues | None, fmt: str, skipped: tuple[str, ...]) -> WeightFormat:
    bits = w.whole("num_bits") or 8
    kind = w.text("type") or "int"
    strategy = w.text("strategy") or "tensor"
    group = w.whole("group_size", minimum=-1) or 0
    symmetric = w.flag("symmetric") is not False
    if kind == "float" and bits == 4 and strategy == "tensor_group" and group == NVFP4_GROUP:
        return _nvfp4(group, "compressed-tensors", skipped)
    if act is None and strategy in ("channel", "group") and fmt == "pack-quantized" and bits in WNA16_BITS:
        overhead = (16 + (0 if symmetric else bits)) / group if strategy == "group" and group > 0 else 0.0
        shown = f"groups of {group}" if strategy == "group" and group > 0 else "per channel"
        return _fmt(
            f"w{bits}a16",
            bits + overhead,
            f"compressed-tensors W{bits}A16 int, {shown}",
            group=group if strategy == "group" else 0,
            skipped=skipped,
        )
    if kind == "float" and bits == 8 and strategy in ("tensor", "channel", "block"):
        block = w.wholes("block_structure") or [0, 0]
        if len(block) != 2:
            w.refuse("block_structure", f"{block} is not [block_n, block_k]")
        bits_fp8 = 8 + 32 / (block[0] * block[1]) if block[0] else 8.0
        return _fmt("fp8", bits_fp8, f"compressed-tensors FP8 {strategy}", block=block[1], skipped=skipped)
    act_bits = act.whole("num_bits") if act is not None else None
    if kind == "int" and bits == 8 and act_bits == 8 and strategy in ("tensor", "channel"):
        return _fmt("int8", 8.0, f"compressed-tensors W8A8 int8 {strategy}", skipped=skipped)
    if bits == 4 and act_bits == 8 and strategy in ("group", "channel"):
        overhead = 16 / group if strategy == "group" and group > 0 else 0.0
        return _fmt("w4a8", 4 + overhead, "compressed-tensors W4A8", group=max(group, 0), skipped=skipped)
    raise CatalogError(
        f"{w.where}: {w.prefix[: -len('weights.')]}: compressed-tensors scheme {kind} {bits}-bit {strategy} "
        f"(format {fmt or 'unstated'}) is not one vLLM 0.13 runs (_get_scheme_from_parts in "
        "compressed_tensors.py); use a W4A16/W8A16 pack-quantized, FP8, W8A8 int8 or NVFP4 checkpoint"
    )
