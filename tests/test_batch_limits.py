"""Batch limits are plan decisions: maxNumSeqs and maxNumBatchedTokens in the spec, vLLM 0.13's defaults for the GPU
otherwise, lowered only when nothing fits at them, always passed to vLLM, and their memory shown in the plan."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.catalog import load_gpu_catalog, load_model_catalog
from components.planning.sizing import size_model
from components.planning.types import GpuShape, Sizing, SizingError, SizingRequest
from components.spec import SpecError, load_cluster_spec
from components.stacks import plan_for
from components.tools.plan_text import format_plan, format_sizing
from testbed.stacks import one_pool_spec

GPUS = load_gpu_catalog()
MODELS = load_model_catalog()
BASE = one_pool_spec([{"name": "qwen-32b", "model": "Qwen/Qwen2.5-32B-Instruct", "pool": "h100", "maxModelLen": 32768}])


def config(**fields: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(BASE)
    cfg["models"][0].update(fields)
    return cfg


def size(model: str, gpu: str, per_node: int, max_nodes: int = 1, **kw: Any) -> Sizing:
    return size_model(SizingRequest(arch=MODELS[model], **kw), GpuShape.of(GPUS[gpu], per_node), max_nodes)


def flag(args: list[str], name: str) -> int:
    return int(args[args.index(name) + 1])


# ---------------------------------------------------------------- the spec


def test_spec_takes_both_limits_and_the_plan_passes_them_to_vllm() -> None:
    plan = plan_for(load_cluster_spec(config(maxNumSeqs=128, maxNumBatchedTokens=4096)))
    m = plan.models[0]
    assert (m.max_num_seqs, m.max_num_batched_tokens) == (128, 4096)
    assert (flag(m.vllm_args, "--max-num-seqs"), flag(m.vllm_args, "--max-num-batched-tokens")) == (128, 4096)
    assert any("maxNumSeqs 128, maxNumBatchedTokens 4096 as asked" in r for r in m.reasons)


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"maxNumSeqs": 0}, "models[0].maxNumSeqs"),
        ({"maxNumSeqs": 65537}, "models[0].maxNumSeqs"),
        ({"maxNumBatchedTokens": 0}, "models[0].maxNumBatchedTokens"),
        ({"maxNumBatchedTokens": 2**24 + 1}, "models[0].maxNumBatchedTokens"),
    ],
)
def test_limits_out_of_range_name_the_field(fields: dict[str, int], path: str) -> None:
    with pytest.raises(SpecError) as info:
        load_cluster_spec(config(**fields))
    assert any(line.startswith(path) for line in info.value.errors), info.value.errors


@pytest.mark.parametrize(
    "extra",
    [["--max-num-seqs", "64"], ["--max_num_seqs=64"], ["--max-num-batched-tokens", "4096"]],
)
def test_limits_in_extra_args_are_refused_with_the_field_to_use(extra: list[str]) -> None:
    with pytest.raises(SizingError, match=r"contradicts the plan, which sets it; set maxNum(Seqs|BatchedTokens)"):
        plan_for(load_cluster_spec(config(extraArgs=extra)))


def test_fewer_batched_tokens_than_seqs_is_refused_as_vllm_would() -> None:
    with pytest.raises(SizingError, match=r"models\[0\]\.maxNumBatchedTokens: .*at least 512"):
        plan_for(load_cluster_spec(config(maxNumSeqs=512, maxNumBatchedTokens=256)))


def test_seqs_past_the_default_batched_tokens_asks_for_more_tokens() -> None:
    # vLLM's small-GPU default of 2048 batched tokens is less than 4096 sequences: vLLM refuses that pair.
    with pytest.raises(SizingError, match=r"maxNumSeqs: .*set maxNumBatchedTokens to at least 4096"):
        size("Qwen/Qwen2.5-Coder-7B-Instruct", "L40S-48GB", 1, max_num_seqs=4096)


def test_a_pooling_model_needs_a_whole_request_in_a_batch() -> None:
    with pytest.raises(SizingError, match=r"without chunked prefill.*at least 8192"):
        size("BAAI/bge-m3", "L4-24GB", 1, max_num_batched_tokens=512)


# ---------------------------------------------------------------- the plan's choice


@pytest.mark.parametrize(
    ("gpu", "defaults"),
    [("H100-SXM-80GB", (1024, 8192)), ("A100-SXM-80GB", (256, 2048)), ("L40S-48GB", (256, 2048))],
)
def test_defaults_are_vllms_for_the_gpu_and_always_passed(gpu: str, defaults: tuple[int, int]) -> None:
    s = size("Qwen/Qwen2.5-Coder-7B-Instruct", gpu, 1, max_model_len=16384)
    assert (s.max_num_seqs, s.max_num_batched_tokens) == defaults
    assert (flag(s.vllm_args, "--max-num-seqs"), flag(s.vllm_args, "--max-num-batched-tokens")) == defaults
    assert any(f"vLLM {s.vllm_version}'s defaults on {gpu}" in r for r in s.reasons)


def test_batched_tokens_are_capped_at_seqs_times_context_as_vllm_does() -> None:
    s = size("Qwen/Qwen2.5-Coder-7B-Instruct", "H100-SXM-80GB", 1, max_model_len=4096, max_num_seqs=1)
    assert (s.max_num_seqs, s.max_num_batched_tokens) == (1, 4096)


def test_a_pooling_model_batches_a_whole_request() -> None:
    s = size("BAAI/bge-m3", "L4-24GB", 1)
    assert s.max_num_batched_tokens >= s.max_model_len
    assert s.max_num_seqs == 256


def test_limits_are_lowered_where_the_defaults_need_more_gpus() -> None:
    # Two H100s hold Qwen3-32B at vLLM's default batch; one holds it with a smaller batch. The fewest GPUs win, so
    # a free plan takes one, whether the pool has one GPU or eight; the sampler's cost and the reason are stated.
    two = size("Qwen/Qwen3-32B", "H100-SXM-80GB", 8, max_model_len=32000, max_num_seqs=1024)
    assert (two.gpus_per_replica, two.max_num_seqs) == (2, 1024)
    assert size("Qwen/Qwen3-32B", "H100-SXM-80GB", 8, max_model_len=32000).gpus_per_replica == 1
    one = size("Qwen/Qwen3-32B", "H100-SXM-80GB", 1)
    assert one.fits and one.gpus_per_replica == 1
    assert one.max_num_seqs < 1024 and one.max_num_batched_tokens == 2048
    assert flag(one.vllm_args, "--max-num-seqs") == one.max_num_seqs
    reason = next(r for r in one.reasons if r.startswith(f"max_num_seqs {one.max_num_seqs}"))
    assert "lowered from 1024 / 8192" in reason and "leaves too little for the KV cache" in reason
    assert f"sampler: {one.max_num_seqs} x 151936 fp32 logits" in reason
    assert one.memory.activation < two.memory.activation


def test_lowering_keeps_the_largest_batch_that_fits() -> None:
    one = size("Qwen/Qwen3-32B", "H100-SXM-80GB", 1)
    bigger = size("Qwen/Qwen3-32B", "H100-SXM-80GB", 1, max_num_seqs=one.max_num_seqs * 2)
    assert not bigger.fits


def test_a_user_value_is_never_lowered_and_the_refusal_says_what_would_fit() -> None:
    s = size("Qwen/Qwen3-32B", "H100-SXM-80GB", 1, max_num_seqs=1024)
    assert not s.fits and s.max_num_seqs == 1024
    assert "maxNumSeqs left to the plan, which lowers it (1 GPU, TP 1 x PP 1)" in s.reasons[0]


def test_lowering_stops_at_min_concurrency() -> None:
    s = size("Qwen/Qwen3-32B", "H100-SXM-80GB", 1, max_model_len=4096, min_concurrency=600)
    assert s.max_num_seqs >= 600 or not s.fits


def test_size_and_plan_show_the_limits_and_their_memory() -> None:
    s = size("Qwen/Qwen3-32B", "H100-SXM-80GB", 1)
    text = format_sizing(s, GpuShape.of(GPUS["H100-SXM-80GB"], 1), wide=True)
    assert f"batch limits: max_num_seqs {s.max_num_seqs}, max_num_batched_tokens 2048" in text
    plan = plan_for(load_cluster_spec(config(maxNumSeqs=128)))
    shown = format_plan(plan, "test", markdown=False, wide=True)
    assert "max_num_seqs 128, max_num_batched_tokens 8192: maxNumSeqs 128 as asked, the rest vLLM" in shown
    assert "activation" in shown and "GiB per GPU (sampler: 128 x 152064 fp32 logits" in shown


def test_max_concurrency_never_exceeds_max_num_seqs() -> None:
    s = size("Qwen/Qwen2.5-Coder-7B-Instruct", "H100-SXM-80GB", 1, max_model_len=4096, max_num_seqs=4)
    assert s.kv_cache_tokens is not None and s.kv_cache_tokens / 4096 > 4
    assert s.max_concurrency == 4.0
