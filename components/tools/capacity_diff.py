"""What a change to a stack does to GPU capacity: models added, removed and changed, GPUs per pool before and after.

Pure: two ClusterPlans in; markdown (the PR comment), text tables or JSON out. The CLI finds the base plan in a file or
a git ref.
"""

from __future__ import annotations

from typing import Any

from components.planning.types import ClusterPlan, ModelPlan, PoolPlan
from components.tools.engine_diff import engine_changes, format_engine_changes
from components.tools.text_layout import table, wrap_line

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
    "vllm": "vLLM",
    "predicted": "TTFT/ITL ms, tok/s",
}


def model_facts(m: ModelPlan) -> dict[str, str]:
    replicas = f"{m.min_replicas}-{m.max_replicas}" if m.autoscaling else f"{m.max_replicas}"
    gpus = f"{m.min_replicas * m.gpus_per_replica}-{m.max_replicas * m.gpus_per_replica}"
    share = f"1/{m.sharing.slices_per_gpu}" if m.sharing else ""  # a slice of a shared GPU per replica
    return {
        "model": m.model,
        "pool": m.pool,
        "tp_pp": f"{m.tp}x{m.pp}",
        "gpus_per_replica": share or str(m.gpus_per_replica),
        "replicas": replicas,
        "gpus": f"{m.min_replicas}-{m.max_replicas} x {share}" if share else gpus,
        "max_model_len": str(m.max_model_len),
        "dtype": f"{m.weight_dtype}/kv {m.kv_cache_dtype}" if m.kv_cache_tokens is not None else m.weight_dtype,
        "vllm": m.vllm_version,
        # Per replica, as the plan predicts it (components/planning/layout_choice.py); "-" where not predicted.
        "predicted": (
            f"{m.prediction.ttft_ms:.0f}/{m.prediction.itl_ms:.1f}, {m.prediction.output_tokens_per_s:.0f}"
            if m.prediction
            else "-"
        ),
    }


def pool_facts(p: PoolPlan) -> dict[str, str]:
    return {
        "gpu": f"{p.gpu} x{p.gpus_per_node}",
        "nodes": f"{p.min_nodes}-{p.max_nodes}" if p.min_nodes != p.max_nodes else str(p.max_nodes),
        "total": str(p.gpus_total),
        "used_min": str(p.gpus_used_min),
        "used_max": str(p.gpus_used_max),
    }


def _arrow(before: str | None, after: str | None, tight: bool = False) -> str:
    """`before → after`; `tight` (text tables) writes short values as one word, `2x1→4x1`, which wrapping keeps."""
    if before == after:
        return after or ""
    a, b = before or "-", after or "-"
    return f"{a}→{b}" if tight and len(a) + len(b) <= 20 else f"{a} → {b}"


_POOL_FIELDS = {
    "gpu": "GPU x per node",
    "nodes": "nodes",
    "total": "GPUs total",
    "used_min": "used at min replicas",
    "used_max": "used at max replicas",
}


def diff_data(before: ClusterPlan | None, after: ClusterPlan, stack: str, base: str) -> dict[str, Any]:
    """The diff as data (`--format json`): changed models and every pool with their facts before and after (None
    where absent), GPUs used at max replicas, and what the change would replace or delete that holds data."""
    old = {m.name: model_facts(m) for m in before.models} if before else {}
    new = {m.name: model_facts(m) for m in after.models}
    models = [
        {"name": name, "change": "added" if a is None else "removed" if b is None else "changed", "before": a,
         "after": b}
        for name in sorted(old.keys() | new.keys())
        if (a := old.get(name)) != (b := new.get(name))
    ]  # fmt: skip
    old_pools = {p.name: pool_facts(p) for p in before.pools} if before else {}
    new_pools = {p.name: pool_facts(p) for p in after.pools}
    pools = []
    for name in sorted(old_pools.keys() | new_pools.keys()):
        a, b = old_pools.get(name), new_pools.get(name)
        change = "added" if a is None else "removed" if b is None else "changed" if a != b else "same"
        pools.append({"name": name, "change": change, "before": a, "after": b})
    return {
        "stack": stack,
        "base": base,
        "base_has_stack": before is not None,
        "models": models,
        "pools": pools,
        "gpus_used_max": {
            "before": sum(p.gpus_used_max for p in before.pools) if before else 0,
            "after": sum(p.gpus_used_max for p in after.pools),
        },
        "data": data_changes(before, after) if before else [],
        "engine": engine_changes(before, after),
    }


def _cells(row: dict[str, Any], fields: dict[str, str], markdown: bool) -> list[str]:
    """Each field as `before → after`; in text an added or removed row shows the one side it has."""
    before, after = row["before"] or {}, row["after"] or {}
    if not markdown and not (before and after):
        return [(before or after).get(k, "") for k in fields]
    return [_arrow(before.get(k), after.get(k), tight=not markdown) for k in fields]


def diff_plans(before: ClusterPlan | None, after: ClusterPlan, stack: str, base: str) -> str:
    """Markdown for a PR comment. `before` is None when the stack did not exist at the base."""
    return format_diff(diff_data(before, after, stack, base), markdown=True)


def format_diff(diff: dict[str, Any], markdown: bool, width: int | None = None) -> str:
    """The diff as markdown (the PR comment) or as text tables that fit `width`."""
    code = "`" if markdown else ""
    h = "### " if markdown else ""
    lines = [f"{'## ' if markdown else ''}Capacity diff: stack `{diff['stack']}` (base `{diff['base']}`)", ""]
    # Text tables must fit the terminal: there the release is in "vLLM release changes" below, not a column, and
    # the predictions are a table of their own.
    fields = MODEL_FIELDS if markdown else {k: v for k, v in MODEL_FIELDS.items() if k not in ("vllm", "predicted")}
    rows = [[f"{code}{m['name']}{code}", m["change"], *_cells(m, fields, markdown)] for m in diff["models"]]
    if rows:
        lines.append(table(["model", "change", *fields.values()], rows, markdown, width))
    else:
        lines.append("No model changes.")
    pool_rows = [
        [f"{code}{p['name']}{code}" + (f" ({p['change']})" if p["change"] in ("added", "removed") else ""),
         *_cells(p, _POOL_FIELDS, markdown)]
        for p in diff["pools"]
    ]  # fmt: skip
    predicted = [[m["name"], *_cells(m, {"predicted": ""}, False)] for m in diff["models"]]
    if predicted and not markdown:
        lines += ["", "Predicted per replica", table(["model", MODEL_FIELDS["predicted"]], predicted, False, width)]
    lines += ["", f"{h}GPUs per pool", *([""] if markdown else [])]
    lines.append(table(["pool", *_POOL_FIELDS.values()], pool_rows, markdown, width))
    total = diff["gpus_used_max"]
    lines += ["", f"GPUs used at max replicas, all pools: {_arrow(str(total['before']), str(total['after']))}"]
    if diff["engine"]:
        lines += ["", f"{h}vLLM release changes", *([""] if markdown else [])]
        for line in format_engine_changes(diff["engine"], markdown):
            text = line.lstrip()
            # Continuations flush with the bullet: an argument's JSON value is one word of up to ~118 columns.
            lines += wrap_line(text, width, indent=line[: len(line) - len(text)], hanging="")
    lines += ["", f"{h}Data", *([""] if markdown else [])]
    lines += [f"- {line}" for line in diff["data"]] or ["Nothing replaced or deleted."]
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
