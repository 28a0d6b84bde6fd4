"""Shared-GPU rule (policy/sharing_rules.py): prod's pods on slices pass; each way to break a slice fails."""

from __future__ import annotations

from typing import Any

from tests.policy.rendered import container, first, mutate, pod_spec, resources, vllm

from rules import RESOURCE_RULES  # isort: skip (policy/ on sys.path, set by rendered)

SLICES = RESOURCE_RULES["shared-gpus-hold-their-slices"]
TAINTS = RESOURCE_RULES["only-gpu-pods-tolerate-gpu-taints"]
SHARED = "nvidia.com/gpu.shared"


def bge() -> Any:
    return first("prod", "Deployment", "bge-m3")


def set_utilization(value: str) -> Any:
    def change(props: dict[str, Any]) -> None:
        args = container(props)["args"]
        args[args.index("--gpu-memory-utilization") + 1] = value

    return change


def test_every_pod_on_a_slice_in_prod_holds_its_slice() -> None:
    shared = [r for r in resources("prod") if SHARED in str(r.props)]
    assert {r.object_name for r in shared if r.kind == "Deployment"} == {
        "multilingual-e5-large", "bge-m3", "nomic-embed-text-v1", "bge-reranker-v2-m3"
    }  # fmt: skip
    assert [v for r in shared for v in SLICES(r) + TAINTS(r)] == []
    assert SLICES(vllm()) == []  # whole-GPU pods are not this rule's business


def test_a_fraction_past_the_slice_is_refused_with_the_most_it_may_be() -> None:
    assert SLICES(mutate(bge(), set_utilization("0.24"))) == [
        "bge-m3/vllm: gpu-memory-utilization 0.24 overcommits its 1/4 slice: 4 engines x (0.24 x 23.988 GiB + "
        "1.647 GiB margin) = 29.62 GiB > 23.988 GiB; use at most 0.181"
    ]


def test_a_shared_model_takes_one_slice_and_no_whole_gpu() -> None:
    def two_slices(props: dict[str, Any]) -> None:
        for part in ("requests", "limits"):
            container(props)["resources"][part][SHARED] = "2"

    def plus_whole_gpu(props: dict[str, Any]) -> None:
        container(props)["resources"]["limits"]["nvidia.com/gpu"] = "1"

    assert SLICES(mutate(bge(), two_slices)) == [
        "bge-m3/vllm: nvidia.com/gpu.shared request 2, limit 2; a pod takes exactly one slice (the device plugin "
        "refuses more: failRequestsGreaterThanOne)"
    ]
    assert SLICES(mutate(bge(), plus_whole_gpu)) == [
        "bge-m3/vllm: requests whole GPUs (nvidia.com/gpu) beside a slice; a shared model takes none"
    ]


def test_a_slice_without_the_plans_numbers_or_on_two_gpus_is_refused() -> None:
    bare = mutate(bge(), lambda p: p["spec"]["template"]["metadata"].pop("annotations"))
    (problem,) = SLICES(bare)
    assert "without the plan's llm-cluster.io/gpu-slices" in problem

    def tp2(props: dict[str, Any]) -> None:
        args = container(props)["args"]
        args[args.index("--tensor-parallel-size") + 1] = "2"

    assert SLICES(mutate(bge(), tp2)) == [
        "bge-m3/vllm: TP x PP = 2 on a slice of one GPU; an engine on a slice runs on one GPU"
    ]


def test_a_slice_counts_as_a_gpu_for_the_gpu_taint() -> None:
    assert TAINTS(bge()) == []
    no_gpu = mutate(bge(), lambda p: container(p)["resources"]["limits"].pop(SHARED))
    assert pod_spec(dict(no_gpu.props))["tolerations"] and TAINTS(no_gpu) == [
        "bge-m3: tolerates the GPU taint but requests no GPU"
    ]
