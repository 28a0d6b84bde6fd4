"""The task and the checkpoint's quantization as vLLM 0.13 reads them from a model's files: decoder embedders
(architecture, sentence-transformers modules.json / 1_Pooling), the user's task override, MXFP4 checkpoints, and
AWQ/GPTQ bits and group sizes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from components.catalog import (
    CATALOG_DIR,
    CatalogError,
    ModelArch,
    arch_from_hf_config,
    load_gpu_catalog,
    load_hf_config,
)
from components.planning.memory import (
    activation_bytes,
    bytes_per_param,
    kv_bytes_per_token,
    tp_problem,
)
from components.planning.sizing import size_model
from components.planning.types import GpuShape, SizingError, SizingRequest
from components.tools.cli import main

FIXTURES = Path(__file__).with_name("configs")
EMBEDDER_DIR = FIXTURES / "Qwen" / "Qwen3-Embedding-0.6B"
GPT_OSS = CATALOG_DIR / "configs" / "openai" / "gpt-oss-120b" / "config.json"
SHAPE = GpuShape.of(load_gpu_catalog()["H100-SXM-80GB"], 8)


def embedder_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads((EMBEDDER_DIR / "config.json").read_text())
    return config


def size(arch: ModelArch, **asked: Any) -> list[str]:
    return size_model(SizingRequest(arch=arch, **asked), SHAPE, max_nodes=1).vllm_args


def test_sentence_transformers_decoder_is_an_embedder_on_the_pooling_runner() -> None:
    arch = load_hf_config(EMBEDDER_DIR / "config.json", "Qwen/Qwen3-Embedding-0.6B")
    assert (arch.task, arch.architecture, arch.generative, arch.pooling_type) == (
        "embed",
        "Qwen3ForCausalLM",
        True,
        "LAST",
    )
    args = size(arch)
    assert args[args.index("--runner") :][:4] == ["--runner", "pooling", "--convert", "embed"]
    # A decoder keeps its KV cache when it pools; it samples nothing, and it prefills in chunks (LAST pooling).
    assert kv_bytes_per_token(arch, 1, 1, "auto") == 2 * 28 * 8 * 128 * 2
    assert activation_bytes(arch, 1, 1024, 8192) < 0.5 * 2**30
    assert arch.chunked_prefill
    reasons = size_model(SizingRequest(arch=arch), SHAPE, max_nodes=1).reasons
    assert (
        "task embed: its sentence-transformers modules.json (LAST pooling); --runner pooling --convert embed: "
        "no sampler, a KV cache (causal decoder), chunked prefill"
    ) in reasons


def test_the_same_config_without_sentence_transformers_files_generates(tmp_path: Path) -> None:
    shutil.copy(EMBEDDER_DIR / "config.json", tmp_path / "config.json")
    arch = load_hf_config(tmp_path / "config.json", "acme/qwen3")
    assert (arch.task, arch.pooling_type) == ("generate", "")
    assert "--runner" not in size(arch)
    # The user may ask for embeddings: vLLM converts the causal LM (--convert embed).
    args = size(arch, task="embed")
    assert args[args.index("--runner") :][:4] == ["--runner", "pooling", "--convert", "embed"]


def test_mean_pooling_decoder_prefills_a_whole_request_per_batch(tmp_path: Path) -> None:
    shutil.copytree(EMBEDDER_DIR, tmp_path / "m")
    (tmp_path / "m" / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_mean_tokens": True, "pooling_mode_lasttoken": False})
    )
    arch = load_hf_config(tmp_path / "m" / "config.json", "acme/mean")
    assert (arch.pooling_type, arch.chunked_prefill) == ("MEAN", False)
    sizing = size_model(SizingRequest(arch=arch), SHAPE, max_nodes=1)
    assert sizing.max_num_batched_tokens >= sizing.max_model_len


def test_unreadable_sentence_transformers_files_are_ignored_as_vllm_ignores_them(tmp_path: Path) -> None:
    shutil.copy(EMBEDDER_DIR / "config.json", tmp_path / "config.json")
    (tmp_path / "modules.json").write_bytes(b"\xff not json")
    assert load_hf_config(tmp_path / "config.json", "acme/q").task == "generate"
    (tmp_path / "modules.json").write_text(json.dumps([{"type": "sentence_transformers.models.Pooling"}]))
    assert load_hf_config(tmp_path / "config.json", "acme/q").pooling_type == "LAST"


@pytest.mark.parametrize(
    ("architecture", "task", "generative"),
    [
        ("Qwen3Model", "embed", False),  # vLLM's "*Model" default: pooling runner, embed conversion
        ("MistralModel", "embed", False),
        ("Qwen3ForSequenceClassification", "score", False),
        ("GritLM", "embed", False),
        ("ChatGLMModel", "generate", True),  # registered generative, whatever its suffix says
        ("Qwen3ForCausalLM", "generate", True),
        ("GPT2LMHeadModel", "generate", True),
    ],
)
def test_task_follows_vllms_architecture_defaults(architecture: str, task: str, generative: bool) -> None:
    arch = arch_from_hf_config({**embedder_config(), "architectures": [architecture]}, "acme/m")
    assert (arch.task, arch.generative) == (task, generative)
    if not generative:
        args = size(arch)
        assert "--convert" not in args and args[args.index("--runner") + 1] == "pooling"


def test_pooling_sentence_transformers_checkpoint_may_be_asked_to_generate() -> None:
    arch = load_hf_config(EMBEDDER_DIR / "config.json", "Qwen/Qwen3-Embedding-0.6B")
    args = size(arch, task="generate")
    assert args[args.index("--runner") + 1] == "generate"  # modules.json would otherwise pick the pooling runner


def test_tasks_no_conversion_reaches_are_refused_with_the_reason() -> None:
    embedder = load_hf_config(EMBEDDER_DIR / "config.json", "Qwen/Qwen3-Embedding-0.6B")
    with pytest.raises(
        SizingError, match=r"model.task: .*\(Qwen3ForCausalLM\) has no classifier head.*set task: embed,"
    ):
        size(embedder, task="score")
    pooling = arch_from_hf_config({**embedder_config(), "architectures": ["Qwen3Model"]}, "acme/m")
    with pytest.raises(
        SizingError, match=r"\(Qwen3Model\) has no language-model head to generate with; set task: embed"
    ):
        size(pooling, task="generate")
    assert "--runner" in size(pooling, task="score")  # a pooling model may score or embed


def test_mxfp4_checkpoint_is_sized_as_mxfp4() -> None:
    arch = load_hf_config(GPT_OSS, "openai/gpt-oss-120b", 116.83)
    assert arch.checkpoint_dtype == "mxfp4"
    auto = size_model(SizingRequest(arch=arch), SHAPE, max_nodes=1)
    named = size_model(SizingRequest(arch=arch, quantization="mxfp4"), SHAPE, max_nodes=1)
    assert auto.weight_dtype == named.weight_dtype == "mxfp4"
    assert auto.vllm_args == named.vllm_args and "--quantization" not in auto.vllm_args


@pytest.mark.parametrize(
    ("asked", "reason"),
    [
        ("fp8", "cannot turn the mxfp4 checkpoint of openai/gpt-oss-120b into fp8 at load time"),
        ("bf16", "openai/gpt-oss-120b is a mxfp4 checkpoint; serve it as `auto`"),
    ],
)
def test_a_quantization_the_mxfp4_checkpoint_is_not_is_refused(asked: str, reason: str) -> None:
    arch = load_hf_config(GPT_OSS, "openai/gpt-oss-120b", 116.83)
    with pytest.raises(SizingError, match=reason):
        size_model(SizingRequest(arch=arch, quantization=asked), SHAPE, max_nodes=1)


def test_mxfp4_asked_of_a_16_bit_checkpoint_points_to_a_pre_quantized_one() -> None:
    arch = load_hf_config(EMBEDDER_DIR / "config.json", "acme/e")
    with pytest.raises(SizingError, match="use a pre-quantized MXFP4 checkpoint id"):
        size_model(SizingRequest(arch=arch, quantization="mxfp4"), SHAPE, max_nodes=1)


def test_size_cli_sizes_gpt_oss_from_its_config(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["size", "--config", str(GPT_OSS), "--gpu", "H100-SXM-80GB", "--quantization", "mxfp4", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["fits"] and "--quantization" not in out["vllm_args"]


def int_quantized(**quantization: Any) -> ModelArch:
    return arch_from_hf_config({**embedder_config(), "quantization_config": quantization}, "acme/q")


def test_awq_and_gptq_bits_and_group_size_are_read_as_vllm_reads_them() -> None:
    awq = int_quantized(quant_method="awq", w_bit=4, q_group_size=128, zero_point=True)
    gptq = int_quantized(quant_method="gptq", bits=8, group_size=-1, desc_act=False)
    assert (awq.checkpoint_dtype, awq.quant_bits, awq.quant_group) == ("awq", 4, 128)
    assert (gptq.checkpoint_dtype, gptq.quant_bits, gptq.quant_group) == ("gptq", 8, -1)
    # Packed bits plus one 16-bit scale and one packed zero point per group of 128; per channel, 8 bits alone.
    assert bytes_per_param(awq, "awq") == pytest.approx((4 + (16 + 4) / 128) / 8)
    assert bytes_per_param(gptq, "gptq") == pytest.approx(8 / 8)


@pytest.mark.parametrize(
    ("quantization", "key"),
    [
        ({"quant_method": "awq", "bits": 8, "group_size": 128}, "quantization_config.bits: 8-bit AWQ has no vLLM"),
        ({"quant_method": "gptq", "bits": 5, "group_size": 128}, "quantization_config.bits: 5-bit GPTQ"),
        ({"quant_method": "gptq", "bits": 4, "group_size": -2}, "quantization_config.group_size: -2 is out of range"),
    ],
)
def test_int_quantization_vllm_cannot_run_is_refused_naming_the_key(quantization: dict[str, Any], key: str) -> None:
    with pytest.raises(CatalogError, match=key):
        int_quantized(**quantization)


def test_tp_keeps_whole_quantization_groups_on_row_parallel_layers() -> None:
    arch = int_quantized(quant_method="gptq", bits=4, group_size=256)
    # down_proj's input 3072 / 8 = 384 is not a multiple of 256; / 4 = 768 is (o_proj's 2048 / 4 = 512 too).
    assert tp_problem(arch, 8, "gptq") == "3072/8 is not a multiple of the GPTQ group 256 of acme/q"
    assert tp_problem(arch, 4, "gptq") is None
    assert tp_problem(int_quantized(quant_method="gptq", bits=4, group_size=-1), 8, "gptq") is None


def test_every_fixture_file_is_the_byte_copy_its_source_line_names() -> None:
    """Each file under tests/catalog/configs has a SOURCES.txt line whose git blob hash it matches."""
    lines = [line for line in (FIXTURES / "SOURCES.txt").read_text().splitlines() if not line.startswith("#")]
    sources = {line.split(" <- ")[0]: line for line in lines}
    files = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*") if p.is_file() and p.name != "SOURCES.txt"}
    assert files == set(sources)
    for name, line in sources.items():
        data = (FIXTURES / name).read_bytes()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        assert f"git blob {blob}" in line, name
