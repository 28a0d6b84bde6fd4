"""Layouts and replicas chosen by predicted performance (components/planning/layout_choice.py): the chosen layout
meets the objectives, no layout with fewer GPUs does, pinned values hold, an unmeetable objective says by how much
and what would meet it, the HPA target is the predicted edge less its headroom, and plan/diff carry predictions."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from components.catalog import load_gpu_catalog
from components.planning.layout_choice import HEADROOM
from components.planning.layout_options import Goal, hardware, options, predict_on
from components.planning.performance import Objective, Workload
from components.planning.pools import PoolShape
from components.planning.types import ClusterPlan, GpuShape, ModelPlan, SizingError, SizingRequest
from components.spec import SpecError, load_cluster_spec
from components.stacks import plan_for, plan_stack
from components.tools.capacity_diff import diff_data
from components.tools.plan_text import format_plan
from components.tools.text_layout import TEXT_WIDTH

# Mixtral-8x7B-Instruct as AWQ 4-bit: the model's config.json (hidden 4096, 32 layers, 8 experts, 2 per token) with
# the quantization_config of its AWQ checkpoints (TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ: 4 bits, groups of 128,
# GEMM). Published 2 x L4 deployments of Mixtral and Llama-3-70B-class models serve them with TP 2 (issue 16).
MIXTRAL_AWQ = {
    "architectures": ["MixtralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "model_type": "mixtral", "num_attention_heads": 32, "num_experts_per_tok": 2,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 8, "rms_norm_eps": 1e-05,
    "rope_theta": 1000000.0, "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "vocab_size": 32000,
    "quantization_config": {"bits": 4, "group_size": 128, "quant_method": "awq", "version": "gemm", "zero_point": True},
}  # fmt: skip
QWEN = "Qwen/Qwen3-32B"


def stack(gpu: str, per_node: int, nodes: int, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "storageClass": "fast",
        "auth": {"allowPlainHttp": True, "clients": [{"name": "tests"}]},
        "pools": [{"name": "p", "gpu": gpu, "gpusPerNode": per_node, "nodes": nodes,
                   "backend": {"kind": "existing", "nodeNames": [f"n{i}" for i in range(nodes)]}}],
        "models": [{"name": "m", "pool": "p", "revision": "0" * 40, **model}],
    }  # fmt: skip


def plan_one(gpu: str, per_node: int, nodes: int, **model: Any) -> ModelPlan:
    return plan_for(load_cluster_spec(stack(gpu, per_node, nodes, model))).models[0]


@pytest.fixture
def mixtral(tmp_path: Path) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(MIXTRAL_AWQ))
    return str(path)


def qwen_on_l4(**extra: Any) -> ModelPlan:
    return plan_one("L4-24GB", 4, 3, model=QWEN, maxModelLen=16384, **extra)


WORKLOAD = {"inputTokens": 2048, "outputTokens": 256, "peakConcurrency": 24}


def judged(m: ModelPlan, nodes: int, ttft: float | None, itl: float | None, replicas: int | None = None) -> list[Any]:
    """Every layout the planner weighs for `m`, judged by the performance model itself (free replicas)."""
    from components.catalog import load_model_catalog

    gpu = load_gpu_catalog()[m.gpu]
    shape = GpuShape.of(gpu, 4)
    req = SizingRequest(arch=load_model_catalog()[QWEN], max_model_len=16384)
    pool = PoolShape(0, None, gpu, shape, None, (), None, nodes, nodes)  # type: ignore[arg-type]
    goal = Goal(2048, 256, 24, Objective(ttft, itl), "")
    return options(req, pool, shape, goal, None)


def test_two_l4_latency_objective_picks_tp2_where_the_prediction_says_it_is_faster(mixtral: str) -> None:
    base = {"model": "TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ", "configPath": mixtral, "maxModelLen": 8192}
    memory_rule = plan_one("L4-24GB", 2, 1, **base)
    assert (memory_rule.tp, memory_rule.pp) == (1, 2)  # TP never crosses PCIe by the memory rule
    chosen = plan_one(
        "L4-24GB", 2, 1, **base,
        workload={"inputTokens": 512, "outputTokens": 256, "peakConcurrency": 1}, objectives={"itlMs": 200},
    )  # fmt: skip
    # Both layouts take 2 GPUs and meet it; the plan takes the one predicted faster at the peak.
    gpu = load_gpu_catalog()["L4-24GB"]
    hw = hardware(gpu, GpuShape.of(gpu, 2))
    at_one = Workload(512, 256, 1)
    tp2 = predict_on(SizingRequest(arch=_arch(mixtral)), chosen, hw, at_one, None)
    pp2 = predict_on(SizingRequest(arch=_arch(mixtral)), memory_rule, hw, at_one, None)
    assert tp2.itl_ms < pp2.itl_ms
    assert (chosen.tp, chosen.pp) == (2, 1)
    assert chosen.prediction is not None and chosen.prediction.itl_ms == tp2.itl_ms
    assert "NCCL_P2P_DISABLE" not in chosen.env  # the L4's PCIe P2P works (catalog)
    assert any(r.startswith("rejected TP 1 x PP 2") and f"ITL {pp2.itl_ms:.1f} ms" in r for r in chosen.reasons)


def _arch(config: str) -> Any:
    from components.catalog import load_hf_config

    return load_hf_config(Path(config), "TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ")


def test_tp_across_pcie_keeps_nccl_p2p_disable_where_p2p_is_broken() -> None:
    m = plan_one(
        "RTX-4090-24GB", 4, 1, model=QWEN, maxModelLen=8192,
        workload={"inputTokens": 1024, "outputTokens": 256, "peakConcurrency": 4}, objectives={"itlMs": 400},
    )  # fmt: skip
    assert m.env.get("NCCL_P2P_DISABLE") == "1"
    assert m.prediction is not None and m.prediction.meets


def test_the_chosen_layout_meets_the_objectives_and_no_fewer_gpus_do() -> None:
    m = qwen_on_l4(workload=WORKLOAD, objectives={"ttftMs": 2000, "itlMs": 80})
    p = m.prediction
    assert p is not None and p.meets and p.ttft_ms <= 2000 and p.itl_ms <= 80
    assert p.concurrency * (m.max_replicas if not m.autoscaling else math.ceil(24 / p.concurrency)) >= 24
    found = judged(m, 3, 2000, 80)
    chosen_total = math.ceil(24 / (p.max_concurrency_for_objective or 1)) * m.gpus_per_replica
    assert min(o.total for o in found if o.total) == chosen_total
    # Every layout with fewer GPUs at the peak misses the objectives (total 0) or needs more replicas of it.
    assert all(o.total == 0 or o.total >= chosen_total for o in found)


def test_without_objectives_the_layout_is_the_memory_rule_and_predictions_are_shown() -> None:
    m = qwen_on_l4()
    assert (m.tp, m.pp) == (1, 4)
    assert m.prediction is not None and m.prediction.workload_source == "default"
    assert (m.prediction.input_tokens, m.prediction.output_tokens) == (1024, 256)
    assert m.prediction.concurrency == min(m.max_num_seqs, (m.kv_cache_tokens or 0) // 1280)


def test_replicas_come_from_the_peak_when_the_stack_pins_none() -> None:
    m = qwen_on_l4(workload=WORKLOAD, objectives={"ttftMs": 2000, "itlMs": 80})
    edge = m.prediction.max_concurrency_for_objective if m.prediction else 0
    assert edge and m.min_replicas == m.max_replicas == math.ceil(24 / edge)


def test_pinned_tp_pp_and_replicas_are_kept() -> None:
    pinned = qwen_on_l4(workload=WORKLOAD, objectives={"itlMs": 300}, tensorParallel=2, pipelineParallel=2)
    assert (pinned.tp, pinned.pp) == (2, 2)
    fixed = qwen_on_l4(workload=WORKLOAD, objectives={"itlMs": 300}, replicas=3)
    assert fixed.min_replicas == fixed.max_replicas == 3 and fixed.autoscaling is None
    few = qwen_on_l4(workload=WORKLOAD, objectives={"ttftMs": 2000, "itlMs": 80}, replicas=1)
    assert few.max_replicas == 1
    (warning,) = [w for w in few.warnings if w.startswith("objectives not met")]
    assert re.search(r"replicas: \d+", warning)


def test_an_unmeetable_objective_says_by_how_much_and_the_fix_it_names_meets_it() -> None:
    m = qwen_on_l4(workload=WORKLOAD, objectives={"ttftMs": 600})
    (warning,) = [w for w in m.warnings if w.startswith("objectives not met")]
    over = re.search(r"TTFT ([0-9.]+) ms vs 600\.0 \(\+(\d+)%\)", warning)
    assert over and round((float(over[1]) / 600 - 1) * 100) == int(over[2])
    prompt = re.search(r"prompts of at most (\d+) tokens", warning)
    assert prompt, warning
    # Shorter prompts meet it with as many replicas as the peak then needs: a pool large enough for them.
    shorter = plan_one("L4-24GB", 4, 40, model=QWEN, maxModelLen=16384,
                       workload={**WORKLOAD, "inputTokens": int(prompt[1])}, objectives={"ttftMs": 600})  # fmt: skip
    assert shorter.prediction is not None and shorter.prediction.meets
    assert not [w for w in shorter.warnings if w.startswith("objectives not met")]


def _autoscaled(metric: str, **extra: Any) -> ModelPlan:
    auto = {"minReplicas": 1, "maxReplicas": 3, "metric": metric, **extra}
    return qwen_on_l4(workload=WORKLOAD, objectives={"ttftMs": 2000, "itlMs": 80}, autoscaling=auto)


def test_the_hpa_target_is_the_predicted_edge_less_its_headroom() -> None:
    m = _autoscaled("vllm:num_requests_running")
    assert m.autoscaling is not None and m.prediction is not None
    edge = m.prediction.max_concurrency_for_objective or 0
    assert m.autoscaling.target == max(1, math.floor(edge * (1 - HEADROOM)))  # the edge is under the batch here
    assert m.autoscaling.target_reason.startswith("from predictions:")
    assert "20% headroom" in m.autoscaling.target_reason
    waiting = _autoscaled("vllm:num_requests_waiting")
    assert waiting.autoscaling is not None and waiting.autoscaling.target == 1  # missed before the batch fills
    assert _autoscaled("vllm:num_requests_running", target=5).autoscaling.target == 5  # type: ignore[union-attr]
    kv = _autoscaled("vllm:kv_cache_usage_perc")
    assert kv.autoscaling is not None and not kv.autoscaling.target_reason.startswith("from predictions")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"objectives": {"ttftMs": 500}}, "models[0].objectives: need workload.peakConcurrency"),
        ({"workload": WORKLOAD, "objectives": {"ttftMs": 500, "percentile": "p95"}},
         "models[0].objectives.percentile: p95 TTFT is not modelled"),
        ({"workload": WORKLOAD, "objectives": {"percentile": "p50"}}, "models[0].objectives: give ttftMs, itlMs"),
    ],
)  # fmt: skip
def test_unusable_objectives_name_the_field_and_the_fix(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(SizingError) as exc:
        qwen_on_l4(**extra)
    assert exc.value.errors[0].startswith(message)


def test_objectives_on_a_pooling_model_are_refused() -> None:
    with pytest.raises(SizingError) as exc:
        plan_one("L4-24GB", 4, 1, model="BAAI/bge-m3", task="embed", workload=WORKLOAD, objectives={"ttftMs": 50})
    assert "generates no tokens" in exc.value.errors[0]


def test_p95_itl_is_judged_against_the_stated_factor() -> None:
    m = plan_one("L4-24GB", 4, 12, model=QWEN, maxModelLen=16384, workload=WORKLOAD,
                 objectives={"itlMs": 80, "percentile": "p95"})  # fmt: skip
    assert m.prediction is not None and m.prediction.itl_objective_ms == round(80 / 1.12, 3)
    assert m.prediction.meets and m.prediction.itl_ms <= 80 / 1.12


def test_bad_workload_keys_are_spec_errors() -> None:
    with pytest.raises(SpecError) as exc:
        load_cluster_spec(stack("L4-24GB", 4, 1, {"model": QWEN, "workload": {"inputTokens": 0, "peakConcurrency": 1}}))
    assert any(e.startswith("models[0].workload.inputTokens") for e in exc.value.errors)


def test_plan_json_text_and_diff_carry_the_predictions() -> None:
    after = plan_stack("example-gke")
    data = json.loads(json.dumps(after.model_dump(mode="json")))
    qwen = next(m for m in data["models"] if m["name"] == "qwen3-32b")
    assert {"ttft_ms", "itl_ms", "output_tokens_per_s", "max_concurrency_for_objective"} <= qwen["prediction"].keys()
    text = format_plan(after, "example-gke", markdown=False)
    assert "Predicted per replica" in text and max(len(line) for line in text.splitlines()) <= TEXT_WIDTH
    before = _without_objectives(after)
    diff = diff_data(before, after, "example-gke", "main")
    (row,) = [r for r in diff["models"] if r["name"] == "qwen3-32b"]
    assert row["before"]["predicted"] != row["after"]["predicted"]
    assert row["before"]["tp_pp"] == "1x4" and row["after"]["tp_pp"] == "4x1"


def _without_objectives(after: ClusterPlan) -> ClusterPlan:
    from components.stacks import read_stack_config, stack_file

    raw = read_stack_config(stack_file("example-gke"))
    assert isinstance(raw, dict)
    for model in raw["models"]:
        model.pop("objectives", None)
        model.pop("workload", None)
    return plan_for(load_cluster_spec(raw))
