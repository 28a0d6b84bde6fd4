"""Weights from the checkpoint when its size is known (metadata.total_size of model.safetensors.index.json: a catalog
row's sourced `checkpoint_bytes`, or the index beside a configPath), the config's estimate otherwise (and the plan
says so), and the stack's `quantization` as online quantization only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from components.catalog import CATALOG_DIR, arch_from_hf_config, load_gpu_catalog, load_hf_config, load_model_catalog
from components.catalog.quantization import DEFAULT_FORMATS
from components.catalog.weights import INDEX_FILE, weight_split
from components.planning.memory import GIB, weight_bytes
from components.planning.sizing import size_model
from components.planning.types import GpuShape, SizingError, SizingRequest
from components.spec import SpecError, load_cluster_spec
from components.stacks import plan_for
from testbed.bad_input import one_model_stack

FIXTURES = Path(__file__).parent / "catalog" / "configs"
BNB_8BIT = FIXTURES / "jeevanchaps" / "Meta-Llama3.1-8B-Instruct-assessment"
LLAMA_8B = CATALOG_DIR / "configs" / "meta-llama" / "Llama-3.1-8B-Instruct" / "config.json"
SHAPE = GpuShape.of(load_gpu_catalog()["H100-SXM-80GB"], 8)
ESTIMATED = "parameter count estimated from the config"


def sized(arch: Any, **asked: Any) -> Any:
    return size_model(SizingRequest(arch=arch, **asked), SHAPE, max_nodes=1)


def test_a_catalog_row_with_checkpoint_bytes_sizes_weights_from_them() -> None:
    arch = load_model_catalog()["meta-llama/Llama-3.1-8B-Instruct"]
    assert arch.checkpoint_bytes == 16060522496 and "thamada/modelQuery" in arch.checkpoint_bytes_source
    assert weight_bytes(arch, "bf16", 1, 1) == (16060522496, 16060522496)
    # Split over TP as the estimate is: each rank holds 1/TP of every part.
    assert weight_bytes(arch, "bf16", 2, 1)[0] == pytest.approx(16060522496 / 2)
    # PP 2: 16 layers on each stage; the heavier edge (embedding or lm_head, equal here) on the stage.
    split = weight_split(arch, arch.weights)
    layers = 16060522496 - split.embed - split.head
    assert weight_bytes(arch, "bf16", 1, 2)[0] == pytest.approx(layers / 2 + split.embed)
    assert sized(arch).weights_total_gib == round(16060522496 / GIB, 2)


def test_the_index_beside_a_config_path_gives_the_weights(tmp_path: Path) -> None:
    arch = load_hf_config(BNB_8BIT / "config.json", "jeevanchaps/Meta-Llama3.1-8B-Instruct-assessment")
    assert arch.checkpoint_bytes == 9086705888
    assert arch.checkpoint_bytes_source == str(BNB_8BIT / INDEX_FILE)
    sizing = sized(arch)
    assert sizing.weights_total_gib == round(9086705888 / GIB, 2)
    assert not any(ESTIMATED in w for w in sizing.warnings)
    # The same config without its index: estimated from the config, and the plan says so.
    shutil.copy(BNB_8BIT / "config.json", tmp_path / "config.json")
    bare = load_hf_config(tmp_path / "config.json", "acme/bnb")
    assert bare.checkpoint_bytes == 0 and bare.params_estimated
    assert any(ESTIMATED in w for w in sized(bare).warnings)


def index_beside(tmp_path: Path, config: Path, total_size: Any) -> Path:
    shutil.copy(config, tmp_path / "config.json")
    (tmp_path / INDEX_FILE).write_text(json.dumps({"metadata": {"total_size": total_size}, "weight_map": {}}))
    return tmp_path / "config.json"


def test_a_16_bit_index_gives_the_exact_parameter_count_and_online_quantization_uses_it(tmp_path: Path) -> None:
    config = index_beside(tmp_path, LLAMA_8B, 16060522496)
    arch = load_hf_config(config, "acme/llama")
    assert (arch.params_b, arch.params_estimated) == (8.03, False)  # 16060522496 bytes / 2 per bf16 parameter
    fp8 = weight_bytes(arch, "fp8", 1, 1)[1]
    assert fp8 == pytest.approx(weight_split(arch, DEFAULT_FORMATS["fp8"], 16060522496 / 2).total)
    # A published count the user gives is kept; the weights still come from the file.
    given = load_hf_config(config, "acme/llama", params_b=8.0)
    assert given.params_b == 8.0 and weight_bytes(given, "bf16", 1, 1)[1] == 16060522496


@pytest.mark.parametrize("total_size", ["16060522496", -1, 0, True, None, 1.5])
def test_an_unusable_index_is_ignored(tmp_path: Path, total_size: Any) -> None:
    arch = load_hf_config(index_beside(tmp_path, LLAMA_8B, total_size), "acme/llama")
    assert arch.checkpoint_bytes == 0 and arch.params_estimated


def awq_config(tmp_path: Path) -> Path:
    cfg = json.loads(LLAMA_8B.read_text())
    cfg["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def plan_error(config: Path, quantization: str) -> str:
    raw = one_model_stack(config)
    raw["models"][0]["quantization"] = quantization
    with pytest.raises(SpecError) as raised:
        plan_for(load_cluster_spec(raw))
    (line,) = raised.value.errors
    return str(line)


def test_a_prequantized_checkpoint_refuses_another_quantization_with_the_fix(tmp_path: Path) -> None:
    assert plan_error(awq_config(tmp_path), "fp8") == (
        "models[0].quantization: cannot turn the awq checkpoint of acme/outside into fp8 at load time: it is already "
        "quantized (AWQ 4-bit, groups of 128) and vLLM runs it as its quantization_config says; set quantization: "
        "auto, or name the model's 16-bit checkpoint in `model` to quantize it online with fp8"
    )
    assert plan_error(awq_config(tmp_path), "bf16").startswith(
        "models[0].quantization: acme/outside is a awq checkpoint; serve it as `auto` or use its 16-bit checkpoint id"
    )


def test_a_16_bit_checkpoint_quantizes_online_only(tmp_path: Path) -> None:
    shutil.copy(LLAMA_8B, tmp_path / "config.json")
    assert plan_error(tmp_path / "config.json", "awq") == (
        "models[0].quantization: cannot turn the bf16 checkpoint of acme/outside into awq at load time (vLLM "
        "quantizes online only to fp8 or bitsandbytes); use a pre-quantized AWQ checkpoint id in `model` with "
        "quantization: auto, or quantize online with fp8 or bitsandbytes"
    )
    arch = load_hf_config(LLAMA_8B, "meta-llama/Llama-3.1-8B-Instruct", 8.03)
    assert "--quantization" in (args := sized(arch, quantization="bitsandbytes").vllm_args)
    assert args[args.index("--quantization") + 1] == "bitsandbytes"


def test_naming_the_checkpoints_own_method_runs_it_as_auto(tmp_path: Path) -> None:
    arch = load_hf_config(awq_config(tmp_path), "acme/awq")
    auto, named = sized(arch), sized(arch, quantization="awq")
    assert auto.weight_dtype == named.weight_dtype == "awq"
    assert auto.vllm_args == named.vllm_args and "--quantization" not in auto.vllm_args
    w4a16 = arch_from_hf_config(
        {
            **json.loads(LLAMA_8B.read_text()),
            "quantization_config": {
                "quant_method": "compressed-tensors",
                "format": "pack-quantized",
                "config_groups": {
                    "group_0": {
                        "targets": ["Linear"],
                        "weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128},
                    }
                },
            },
        },
        "acme/w4a16",
    )
    with pytest.raises(SizingError, match="cannot turn the w4a16 checkpoint of acme/w4a16 into gptq at load time"):
        sized(w4a16, quantization="gptq")
