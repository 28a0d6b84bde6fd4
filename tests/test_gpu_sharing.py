"""Shared GPUs (components/planning/sharing.py): which models the plan packs onto slices, the memory bound of each
engine, and the property that makes it safe: no assignment of slices to GPUs the device plugin may make overfills a
GPU or fails vLLM's startup check of free memory."""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.catalog import load_gpu_catalog
from components.device_plugin import CONFIG_LABEL
from components.gpu_pool import gke_node_pool_args
from components.planning.memory import CUDA_GRAPH_RESERVE_GIB
from components.planning.sharing_types import SHARED_GPU_RESOURCE
from components.planning.types import ClusterPlan, ModelPlan, SizingError
from components.spec import GkeBackendSpec, load_cluster_spec
from components.stacks import plan_for, plan_stack
from components.tools.capacity_diff import diff_data
from components.tools.plan_text import format_plan
from testbed.stacks import stack_config

# A CUDA context per engine process: ~500 MB (pytorch/serve#2128), taken before vLLM's memory snapshot.
CONTEXT_GIB = 0.5
POOLING = {
    "multilingual-e5-large": ("intfloat/multilingual-e5-large", "embed"),
    "bge-m3": ("BAAI/bge-m3", "embed"),
    "nomic-embed-text-v1": ("nomic-ai/nomic-embed-text-v1", "embed"),
    "bge-reranker-v2-m3": ("BAAI/bge-reranker-v2-m3", "score"),
}
SMALL_GENERATOR = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
EXISTING_GPUS = sorted(g.id for g in load_gpu_catalog().values())


def shared_spec(gpu: str, slices: int, models: list[dict[str, Any]], **sharing: Any) -> dict[str, Any]:
    return {
        "storageClass": "fast",
        "auth": {"allowPlainHttp": True, "clients": [{"name": "tests"}]},
        "pools": [
            {
                "name": "small",
                "gpu": gpu,
                "gpusPerNode": 8,
                "sharing": {"slicesPerGpu": slices, **sharing},
                "backend": {"kind": "existing", "nodeNames": ["n0", "n1"]},
            }
        ],
        "models": models,
    }


def pooling(name: str, replicas: int = 1, **extra: Any) -> dict[str, Any]:
    model, task = POOLING[name]
    return {"name": name, "model": model, "pool": "small", "task": task, "replicas": replicas, **extra}


def flag(model: ModelPlan, name: str) -> float:
    return float(model.vllm_args[model.vllm_args.index(name) + 1])


def footprint(model: ModelPlan, gpu_gib: float) -> float:
    """What the engine holds on its GPU, from its own plan: context + (its whole budget when a KV cache fills it,
    else weights + activation + non-torch) + CUDA graphs."""
    budget = flag(model, "--gpu-memory-utilization") * gpu_gib
    used = budget if model.kv_cache_tokens is not None else model.memory.weights + model.memory.activation
    used = max(used, model.memory.weights + model.memory.activation + model.memory.non_torch)
    return CONTEXT_GIB + used + CUDA_GRAPH_RESERVE_GIB


# ---------------------------------------------------------------- prod


def test_prod_packs_its_pooling_models_onto_quarter_slices() -> None:
    plan = plan_stack("prod")
    pool = next(p for p in plan.pools if p.name == "rtx4090")
    assert pool.sharing is not None and pool.sharing.strategy == "time-slicing"
    assert sorted(pool.sharing.shared_models) == sorted(POOLING)
    assert pool.sharing.node_names == ["gpu-4090-02"]
    for model in plan.models:
        if model.name in POOLING:
            assert model.sharing is not None and model.pod.gpu_resource == SHARED_GPU_RESOURCE
            # vLLM's budget is of the whole GPU: a quarter of it minus the margin.
            assert flag(model, "--gpu-memory-utilization") == model.sharing.gpu_memory_utilization <= 0.25
            assert model.pod.gpus == 1 and model.gpus_per_replica == 1
        else:
            assert model.sharing is None and model.pod.gpu_resource == "nvidia.com/gpu"
    # Before: one RTX 4090 per pooling replica (7 / 14 GPUs); after: their slices fit 1 / 2 GPUs.
    assert (pool.sharing.gpus_used_min_unshared, pool.sharing.gpus_used_max_unshared) == (7, 14)
    assert (pool.gpus_used_min, pool.gpus_used_max) == (4, 8)


def test_plan_says_why_each_model_is_or_is_not_shared() -> None:
    text = format_plan(plan_stack("prod"), "prod", markdown=False, wide=True)
    assert "sharing on pool rtx4090: 4 nvidia.com/gpu.shared slices per GPU on node(s) gpu-4090-02" in text
    assert "4 / 8 with sharing, 7 / 14 without (saves 3 / 6)" in text
    assert "t-lite-it-1-0: whole GPU: a generator; generators share only with sharing.generators: true" in text
    assert "bge-m3: 1/4 GPU, gpu_memory_utilization 0.18" in text
    assert "time-slicing, not MPS" in text


def test_the_capacity_diff_shows_the_gpus_saved() -> None:
    after = plan_stack("prod")
    raw = copy.deepcopy(stack_config("prod"))
    del raw["pools"][1]["sharing"]
    for model in raw["models"]:
        if model["name"] in POOLING:
            model["autoscaling"]["metric"] = "DCGM_FI_DEV_GPU_UTIL"
    before = plan_for(load_cluster_spec(raw))
    diff = diff_data(before, after, "prod", "no sharing")
    pool = next(p for p in diff["pools"] if p["name"] == "rtx4090")
    assert (pool["before"]["used_min"], pool["after"]["used_min"]) == ("7", "4")
    assert (pool["before"]["used_max"], pool["after"]["used_max"]) == ("14", "8")
    bge = next(m for m in diff["models"] if m["name"] == "bge-m3")
    assert (bge["before"]["gpus"], bge["after"]["gpus"]) == ("1-2", "1-2 x 1/4")


# ---------------------------------------------------------------- decisions and refusals


def plan_of(config: dict[str, Any]) -> ClusterPlan:
    return plan_for(load_cluster_spec(config))


def test_a_gpu_metric_on_a_shared_model_is_refused_with_the_reason() -> None:
    model = pooling("bge-m3", autoscaling={"maxReplicas": 2, "metric": "DCGM_FI_DEV_GPU_UTIL"})
    del model["replicas"]
    with pytest.raises(SizingError) as error:
        plan_of(shared_spec("RTX-4090-24GB", 4, [model]))
    assert error.value.errors == [
        "models[0].autoscaling.metric: DCGM_FI_DEV_GPU_UTIL measures the whole physical GPU, which bge-m3 shares "
        "with up to 3 other engine(s) on pool 'small' (sharing.slicesPerGpu 4), not this model's load; scale it on "
        "its own engine: vllm:num_requests_running or vllm:num_requests_waiting"
    ]


def test_generators_share_only_when_allowed_and_when_they_fit() -> None:
    generator = {"name": "r1-small", "model": SMALL_GENERATOR, "pool": "small", "maxModelLen": 4096}
    kept = plan_of(shared_spec("H100-SXM-80GB", 4, [pooling("bge-m3"), generator]))
    assert kept.models[1].sharing is None
    allowed = plan_of(shared_spec("H100-SXM-80GB", 4, [pooling("bge-m3"), generator], generators=True))
    shared = allowed.models[1]
    assert shared.sharing is not None and shared.kv_cache_tokens
    # Its KV cache fills the slice's budget and no more: vLLM sizes it from the whole GPU x the fraction.
    assert shared.memory.usable == pytest.approx(flag(shared, "--gpu-memory-utilization") * 80, abs=0.6)
    long = {**generator, "maxModelLen": 32768, "minConcurrency": 2}
    too_big = plan_of(shared_spec("RTX-4090-24GB", 4, [pooling("bge-m3"), long], generators=True))
    assert too_big.models[1].sharing is None
    assert any(r.startswith("whole GPU: ") for r in too_big.models[1].reasons)


def test_a_slice_too_small_for_the_margin_shares_nothing_and_says_so() -> None:
    with pytest.raises(SizingError) as error:
        plan_of(shared_spec("RTX-4090-24GB", 16, [pooling("bge-m3")]))
    assert "pools[0].sharing: no model on pool 'small' fits a slice of 1/16 GPU; remove sharing" in error.value.errors


def test_shared_nodes_are_the_stacks_or_the_fewest_that_hold_the_slices() -> None:
    many = [pooling(name, replicas=9) for name in POOLING]  # 36 slices: two GPUs' worth... of 4 x 8 per node
    plan = plan_of(shared_spec("RTX-4090-24GB", 4, many))
    sharing = plan.pools[0].sharing
    assert sharing is not None and sharing.node_names == ["n0", "n1"]  # 36 slices > 32 on one node
    named = plan_of(shared_spec("RTX-4090-24GB", 4, [pooling("bge-m3")], nodeNames=["n0"]))
    assert named.pools[0].sharing is not None and named.pools[0].sharing.node_names == ["n0"]
    with pytest.raises(SizingError) as error:
        plan_of(shared_spec("RTX-4090-24GB", 4, [pooling("bge-m3")], nodeNames=["n9"]))
    assert error.value.errors == ["pools[0].sharing.nodeNames: n9 not in backend.nodeNames; use nodes of the pool"]


def test_a_cloud_pool_shares_every_node_so_whole_gpu_models_are_refused() -> None:
    config = shared_spec("L4-24GB", 4, [pooling("bge-m3"), {"name": "r1-small", "model": SMALL_GENERATOR,
                                                            "pool": "small", "maxModelLen": 4096}])  # fmt: skip
    config["pools"][0].update(
        gpusPerNode=1, maxNodes=2,
        backend={"kind": "karpenter", "clusterName": "c", "nodeRole": "r"},
    )  # fmt: skip
    with pytest.raises(SizingError) as error:
        plan_of(config)
    assert error.value.errors[0] == (
        "pools[0].sharing: every node of a karpenter pool comes from one template, so all of them share; r1-small "
        "take whole GPUs: move them to a pool without sharing"
    )


def test_pools_without_sharing_plan_as_before() -> None:
    for stack in ("dev", "staging"):
        plan = plan_stack(stack)
        assert all(p.sharing is None for p in plan.pools)
        assert all(m.sharing is None and m.pod.gpu_resource == "nvidia.com/gpu" for m in plan.models)


# ---------------------------------------------------------------- no assignment overflows


@st.composite
def shared_pools(draw: st.DrawFn) -> tuple[ClusterPlan, list[ModelPlan], list[tuple[int, int]]]:
    """A pool of any catalog GPU sharing its GPUs in 2..8 slices, pooling models (and a small generator, whose KV
    cache fills its budget) with replicas, and an assignment of every replica to a free slice of the shared nodes'
    GPUs: either any free slice, or packed (the replicas in any order, each GPU filled before the next), so the
    full GPUs with any mix of tenants, the worst case, are always among the examples."""
    gpu = draw(st.sampled_from(EXISTING_GPUS))
    slices = draw(st.integers(2, 8))
    names = draw(st.lists(st.sampled_from(sorted(POOLING)), min_size=1, max_size=4, unique=True))
    models = [pooling(n, replicas=draw(st.integers(1, 4))) for n in names]
    if draw(st.booleans()):
        models.append({"name": "r1-small", "model": SMALL_GENERATOR, "pool": "small", "maxModelLen": 2048,
                       "replicas": draw(st.integers(1, 8))})  # fmt: skip
    try:
        plan = plan_of(shared_spec(gpu, slices, models, generators=True))
    except SizingError as exc:  # nothing fits this GPU's slices, or a model fits no GPU of it at all
        assert any("fits a slice" in e or "does not fit" in e or "short" in e for e in exc.errors), exc.errors
        return draw(st.nothing())
    sharing = plan.pools[0].sharing
    assert sharing is not None
    gpus = len(sharing.node_names) * 8
    tenants = [m for m in plan.models if m.sharing for _ in range(m.max_replicas)]
    slots = [(g, k) for g in range(gpus) for k in range(slices)]
    if draw(st.booleans()):
        return plan, draw(st.permutations(tenants)), slots[: len(tenants)]  # packed
    return plan, tenants, draw(st.permutations(slots))[: len(tenants)]


@settings(max_examples=80, deadline=None)
@given(shared_pools())
def test_no_assignment_of_slices_overfills_a_gpu_or_fails_vllms_startup_check(
    drawn: tuple[ClusterPlan, list[ModelPlan], list[tuple[int, int]]],
) -> None:
    plan, tenants, slots = drawn
    gpu_gib = load_gpu_catalog()[plan.pools[0].gpu].memory_mib / 1024
    on_gpu: dict[int, list[ModelPlan]] = defaultdict(list)
    for tenant, (gpu, _) in zip(tenants, slots, strict=True):
        on_gpu[gpu].append(tenant)
    for gpu, engines in on_gpu.items():
        held = [footprint(m, gpu_gib) for m in engines]
        assert sum(held) <= gpu_gib, f"GPU {gpu}: {sum(held):.2f} GiB > {gpu_gib:.2f}"
        for i, engine in enumerate(engines):
            # The last to start: its own context is taken, every other engine holds its footprint, and vLLM asks
            # for utilization x total free (vllm/v1/worker/gpu_worker.py 0.13.0, init_device).
            free = gpu_gib - CONTEXT_GIB - (sum(held) - held[i])
            assert free >= flag(engine, "--gpu-memory-utilization") * gpu_gib
    assert math.ceil(len(tenants) / plan.pools[0].sharing.slices_per_gpu) <= plan.pools[0].gpus_used_max  # type: ignore[union-attr]


def test_a_gke_pool_shares_only_under_the_gpu_operators_device_plugin() -> None:
    config = shared_spec("L4-24GB", 4, [pooling("bge-m3")])
    config["pools"][0].update(
        gpusPerNode=1, maxNodes=2, backend={"kind": "gke", "project": "p", "location": "europe-west4", "cluster": "c"}
    )
    with pytest.raises(SizingError) as error:
        plan_of(config)
    assert error.value.errors == [
        "pools[0].sharing: GKE runs its own device plugin on this pool (driverVersion DEFAULT), which reads no GPU "
        "Operator config; set installDriver: true so the GPU Operator's device plugin runs there"
    ]
    config["pools"][0]["installDriver"] = True
    pool = plan_of(config).pools[0]
    assert pool.sharing is not None and pool.sharing.all_nodes and pool.sharing.node_names == []
    # Every node of the GKE pool carries the label that selects the pool's device-plugin config.
    assert isinstance(pool.backend, GkeBackendSpec)
    labels = gke_node_pool_args(pool, pool.backend)["node_config"]["labels"]
    assert labels[CONFIG_LABEL] == pool.sharing.config_name
    config["pools"][0]["sharing"]["nodeNames"] = ["n0"]
    with pytest.raises(SizingError) as error:
        plan_of(config)
    assert error.value.errors == [
        "pools[0].sharing.nodeNames: only for existing nodes; every node of a gke pool shares"
    ]
