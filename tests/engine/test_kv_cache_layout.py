"""The plan's KV-cache figures against each supported vLLM's own allocator (tests/engine/kv_cache_probe.py, run in
the release's venv: 0.13.0 and 0.33.0), under that release's KvCacheRules (engine_versions.py).

For real configs (gpt-oss-120b, Gemma-3-27B, Llama-4-Scout, Nemotron-Super-49B) and hybrid layouts (Qwen3-Next's
gated delta nets, Nemotron-H's Mamba-2, Jamba's Mamba-1, MiniMax's linear attention) on several TP x PP layouts,
KV dtypes and memories, vLLM's get_kv_cache_configs must report the blocks, "GPU KV cache size" tokens and
"Maximum concurrency" that components/planning/kv_cache.py predicts, start exactly when our per-request memory
says one request fits, and refuse one byte below vLLM's own check. Under 0.33 the hybrid Mamba / linear-attention
layouts run with prefix caching on (Mamba in `align` mode) on FlashAttention, as on a Hopper GPU."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from components.catalog import ModelArch, load_model_catalog
from components.catalog.hf_config import load_hf_config
from components.planning.engine_versions import ENGINE_VERSIONS, engine_version
from components.planning.kv_cache import KvLayout, effective_groups, kv_layout
from components.planning.parallelism import kv_rules_for
from components.planning.types import SizingRequest
from tests.catalog.test_layers import NEMOTRON_H_8B, read
from tests.engine.engine_run import vllm_python

PROBE = Path(__file__).with_name("kv_cache_probe.py")
FIXTURES = Path(__file__).parents[1] / "catalog" / "configs"
GIB = 1024**3
VERSIONS = list(ENGINE_VERSIONS)


def _fixture(model_id: str) -> ModelArch:
    return load_hf_config(FIXTURES / model_id / "config.json", model_id)


QWEN3_NEXT = read(
    {
        "model_type": "qwen3_next",
        "architectures": ["Qwen3NextForCausalLM"],
        "linear_num_key_heads": 16,
        "linear_num_value_heads": 32,
        "linear_key_head_dim": 128,
        "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4,
    }
)
NEMOTRON_H = read(
    {
        "model_type": "nemotron_h",
        "architectures": ["NemotronHForCausalLM"],
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "hidden_size": 4096,
        "hybrid_override_pattern": NEMOTRON_H_8B,
        "mamba_num_heads": 128,
        "mamba_head_dim": 64,
        "n_groups": 8,
        "ssm_state_size": 128,
        "conv_kernel": 4,
    },
    layers=len(NEMOTRON_H_8B),
)
JAMBA = read({"model_type": "jamba", "architectures": ["JambaForCausalLM"], "num_key_value_heads": 8}, layers=32)
MINIMAX = read({"architectures": ["MiniMaxText01ForCausalLM"], "attn_type_list": ([0] * 7 + [1]) * 4}, layers=32)
MODELS = load_model_catalog()
ARCHS = {
    "gpt-oss-120b": MODELS["openai/gpt-oss-120b"],
    "gemma-3-27b": _fixture("google/gemma-3-27b-it"),
    "llama-4-scout": _fixture("meta-llama/Llama-4-Scout-17B-16E-Instruct"),
    "nemotron-super-49b": _fixture("nvidia/Llama-3_3-Nemotron-Super-49B-v1"),
    "qwen3-32b": MODELS["Qwen/Qwen3-32B"],
    "qwen3-next": QWEN3_NEXT,
    "nemotron-h-8b": NEMOTRON_H,
    "jamba": JAMBA,
    "minimax": MINIMAX,
}
# (model, tp, pp, kv dtype, max_model_len, max_num_batched_tokens, KV memory per GPU in bytes)
LAYOUTS = [
    ("gpt-oss-120b", 1, 1, "auto", 131072, 8192, 20 * GIB + 12345),
    ("gpt-oss-120b", 2, 2, "auto", 131072, 2048, 31 * GIB),
    ("gpt-oss-120b", 8, 1, "fp8", 131072, 8192, 50 * GIB + 7),
    ("gemma-3-27b", 1, 1, "auto", 131072, 2048, 25 * GIB + 999),
    ("gemma-3-27b", 2, 3, "auto", 32768, 8192, 9 * GIB),
    ("llama-4-scout", 4, 1, "auto", 262144, 8192, 30 * GIB + 1),
    ("llama-4-scout", 8, 2, "fp8", 1048576, 8192, 40 * GIB),
    ("nemotron-super-49b", 1, 1, "auto", 131072, 8192, 30 * GIB + 3),
    ("nemotron-super-49b", 2, 2, "auto", 131072, 8192, 20 * GIB),
    ("nemotron-super-49b", 1, 3, "fp8", 65536, 2048, 6 * GIB),
    ("qwen3-32b", 2, 2, "auto", 40960, 8192, 17 * GIB + 5),
    ("qwen3-next", 1, 1, "auto", 65536, 8192, 10 * GIB + 77),
    ("qwen3-next", 4, 2, "fp8", 262144, 2048, 12 * GIB),
    ("nemotron-h-8b", 1, 1, "auto", 8192, 8192, 5 * GIB + 11),
    ("nemotron-h-8b", 2, 2, "auto", 131072, 2048, 7 * GIB),
    ("jamba", 1, 1, "auto", 65536, 8192, 6 * GIB),
    ("jamba", 2, 1, "fp8", 262144, 8192, 4 * GIB + 3),
    ("minimax", 1, 1, "auto", 32768, 8192, 9 * GIB),
    ("minimax", 2, 2, "auto", 65536, 4096, 3 * GIB),
]


def _layout(version: str, model: str, tp: int, pp: int, kv_dtype: str, max_len: int, batched: int) -> KvLayout:
    layout = kv_layout(ARCHS[model], tp, pp, kv_dtype, max_len, batched, engine_version(version).kv_cache)
    assert layout is not None
    return layout


def _case(model: str, tp: int, pp: int, kv_dtype: str, max_len: int, batched: int, memory: int) -> dict[str, Any]:
    arch = ARCHS[model]
    layers: list[dict[str, Any]] = [{"kind": "none", "kv_heads": 0, "head_dim": 0, "window": 0}] * arch.layers
    for g in effective_groups(arch):
        entry: dict[str, Any] = {"kind": g.kind, "kv_heads": g.kv_heads, "head_dim": g.head_dim, "window": g.window}
        entry["state"] = asdict(g.state) if g.state else None
        for i in g.layers:
            layers[i] = entry
    return {
        "layers": layers,
        "mla": arch.kv_lora_rank + arch.qk_rope_head_dim if arch.attention == "mla" else 0,
        "model_kv_heads": arch.kv_heads,
        "model_head_dim": arch.head_dim,
        "chunked": any(g.kind == "chunked" for g in arch.layer_groups),
        "tp": tp,
        "pp": pp,
        "kv_dtype": kv_dtype,
        "max_len": max_len,
        "batched": batched,
        "memory": memory,
    }


def _boundaries(version: str) -> list[tuple[Any, ...]]:
    """Per layout: one byte under vLLM's start-up check, and exactly one request of our per-request memory."""
    cases = []
    for model, tp, pp, kv_dtype, max_len, batched, _ in LAYOUTS:
        layout = _layout(version, model, tp, pp, kv_dtype, max_len, batched)
        cases.append((model, tp, pp, kv_dtype, max_len, batched, layout.check_bytes - 1))
        cases.append((model, tp, pp, kv_dtype, max_len, batched, layout.needed(1)))
    return cases


@pytest.fixture(scope="module", params=VERSIONS)
def vllm_answers(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    version: str = request.param
    cases = [_case(*layout) for layout in LAYOUTS + _boundaries(version)]
    done = subprocess.run(
        [str(vllm_python(version)), str(PROBE)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return version, answers


@pytest.mark.parametrize("index", range(len(LAYOUTS)), ids=lambda i: "-".join(map(str, LAYOUTS[i][:5])))
def test_tokens_and_concurrency_are_vllms(vllm_answers: tuple[str, list[dict[str, Any]]], index: int) -> None:
    version, answers = vllm_answers
    model, tp, pp, kv_dtype, max_len, batched, memory = LAYOUTS[index]
    layout = _layout(version, model, tp, pp, kv_dtype, max_len, batched)
    vllm = answers[index]
    assert "error" not in vllm, vllm
    ours = {
        "num_blocks": layout.blocks(memory),
        "groups": layout.groups,
        "tokens": layout.tokens(memory),
        "concurrency": layout.concurrency(memory),
    }
    assert ours == vllm


@pytest.mark.parametrize("index", range(len(LAYOUTS)), ids=lambda i: "-".join(map(str, LAYOUTS[i][:5])))
def test_one_request_fits_exactly_where_we_say(vllm_answers: tuple[str, list[dict[str, Any]]], index: int) -> None:
    _, answers = vllm_answers
    below, enough = answers[len(LAYOUTS) + 2 * index : len(LAYOUTS) + 2 * index + 2]
    assert "KV cache is needed, which is larger than the available KV cache memory" in below["error"]
    assert "error" not in enough and enough["concurrency"] >= 1.0


def test_hybrid_layouts_are_what_the_allocator_groups() -> None:
    # gpt-oss: 18 sliding + 18 full layers make two groups of 18; Gemma-3-27B's 52 + 10 make 6 + 1 groups of 10;
    # Llama-4's chunked layers are sized as full attention under 0.13 (hybrid allocator off), so one group; 0.33
    # keeps the allocator on: 36 chunked + 12 full layers make 3 + 1 groups of 12.
    for version in VERSIONS:
        assert _layout(version, "gpt-oss-120b", 1, 1, "auto", 131072, 8192).groups == 2
        assert _layout(version, "gemma-3-27b", 1, 1, "auto", 131072, 8192).groups == 7
    assert _layout("0.13.0", "llama-4-scout", 8, 1, "auto", 131072, 8192).groups == 1
    assert _layout("0.33.0", "llama-4-scout", 8, 1, "auto", 131072, 8192).groups == 4


def test_align_mode_puts_gated_delta_net_blocks_on_the_checkpoint_grid() -> None:
    # 0.33 runs Qwen3-Next's gated delta nets in align mode with FlashInfer prefill checkpoints: the attention block
    # is a multiple of the checkpoint grid, and a request holds three states per Mamba group (two + a checkpoint),
    # where 0.13's blocks step by 16 tokens and a state is one max_model_len block.
    rules = engine_version("0.33.0").kv_cache
    new = _layout("0.33.0", "qwen3-next", 1, 1, "auto", 65536, 8192)
    old = _layout("0.13.0", "qwen3-next", 1, 1, "auto", 65536, 8192)
    assert new.block_tokens % rules.gdn_checkpoint_tokens == 0 and old.block_tokens % 16 == 0
    attention_blocks = -(-65536 // new.block_tokens)
    assert new.blocks_per_request == attention_blocks + (new.groups - 1) * (rules.mamba_align_states + 1)


@pytest.mark.parametrize("model", ["qwen3-next", "nemotron-h-8b", "jamba", "minimax"])
def test_hybrid_models_without_prefix_caching_leave_align_mode(model: str) -> None:
    """A deterministic model, or one with prefixCaching: false, runs vLLM 0.33 with prefix caching off; MambaModelConfig
    then keeps Mamba out of align mode. The plan's rules (parallelism.kv_rules_for) match 0.33's allocator."""
    arch = ARCHS[model]
    req = SizingRequest(arch=arch, vllm_version="0.33.0", prefix_caching=False)
    rules = kv_rules_for(req)
    assert rules.mamba_align_states == 0 and kv_rules_for(replace(req, prefix_caching=None)).mamba_align_states > 0
    layout = kv_layout(arch, 1, 1, "auto", 32768, 8192, rules)
    assert layout is not None
    memory = 6 * GIB
    case = {**_case(model, 1, 1, "auto", 32768, 8192, memory), "prefix_caching": False}
    below = {**case, "memory": layout.check_bytes - 1}
    done = subprocess.run(
        [str(vllm_python("0.33.0")), str(PROBE)],
        input=json.dumps([case, below]),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    vllm, refused = json.loads(done.stdout.strip().splitlines()[-1])
    assert vllm == {
        "num_blocks": layout.blocks(memory),
        "groups": layout.groups,
        "tokens": layout.tokens(memory),
        "concurrency": layout.concurrency(memory),
    }
    assert "larger than the available KV cache memory" in refused["error"]
