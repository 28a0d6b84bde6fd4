"""What a change to a stack does to GPU capacity: models added, removed and changed, GPUs per pool before and after.

Pure: two ClusterPlans in, markdown out (the PR comment). The CLI finds the base plan in a file or a git ref.
"""

from __future__ import annotations

from components.planning.types import ClusterPlan, ModelPlan, PoolPlan

# What a reviewer judges capacity by, with the column each lands in.
MODEL_FIELDS = {
    "model": "checkpoint",
    "pool": "pool",
    "tp_pp": "TP x PP",
    "gpus_per_replica": "GPUs/replica",
    "replicas": "replicas",
    "gpus": "GPUs",
    "max_model_len": "max len",
    "dtype": "dtype",
}


def model_facts(m: ModelPlan) -> dict[str, str]:
    replicas = f"{m.min_replicas}-{m.max_replicas}" if m.autoscaling else f"{m.max_replicas}"
    return {
        "model": m.model,
        "pool": m.pool,
        "tp_pp": f"{m.tp}x{m.pp}",
        "gpus_per_replica": str(m.gpus_per_replica),
        "replicas": replicas,
        "gpus": f"{m.min_replicas * m.gpus_per_replica}-{m.max_replicas * m.gpus_per_replica}",
        "max_model_len": str(m.max_model_len),
        "dtype": f"{m.weight_dtype}/kv {m.kv_cache_dtype}" if m.kv_cache_tokens is not None else m.weight_dtype,
    }


def pool_facts(p: PoolPlan) -> dict[str, str]:
    return {
        "gpu": f"{p.gpu} x{p.gpus_per_node}",
        "nodes": f"{p.min_nodes}-{p.max_nodes}" if p.min_nodes != p.max_nodes else str(p.max_nodes),
        "total": str(p.gpus_total),
        "used_min": str(p.gpus_used_min),
        "used_max": str(p.gpus_used_max),
    }


def _arrow(before: str | None, after: str | None) -> str:
    if before == after:
        return after or ""
    return f"{before or '-'} → {after or '-'}"


def diff_plans(before: ClusterPlan | None, after: ClusterPlan, stack: str, base: str) -> str:
    """Markdown for a PR comment. `before` is None when the stack did not exist at the base."""
    old = {m.name: model_facts(m) for m in before.models} if before else {}
    new = {m.name: model_facts(m) for m in after.models}
    lines = [f"## Capacity diff: stack `{stack}` (base `{base}`)", ""]
    rows = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        change = "added" if a is None else "removed" if b is None else "changed"
        cells = [_arrow((a or {}).get(k), (b or {}).get(k)) for k in MODEL_FIELDS]
        rows.append(f"| `{name}` | {change} | " + " | ".join(cells) + " |")
    if rows:
        lines += [
            "| model | change | " + " | ".join(MODEL_FIELDS.values()) + " |",
            "|---|---|" + "---|" * len(MODEL_FIELDS),
        ]
        lines += rows
    else:
        lines.append("No model changes.")

    old_pools = {p.name: pool_facts(p) for p in before.pools} if before else {}
    new_pools = {p.name: pool_facts(p) for p in after.pools}
    lines += [
        "",
        "### GPUs per pool",
        "",
        "| pool | GPU x per node | nodes | GPUs total | used at min replicas | used at max replicas |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(old_pools.keys() | new_pools.keys()):
        a, b = old_pools.get(name, {}), new_pools.get(name, {})
        cells = [_arrow(a.get(k), b.get(k)) for k in ("gpu", "nodes", "total", "used_min", "used_max")]
        marker = " (added)" if not a else " (removed)" if not b else ""
        lines.append(f"| `{name}`{marker} | " + " | ".join(cells) + " |")
    total = (sum(p.gpus_used_max for p in before.pools) if before else 0, sum(p.gpus_used_max for p in after.pools))
    lines += ["", f"GPUs used at max replicas, all pools: {_arrow(str(total[0]), str(total[1]))}"]
    losses = data_changes(before, after) if before else []
    lines += ["", "### Data", ""] + ([f"- {line}" for line in losses] or ["Nothing replaced or deleted."])
    return "\n".join(lines) + "\n"


def _guard(protected: bool, name: str) -> str:
    if protected:
        return f"protected: `pulumi up` refuses it until `allowDataLoss: [{name}]` is set for this change"
    return f"allowed for this change by allowDataLoss ({name}); remove it afterwards"


def data_changes(before: ClusterPlan, after: ClusterPlan) -> list[str]:
    """What the change would replace or delete that holds data: weights caches, the namespace, monitoring."""
    out: list[str] = []
    if before.namespace != after.namespace:
        out.append(
            f"namespace `{before.namespace}` → `{after.namespace}`: the old one is deleted with every claim and "
            f"Secret in it; {_guard(after.protect_namespace, 'namespace')}"
        )
    if before.monitoring.enabled and not after.monitoring.enabled:
        out.append(
            "monitoring disabled: its namespace, release and the Prometheus, Alertmanager and Grafana volumes are "
            f"deleted; {_guard(after.protect_monitoring, 'monitoring')}"
        )
    new = {m.name: m for m in after.models}
    for old in before.models:
        if old.cache.kind != "shared":
            continue
        claim = f"weights cache `{old.name}-cache` ({old.cache.size_gib} GiB)"
        m = new.get(old.name)
        if m is None or m.cache.kind != "shared":
            protected = old.cache.protect if m is None else m.cache.protect
            out.append(f"{claim} deleted; {_guard(protected, old.name)}")
        elif (old.cache.access_mode, old.cache.storage_class) != (m.cache.access_mode, m.cache.storage_class):
            out.append(
                f"{claim} replaced ({old.cache.access_mode} {old.cache.storage_class or '-'} → "
                f"{m.cache.access_mode} {m.cache.storage_class or '-'}); the weights download again; "
                f"{_guard(m.cache.protect, old.name)}"
            )
        elif m.cache.size_gib < old.cache.size_gib:
            out.append(f"{claim} would shrink to {m.cache.size_gib} GiB: Kubernetes refuses to shrink a claim")
    return out
