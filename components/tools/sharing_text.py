"""The `plan` lines of a pool that shares GPUs: physical GPUs used with and without sharing, its nodes and
strategy with why, and why each of its models is or is not on a slice."""

from __future__ import annotations

from components.planning.types import ClusterPlan


def sharing_lines(plan: ClusterPlan, bullet: str, indent: str) -> list[str]:
    out: list[str] = []
    for pool in plan.pools:
        s = pool.sharing
        if s is None:
            continue
        nodes = "every node of the pool" if s.all_nodes else f"node(s) {', '.join(s.node_names)}"
        out += [
            f"{bullet}sharing on pool {pool.name}: {s.slices_per_gpu} {s.resource} slices per GPU on {nodes} "
            f"({s.nodes_reason}); physical GPUs used at min / max replicas: {pool.gpus_used_min} / "
            f"{pool.gpus_used_max} with sharing, {s.gpus_used_min_unshared} / {s.gpus_used_max_unshared} without "
            f"(saves {s.gpus_used_min_unshared - pool.gpus_used_min} / {s.gpus_used_max_unshared - pool.gpus_used_max}"
            f"); {s.slices_min} / {s.slices_max} slices counted as whole GPUs, rounded up",
            f"{indent}strategy: {s.strategy_reason}",
            *(f"{indent}{reason}" for reason in s.reasons),
        ]
    return out
