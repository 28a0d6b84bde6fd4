"""Shared GPUs (components/planning/sharing.py): a pod on a slice of a time-sliced GPU asks for exactly one slice
and no whole GPU, runs one engine on one GPU, and keeps its gpu_memory_utilization within its slice, so any
`slices` such engines fit one GPU whatever the device plugin assigns (the plan's numbers, annotated on the pod)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stack_resources import Resource, containers, flag_value, number, pod_templates, where

from components.labels import (
    GPU_MEMORY_ANNOTATION,
    GPU_RESOURCE,
    GPU_SLICES_ANNOTATION,
    SHARED_GPU_RESOURCE,
    SLICE_MARGIN_ANNOTATION,
)


def _slice_violations(at: str, container: Mapping[str, Any], notes: Mapping[str, Any]) -> list[str]:
    args = [str(a) for a in container.get("args") or []]
    slices, total = number(notes.get(GPU_SLICES_ANNOTATION)), number(notes.get(GPU_MEMORY_ANNOTATION))
    margin = number(notes.get(SLICE_MARGIN_ANNOTATION))
    if not (slices >= 2 and total > 0 and margin > 0):
        return [
            f"{at}: a {SHARED_GPU_RESOURCE} pod without the plan's {GPU_SLICES_ANNOTATION}, {GPU_MEMORY_ANNOTATION} "
            f"and {SLICE_MARGIN_ANNOTATION} annotations; the slice bound cannot be checked"
        ]
    problems = []
    tp, pp = flag_value(args, "--tensor-parallel-size"), flag_value(args, "--pipeline-parallel-size")
    gpus = number(tp or 1) * number(pp or 1)
    if gpus != 1:
        problems.append(f"{at}: TP x PP = {gpus:g} on a slice of one GPU; an engine on a slice runs on one GPU")
    utilization = number(flag_value(args, "--gpu-memory-utilization") or 0.9)
    packed = slices * (utilization * total + margin)
    if not packed <= total:
        problems.append(
            f"{at}: gpu-memory-utilization {utilization:g} overcommits its 1/{slices:g} slice: {slices:g} engines x "
            f"({utilization:g} x {total:g} GiB + {margin:g} GiB margin) = {packed:.2f} GiB > {total:g} GiB; "
            f"use at most {(total / slices - margin) / total:.3f}"
        )
    return problems


def shared_gpus_hold_their_slices(resource: Resource) -> list[str]:
    """A pod on a shared GPU requests one slice (request = limit = 1) and no whole GPU, and its engine's memory
    fraction leaves room for every other tenant of the GPU (slices x (fraction x GPU + margin) <= GPU)."""
    violations = []
    for role, template in pod_templates(resource):
        notes = (template.get("metadata") or {}).get("annotations") or {}
        for c in containers(template):
            at = f"{where(resource, role)}/{c.get('name')}"
            resources = c.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            if SHARED_GPU_RESOURCE not in requests and SHARED_GPU_RESOURCE not in limits:
                continue
            request, limit = requests.get(SHARED_GPU_RESOURCE), limits.get(SHARED_GPU_RESOURCE)
            if not (str(request) == str(limit) == "1"):
                violations.append(
                    f"{at}: {SHARED_GPU_RESOURCE} request {request}, limit {limit}; a pod takes exactly one slice "
                    "(the device plugin refuses more: failRequestsGreaterThanOne)"
                )
            if GPU_RESOURCE in requests or GPU_RESOURCE in limits:
                violations.append(
                    f"{at}: requests whole GPUs ({GPU_RESOURCE}) beside a slice; a shared model takes none"
                )
            violations += _slice_violations(at, c, notes)
    return violations
