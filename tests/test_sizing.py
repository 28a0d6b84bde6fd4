"""Sizing against published reference cases, vLLM's measured memory split, and properties."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from components.catalog import CatalogError, ModelArch, load_gpu_catalog, load_model_catalog
from components.planning.memory import GIB, kv_bytes_per_token, tp_problem, valid_tps, weight_bytes
from components.planning.pools import _Pool, _take
from components.planning.sizing import size_model
from components.planning.types import GpuShape, Sizing, SizingError, SizingRequest
from components.spec import load_cluster_spec
from components.stacks import plan_for
from testbed.stacks import one_pool_spec

GPUS = load_gpu_catalog()
MODELS = load_model_catalog()
PROJECT = Path(__file__).resolve().parent.parent


def node(gpu: str, per_node: int) -> GpuShape:
    return GpuShape.of(GPUS[gpu], per_node)


def custom(memory_gib: float, per_node: int = 1, domain: int = 1, p2p: bool = True) -> GpuShape:
    return GpuShape(
        gpu_id=f"custom-{memory_gib:g}",
        gpu_name="custom",
        memory_mib=int(memory_gib * 1024),
        gpus_per_node=per_node,
        nvlink_domain=domain,
        peer_to_peer=p2p,
        native_fp8=True,
        compute_capability="9.0",
    )


def size(model: str, shape: GpuShape, max_nodes: int = 16, **kw: object) -> Sizing:
    return size_model(SizingRequest(arch=MODELS[model], **kw), shape, max_nodes)  # type: ignore[arg-type]


# ---------------------------------------------------------------- public reference cases (docs/reference/sizing.md)


def test_r1_distill_32b_bf16_needs_two_hopper_gpus_at_32k_at_vllms_default_batch() -> None:
    s = size(
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", node("H100-SXM-80GB", 8), max_model_len=32768, max_num_seqs=1024
    )
    assert (s.fits, s.tp, s.pp, s.gpus_per_replica) == (True, 2, 1, 2)
    assert any("TP 1 x PP 1 rejected" in r for r in s.reasons)
    # Left to the plan, the batch is lowered rather than a second GPU taken: the fewest GPUs win.
    lowered = size("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", node("H100-SXM-80GB", 8), max_model_len=32768)
    assert (lowered.fits, lowered.gpus_per_replica) == (True, 1) and lowered.max_num_seqs < 1024


def test_a_model_without_its_real_config_is_refused_by_the_catalog() -> None:
    # docs/reference/sizing.md's 405B FP8 case cannot run: no public copy of the checkpoint's config.json.
    with pytest.raises(CatalogError, match=r"its real config\.json could not be found"):
        size("neuralmagic/Meta-Llama-3.1-405B-Instruct-FP8", node("H100-SXM-80GB", 8))


def test_an_fp8_checkpoint_is_served_without_a_quantization_flag() -> None:
    s = size("deepseek-ai/DeepSeek-R1", node("H100-SXM-80GB", 8), max_model_len=4096)
    assert s.weight_dtype == "fp8"
    assert "--quantization" not in s.vllm_args  # the checkpoint is already FP8


def test_deepseek_r1_spans_two_h100_nodes_tp8_pp2() -> None:
    s = size("deepseek-ai/DeepSeek-R1", node("H100-SXM-80GB", 8), max_model_len=4096)
    assert (s.fits, s.tp, s.pp, s.gpus_per_replica, s.nodes_per_replica) == (True, 8, 2, 16, 2)
    assert any("stages span nodes" in r for r in s.reasons)


def test_deepseek_r1_on_one_node_says_what_would_fit() -> None:
    s = size("deepseek-ai/DeepSeek-R1", node("H100-SXM-80GB", 8), max_nodes=1, max_model_len=4096)
    assert not s.fits
    assert "would fit with" in s.reasons[0] and "more GPUs (16 GPUs, TP 8 x PP 2)" in s.reasons[0]


def test_gemma_27b_takes_four_l4_of_a_pcie_node() -> None:
    s = size("google/gemma-2-27b-it", node("L4-24GB", 4))
    assert (s.fits, s.gpus_per_replica) == (True, 4)
    # L4 has no NVLink: the automatic choice keeps TP inside the domain (1) and pipelines the rest.
    assert (s.tp, s.pp) == (1, 4)


def test_gemma_27b_published_tp4_on_pcie_is_allowed_when_pinned_with_a_warning() -> None:
    s = size("google/gemma-2-27b-it", node("L4-24GB", 4), tensor_parallel=4)
    assert (s.fits, s.tp, s.pp) == (True, 4, 1)
    assert any("spans 4 NVLink domains" in w for w in s.warnings)


def test_qwen3_32b_bf16_has_no_kv_room_on_one_h100_at_32000() -> None:
    alone = size("Qwen/Qwen3-32B", node("H100-SXM-80GB", 1), max_nodes=1, max_model_len=32000, max_num_seqs=1024)
    assert not alone.fits
    # Without a user value the plan lowers max_num_seqs when nothing else fits, and says so.
    lowered = size("Qwen/Qwen3-32B", node("H100-SXM-80GB", 1), max_nodes=1, max_model_len=32000)
    assert lowered.fits and lowered.max_num_seqs < 1024
    assert any("lowered from 1024 / 8192" in r for r in lowered.reasons)
    s = size("Qwen/Qwen3-32B", node("H100-SXM-80GB", 8), max_model_len=32000, max_num_seqs=1024)
    assert (s.tp, s.pp, s.gpus_per_replica) == (2, 1, 2)


def test_llama_8b_fp8_fits_one_l4_at_16k() -> None:
    s = size("meta-llama/Llama-3.1-8B-Instruct", node("L4-24GB", 1), max_model_len=16384, quantization="fp8")
    assert (s.fits, s.tp, s.pp) == (True, 1, 1)


def test_small_model_fits_an_8gb_card_at_2k() -> None:
    s = size("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", custom(8), max_model_len=2048, kv_cache_dtype="fp8")
    assert (s.fits, s.tp, s.pp) == (True, 1, 1)
    assert s.memory.weights + s.memory.activation + s.memory.non_torch < s.memory.usable


def test_bf16_32b_does_not_fit_one_h100_at_32k() -> None:
    s = size("Qwen/Qwen2.5-32B-Instruct", node("H100-SXM-80GB", 1), max_nodes=1, max_model_len=32768, max_num_seqs=1024)
    assert not s.fits
    assert "quantization: fp8 (1 GPU, TP 1 x PP 1)" in s.reasons[0]


# ---------------------------------------------------------------- vLLM's measured split on one H100 (llm-d)


@pytest.mark.parametrize(
    ("model", "tp", "weights_gib", "activation_gib"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", 1, 14.99, 4.76),
        ("Qwen/Qwen3-32B", 1, 61.03, 5.64),
        ("Qwen/Qwen3-32B", 2, 30.59, 5.64),
    ],
)
def test_memory_split_matches_vllm_measurements(model: str, tp: int, weights_gib: float, activation_gib: float) -> None:
    # llm-d measured on a vLLM that kept CUDA graphs outside the 0.9 budget and ran 1024 sequences: 0.13's rules.
    s = size(
        model,
        node("H100-SXM-80GB", 8),
        max_model_len=16000,
        tensor_parallel=tp,
        pipeline_parallel=1,
        vllm_version="0.13.0",
        max_num_seqs=1024,
    )
    assert s.memory.weights == pytest.approx(weights_gib, rel=0.02)
    assert s.memory.activation == pytest.approx(activation_gib, abs=0.2)


def test_llama_70b_fp8_weights_per_gpu_at_tp2_match_measurement() -> None:
    arch = replace(MODELS["meta-llama/Llama-3.3-70B-Instruct"], checkpoint_dtype="fp8")
    per_gpu, _ = weight_bytes(arch, "fp8", 2, 1)
    assert per_gpu / GIB == pytest.approx(33.88, rel=0.01)


def test_kv_cache_left_for_qwen3_32b_tp2_is_close_to_measured() -> None:
    s = size(
        "Qwen/Qwen3-32B",
        node("H100-SXM-80GB", 8),
        max_model_len=16000,
        tensor_parallel=2,
        pipeline_parallel=1,
        vllm_version="0.13.0",
    )
    assert s.memory.kv_cache == pytest.approx(34.49, abs=1.0)


# ---------------------------------------------------------------- rules


def test_valid_tp_values_of_the_stack_families() -> None:
    assert valid_tps(MODELS["Qwen/Qwen2.5-32B-Instruct"], 8, "bf16") == [1, 2, 4, 8]
    assert valid_tps(MODELS["Qwen/Qwen2.5-Coder-7B-Instruct"], 8, "bf16") == [1, 2, 4]
    assert valid_tps(MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"], 8, "bf16") == [1, 2, 4]


def test_kv_heads_are_replicated_past_their_count() -> None:
    arch = MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"]  # 2 KV heads
    assert kv_bytes_per_token(arch, 4, 1, "auto") == kv_bytes_per_token(arch, 2, 1, "auto")
    assert kv_bytes_per_token(arch, 2, 1, "auto") == kv_bytes_per_token(arch, 1, 1, "auto") / 2


def test_mla_latent_is_not_split_by_tp_and_fp8_halves_it() -> None:
    arch = MODELS["deepseek-ai/DeepSeek-R1"]
    assert kv_bytes_per_token(arch, 8, 1, "auto") == 61 * 576 * 2
    assert kv_bytes_per_token(arch, 8, 1, "fp8") == 61 * 576
    assert kv_bytes_per_token(arch, 8, 2, "auto") == 31 * 576 * 2


def test_block_fp8_checkpoint_constrains_tp() -> None:
    arch = MODELS["deepseek-ai/DeepSeek-R1"]
    assert tp_problem(arch, 32, "fp8") is not None  # 2048 / 32 = 64, not a multiple of the 128 block
    assert tp_problem(arch, 16, "fp8") is None


def test_rtx_4090_gets_nccl_p2p_disable() -> None:
    s = size("Qwen/Qwen2.5-Coder-7B-Instruct", node("RTX-4090-24GB", 8), max_model_len=32768)
    assert s.env["NCCL_P2P_DISABLE"] == "1"
    h100 = size("Qwen/Qwen2.5-Coder-7B-Instruct", node("H100-SXM-80GB", 8), max_model_len=32768)
    assert "NCCL_P2P_DISABLE" not in h100.env


def test_latency_takes_the_largest_tp_in_the_domain() -> None:
    s = size("Qwen/Qwen2.5-32B-Instruct", node("H100-SXM-80GB", 8), max_model_len=32768, objective="latency")
    assert (s.tp, s.pp) == (8, 1)
    pcie = size("Qwen/Qwen2.5-Coder-7B-Instruct", node("L40S-48GB", 4), max_model_len=32768, objective="latency")
    assert (pcie.tp, pcie.pp) == (1, 1)
    nvl = size("Qwen/Qwen2.5-32B-Instruct", node("H100-NVL-94GB", 2), max_model_len=32768, objective="latency")
    assert (nvl.tp, nvl.pp) == (2, 1)


def test_throughput_grows_with_min_concurrency() -> None:
    shape = node("H100-SXM-80GB", 8)
    gpus = [
        size("Qwen/Qwen2.5-32B-Instruct", shape, quantization="fp8", rope_factor=4, min_concurrency=c).gpus_per_replica
        for c in (1, 2, 4, 8)
    ]
    assert gpus == sorted(gpus) and gpus[0] == 1 and gpus[-1] > 1


def test_yarn_raises_the_context_and_emits_hf_overrides() -> None:
    s = size("Qwen/Qwen2.5-32B-Instruct", node("H100-SXM-80GB", 8), quantization="fp8", rope_factor=4)
    assert s.max_model_len == 131072
    # One JSON (vLLM 0.13) or one `--hf-overrides.<key>` per key (0.33): engine_versions.py, hf_overrides_dotted.
    overrides = " ".join(w for i, w in enumerate(s.vllm_args) if s.vllm_args[i - 1].startswith("--hf-overrides"))
    assert '"rope_type":"yarn"' in overrides and '"original_max_position_embeddings":32768' in overrides


def test_context_beyond_native_without_rope_scaling_is_an_error() -> None:
    with pytest.raises(SizingError, match=r"exceeds the 32768 positions .* ropeScaling: \{factor: 4\}"):
        size("Qwen/Qwen2.5-32B-Instruct", node("H100-SXM-80GB", 8), max_model_len=131072)


def test_embedding_models_have_no_kv_cache_and_run_pooling() -> None:
    s = size("BAAI/bge-m3", node("RTX-4090-24GB", 8))
    assert s.kv_cache_tokens is None and s.memory.kv_needed == 0
    assert s.vllm_args[s.vllm_args.index("--runner") + 1] == "pooling"
    reranker = size("BAAI/bge-reranker-v2-m3", node("RTX-4090-24GB", 8))
    assert reranker.task == "score"


def test_deterministic_fixes_the_seed_and_turns_prefix_caching_off() -> None:
    s = size("Qwen/Qwen2.5-Coder-7B-Instruct", node("H100-SXM-80GB", 8), deterministic=True, seed=7)
    assert "--seed" in s.vllm_args and s.vllm_args[s.vllm_args.index("--seed") + 1] == "7"
    # vLLM 0.13 spells it --no-enable-prefix-caching, 0.33 --disable-prefix-caching (engine_versions.py).
    assert s.vllm_args[s.vllm_args.index("--seed") + 2] in ("--no-enable-prefix-caching", "--disable-prefix-caching")
    assert s.env["VLLM_BATCH_INVARIANT"] == "1"
    # vLLM 0.13 has batch-invariant kernels for 8.0, 8.9, 9.0 and 10.x, 0.33 for every CUDA GPU (tests/engine checks
    # each release's own rule).
    ada = size("Qwen/Qwen2.5-Coder-7B-Instruct", node("RTX-4090-24GB", 8), deterministic=True, vllm_version="0.13.0")
    assert ada.env["VLLM_BATCH_INVARIANT"] == "1"
    ampere = size("Qwen/Qwen2.5-Coder-7B-Instruct", node("A10G-24GB", 4), deterministic=True, vllm_version="0.13.0")
    assert "VLLM_BATCH_INVARIANT" not in ampere.env
    assert any("answers can differ across replicas" in w for w in ampere.warnings)
    current = size("Qwen/Qwen2.5-Coder-7B-Instruct", node("A10G-24GB", 4), deterministic=True, vllm_version="0.33.0")
    assert current.env["VLLM_BATCH_INVARIANT"] == "1"


def test_extra_args_are_appended_and_max_num_seqs_is_sized() -> None:
    plain = size("Qwen/Qwen3-32B", node("H100-SXM-80GB", 8), max_model_len=16000, tensor_parallel=2)
    fewer = size(
        "Qwen/Qwen3-32B",
        node("H100-SXM-80GB", 8),
        max_model_len=16000,
        tensor_parallel=2,
        max_num_seqs=64,
        extra_args=("--enable-chunked-prefill",),
    )
    assert fewer.vllm_args[-1:] == ["--enable-chunked-prefill"]
    assert fewer.max_num_seqs == 64
    assert fewer.memory.activation < plain.memory.activation


# ---------------------------------------------------------------- placement


def test_replicas_tile_nvlink_domains() -> None:
    assert _take((2, 2), 2, 1, 2) == (0, 2)
    assert _take((0, 2), 2, 1, 2) == (0, 0)
    assert _take((1, 1), 2, 1, 2) is None  # a TP 2 group never straddles two bridged pairs
    pool = _Pool.of(1, 8, 8)
    assert pool.place(4, 1, 1, 8) and pool.place(4, 1, 1, 8) and not pool.place(1, 1, 1, 8)


def test_plan_reports_pool_use_at_min_and_max() -> None:
    spec = load_cluster_spec(
        one_pool_spec(
            [
                # vLLM's default batch on an H100, pinned: Qwen3-32B then takes TP 2.
                {
                    "name": "a",
                    "model": "Qwen/Qwen3-32B",
                    "pool": "h100",
                    "maxModelLen": 32000,
                    "maxNumSeqs": 1024,
                    "replicas": 2,
                },
                {
                    "name": "b",
                    "model": "meta-llama/Llama-3.1-8B-Instruct",
                    "pool": "h100",
                    "maxModelLen": 8192,
                    "autoscaling": {"minReplicas": 1, "maxReplicas": 4},
                },
            ],
            nodes=2,
        )
    )
    plan = plan_for(spec)
    pool = plan.pools[0]
    assert (pool.gpus_used_min, pool.gpus_used_max, pool.gpus_total) == (5, 8, 16)
    assert pool.nodes_used_max == 1  # best fit packs both models onto one node


def test_plan_names_the_model_and_the_shortfall() -> None:
    spec = load_cluster_spec(
        one_pool_spec(
            [
                {
                    "name": "big",
                    "model": "Qwen/Qwen3-32B",
                    "pool": "h100",
                    "maxModelLen": 32000,
                    "maxNumSeqs": 1024,
                    "replicas": 5,
                }
            ]
        )
    )
    with pytest.raises(SizingError) as caught:
        plan_for(spec)
    assert caught.value.errors == [
        "pools[0].backend.nodeNames: max replicas of models[0] (big) do not fit 1 node(s) of 8 x H100-SXM-80GB; "
        "they need 2 nodes (1 more, 2 GPUs short): add nodes or lower the replicas"
    ]


def test_multi_node_replicas_take_whole_nodes() -> None:
    spec = load_cluster_spec(
        one_pool_spec(
            [{"name": "r1", "model": "deepseek-ai/DeepSeek-R1", "pool": "h100", "maxModelLen": 4096, "replicas": 1}],
            nodes=3,
        )
    )
    plan = plan_for(spec)
    assert plan.models[0].nodes_per_replica == 2
    assert (plan.pools[0].nodes_used_max, plan.pools[0].gpus_used_max) == (2, 16)


# ---------------------------------------------------------------- properties

GENERATE = sorted(m for m, a in MODELS.items() if a.task == "generate" and a.params_b < 120)


@st.composite
def requests(draw: st.DrawFn) -> tuple[ModelArch, SizingRequest]:
    arch = MODELS[draw(st.sampled_from(GENERATE))]
    length = draw(st.integers(min_value=512, max_value=min(arch.max_position, 65536)))
    req = SizingRequest(
        arch=arch,
        max_model_len=length,
        objective=draw(st.sampled_from(["throughput", "latency"])),
        kv_cache_dtype=draw(st.sampled_from(["auto", "fp8"])),
        quantization=draw(st.sampled_from(["auto", "fp8"])) if arch.checkpoint_dtype == "bf16" else "auto",
        min_concurrency=draw(st.integers(min_value=1, max_value=8)),
    )
    return arch, req


@st.composite
def shapes(draw: st.DrawFn) -> GpuShape:
    per_node = draw(st.sampled_from([1, 2, 4, 8]))
    domain = draw(st.sampled_from([d for d in (1, 2, 4, 8) if per_node % d == 0]))
    return custom(draw(st.floats(min_value=8, max_value=200)), per_node, domain, draw(st.booleans()))


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(requests(), shapes())
def test_tp_is_valid_stays_in_the_domain_and_tiles_nodes(
    case: tuple[ModelArch, SizingRequest], shape: GpuShape
) -> None:
    arch, req = case
    s = size_model(req, shape, 4)
    assume(s.fits)
    assert tp_problem(arch, s.tp, s.weight_dtype) is None
    assert s.tp <= shape.nvlink_domain
    assert s.tp * s.pp == s.gpus_per_replica
    n = shape.gpus_per_node
    assert n % s.gpus_per_replica == 0 if s.gpus_per_replica <= n else s.gpus_per_replica % n == 0
    assert s.nodes_per_replica == max(1, s.gpus_per_replica // n)


@PROPERTY
@given(requests(), shapes())
def test_memory_per_gpu_stays_within_budget_when_it_fits(
    case: tuple[ModelArch, SizingRequest], shape: GpuShape
) -> None:
    _, req = case
    s = size_model(req, shape, 4)
    assume(s.fits)
    m = s.memory
    assert m.weights + m.activation + m.non_torch + m.kv_needed <= m.usable + 0.03
    assert m.kv_cache >= m.kv_needed - 0.01
    if s.kv_cache_tokens is not None and not req.arch.layer_groups:
        assert s.kv_cache_tokens >= req.min_concurrency * s.max_model_len
    if s.max_concurrency is not None:
        # With several layer groups vLLM's token figure counts blocks per group, not what the cache holds
        # (components/planning/kv_cache.py); its concurrency figure holds for every model.
        assert s.max_concurrency >= min(req.min_concurrency, s.max_num_seqs)


@PROPERTY
@given(requests(), shapes(), st.floats(min_value=1.0, max_value=4.0))
def test_more_gpu_memory_never_needs_more_gpus(
    case: tuple[ModelArch, SizingRequest], shape: GpuShape, factor: float
) -> None:
    _, req = case
    small = size_model(req, shape, 4)
    assume(small.fits)
    bigger = replace(shape, memory_mib=int(shape.memory_mib * factor))
    large = size_model(req, bigger, 4)
    assert large.fits
    assert large.gpus_per_replica <= small.gpus_per_replica


@PROPERTY
@given(requests(), shapes(), st.floats(min_value=0.1, max_value=1.0))
def test_a_longer_context_never_needs_fewer_gpus(
    case: tuple[ModelArch, SizingRequest], shape: GpuShape, fraction: float
) -> None:
    _, req = case
    assert req.max_model_len is not None
    longer = size_model(req, shape, 4)
    assume(longer.fits)
    shorter_len = max(256, math.floor(req.max_model_len * fraction))
    shorter = size_model(replace(req, max_model_len=shorter_len), shape, 4)
    assert shorter.fits
    assert shorter.gpus_per_replica <= longer.gpus_per_replica


def test_nomic_is_capped_at_its_trained_positions_unless_extended_with_rope() -> None:
    # vLLM caps NomicBERT at max_trained_positions (2048) and refuses more without a rope extension.
    nomic = node("RTX-4090-24GB", 8)
    assert size("nomic-ai/nomic-embed-text-v1", nomic).max_model_len == 2048
    with pytest.raises(SizingError, match=r"8192 exceeds the 2048 positions .* ropeScaling: \{factor: 4\}"):
        size("nomic-ai/nomic-embed-text-v1", nomic, max_model_len=8192)
    extended = size("nomic-ai/nomic-embed-text-v1", nomic, max_model_len=8192, rope_factor=4.0)
    assert (extended.max_model_len, extended.rope_type) == (8192, "yarn")


def test_absolute_position_encoders_cannot_be_extended_with_rope() -> None:
    with pytest.raises(SizingError, match="learns absolute positions"):
        size("intfloat/multilingual-e5-large", node("RTX-4090-24GB", 8), rope_factor=2.0)


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (("--tensor_parallel_size=8",), "--tensor-parallel-size contradicts the plan"),
        (("--gpu_memory_utilization=0.99",), "--gpu-memory-utilization contradicts the plan"),
        (("--max-model-len 1000000",), "holds a flag and its value in one item"),
        (("--max-model-len 1000000",), "--max-model-len contradicts the plan"),
        (("--port", "9000"), "--port is set by the plan"),
    ],
)
def test_extra_args_are_read_the_way_vllms_parser_reads_them(extra: tuple[str, ...], said: str) -> None:
    # FlexibleArgumentParser turns --a_b into --a-b; one argv item with a space is one unknown flag to it.
    with pytest.raises(SizingError, match=re.escape(said)):
        size("Qwen/Qwen3-32B", node("H100-SXM-80GB", 8), max_model_len=16000, extra_args=extra)


def test_batch_limits_in_extra_args_are_refused_in_any_spelling() -> None:
    with pytest.raises(SizingError, match=r"--max-num-seqs contradicts the plan, which sets it; set maxNumSeqs"):
        size("Qwen/Qwen3-32B", node("H100-SXM-80GB", 8), max_model_len=16000, extra_args=("--max_num_seqs=64",))
