"""What moving models to another vLLM release changes, for the capacity diff: per model whose release changes, the
`vllm serve` arguments and environment added and removed, memory per GPU, KV-cache tokens, and the metric names
the new release drops or adds (components/planning/engine_versions.py).

Pure: two ClusterPlans in, data and lines out.
"""

from __future__ import annotations

from typing import Any

from components.planning.engine_versions import engine_version, metric_changes
from components.planning.types import ClusterPlan, ModelPlan

MEMORY_FIELDS = ("usable", "weights", "activation", "non_torch", "cuda_graphs", "kv_cache")


def _flag_words(args: list[str]) -> list[str]:
    """Arguments as `--flag value` items, so a changed value reads as one item removed and one added."""
    items: list[str] = []
    for word in args[1:]:  # the model id first
        if word.startswith("-") or not items:
            items.append(word)
        else:
            items[-1] += f" {word}"
    return items


def model_engine_change(old: ModelPlan, new: ModelPlan) -> dict[str, Any]:
    before, after = _flag_words(old.vllm_args), _flag_words(new.vllm_args)
    old_env, new_env = old.env, new.env
    gone, added = metric_changes(engine_version(old.vllm_version), engine_version(new.vllm_version))
    return {
        "name": new.name,
        "vllm": {"before": old.vllm_version, "after": new.vllm_version},
        "image": {"before": old.image, "after": new.image},
        "args_removed": [a for a in before if a not in after],
        "args_added": [a for a in after if a not in before],
        "env_removed": sorted(f"{k}={v}" for k, v in old_env.items() if new_env.get(k) != v),
        "env_added": sorted(f"{k}={v}" for k, v in new_env.items() if old_env.get(k) != v),
        "memory_gib": {
            f: {"before": getattr(old.memory, f), "after": getattr(new.memory, f)}
            for f in MEMORY_FIELDS
            if getattr(old.memory, f) != getattr(new.memory, f)
        },
        "kv_cache_tokens": {"before": old.kv_cache_tokens, "after": new.kv_cache_tokens},
        "metrics_removed": gone,
        "metrics_added": added,
    }


def engine_changes(before: ClusterPlan | None, after: ClusterPlan) -> list[dict[str, Any]]:
    """One entry per model present on both sides whose vLLM release changes."""
    if before is None:
        return []
    old = {m.name: m for m in before.models}
    return [
        model_engine_change(old[m.name], m)
        for m in after.models
        if m.name in old and old[m.name].vllm_version != m.vllm_version
    ]


def _arrow(pair: dict[str, Any]) -> str:
    return f"{pair['before']} → {pair['after']}"


def format_engine_changes(changes: list[dict[str, Any]], markdown: bool) -> list[str]:
    code = "`" if markdown else ""
    lines: list[str] = []
    for c in changes:
        lines.append(f"- {code}{c['name']}{code}: vLLM {_arrow(c['vllm'])} (image {code}{c['image']['after']}{code})")
        for key, label in (("args_removed", "arguments removed"), ("args_added", "arguments added"),
                           ("env_removed", "environment removed"), ("env_added", "environment added"),
                           ("metrics_removed", "metrics read that it no longer exports"),
                           ("metrics_added", "metrics read under new names")):  # fmt: skip
            if c[key]:
                lines.append(f"  - {label}: " + ", ".join(f"{code}{v}{code}" for v in c[key]))
        if not (c["metrics_removed"] or c["metrics_added"]):
            lines.append("  - metrics the dashboards, alerts, HPA adapter and preStop drain read: same names")
        memory = ", ".join(f"{f} {_arrow(v)}" for f, v in c["memory_gib"].items())
        lines.append(f"  - memory GiB/GPU: {memory or 'unchanged'}; KV tokens {_arrow(c['kv_cache_tokens'])}")
    return lines
