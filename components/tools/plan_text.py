"""The capacity plan and a sizing as text: the tables and reasons `plan` and `size` print (or markdown for PRs)."""

from __future__ import annotations

import shlex
from typing import Any

from components.planning.types import ClusterPlan, GpuShape, Sizing


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in [headers, *rows])


def _replicas(model: Any) -> str:
    if model.autoscaling:
        return f"{model.min_replicas}-{model.max_replicas} (HPA {model.autoscaling.metric})"
    return f"{model.max_replicas} fixed"


def format_plan(plan: ClusterPlan, stack: str, markdown: bool) -> str:
    h = "### " if markdown else ""
    out = [
        f"{'## ' if markdown else ''}Capacity plan: stack `{stack}` (vLLM {plan.vllm_version}, "
        f"Kubernetes {plan.kubernetes_version}, namespace `{plan.namespace}`)",
        "",
        f"{h}Pools",
        _pools_table(plan, markdown),
        "",
        f"{h}Models",
        _models_table(plan, markdown),
        "",
        f"{h}Decisions",
        *_decisions(plan, markdown),
    ]
    if plan.warnings:
        out += ["", f"{h}Warnings", *[f"- {w}" for w in plan.warnings]]
    out += ["", f"{h}vLLM arguments", *_vllm_arguments(plan, markdown)]
    return "\n".join(x for x in out if x is not None)


_POOL_HEADERS = ["pool", "gpu", "backend", "nodes", "gpus/node", "nvlink", "p2p", "gpus min/max/total", "nodes min/max"]


def _pools_table(plan: ClusterPlan, markdown: bool) -> str:
    rows = [
        [
            p.name,
            p.gpu,
            p.backend.kind
            + "".join(f" {t}" for t in p.instance_types[:1])
            + (f" +{len(p.instance_types) - 1}" if len(p.instance_types) > 1 else ""),
            f"{p.min_nodes}-{p.max_nodes}" if p.min_nodes != p.max_nodes else str(p.max_nodes),
            str(p.gpus_per_node),
            str(p.nvlink_domain),
            "yes" if p.peer_to_peer else "no",
            f"{p.gpus_used_min} / {p.gpus_used_max} / {p.gpus_total}",
            f"{p.nodes_used_min} / {p.nodes_used_max}",
        ]
        for p in plan.pools
    ]
    return _table(_POOL_HEADERS, rows, markdown)


_MODEL_HEADERS = ["model", "pool", "task", "tp x pp", "gpus/replica", "replicas", "gpus", "dtype", "max len",
                  "weights GiB/gpu", "kv GiB/gpu", "kv tokens", "concurrency"]  # fmt: skip


def _models_table(plan: ClusterPlan, markdown: bool) -> str:
    rows = [
        [
            m.name,
            m.pool,
            m.task,
            f"{m.tp}x{m.pp}",
            str(m.gpus_per_replica) + (f" ({m.nodes_per_replica} nodes)" if m.nodes_per_replica > 1 else ""),
            _replicas(m),
            f"{m.min_replicas * m.gpus_per_replica}-{m.max_replicas * m.gpus_per_replica}",
            m.weight_dtype + ("/kv " + m.kv_cache_dtype if m.kv_cache_tokens is not None else ""),
            str(m.max_model_len),
            f"{m.memory.weights:.1f}",
            f"{m.memory.kv_cache:.1f}" if m.kv_cache_tokens is not None else "-",
            str(m.kv_cache_tokens) if m.kv_cache_tokens is not None else "-",
            f"{m.max_concurrency:.2f}" if m.max_concurrency is not None else "-",
        ]
        for m in plan.models
    ]
    return _table(_MODEL_HEADERS, rows, markdown)


def _decisions(plan: ClusterPlan, markdown: bool) -> list[str]:
    """Each model's reasons (sizing, then workload, pod, cache and HPA) and warnings, under its name."""
    out: list[str] = [f"{'- ' if markdown else ''}network: {plan.network.reason}"]
    for m in plan.models:
        out.append(f"{'- **' if markdown else ''}{m.name}{'**' if markdown else ''} ({m.model})")
        serving = [
            f"{m.workload}: {m.workload_reason}",
            *m.pod.reasons,
            f"weights cache: {m.cache.access_mode} {m.cache.size_gib} GiB ({m.cache.reason})",
            f"weights download: {m.cache.download} ({m.cache.download_reason})",
        ]
        if m.autoscaling:
            serving.append(f"HPA target {m.autoscaling.target:g} {m.autoscaling.metric}: {m.autoscaling.target_reason}")
        out += [f"{'  - ' if markdown else '    '}{r}" for r in [*m.reasons, *serving]]
        if m.warnings:
            out += [f"{'  - ' if markdown else '    '}warning: {w}" for w in m.warnings]
    return out


def _vllm_arguments(plan: ClusterPlan, markdown: bool) -> list[str]:
    """Each model's `vllm serve` command line; fenced one by one in markdown."""
    out: list[str] = []
    fence = "```" if markdown else ""
    for m in plan.models:
        env = " ".join(f"{k}={v}" for k, v in m.env.items())
        line = f"{m.name}: {env + ' ' if env else ''}vllm serve {shlex.join(m.vllm_args)}"
        out += [fence, line, fence] if markdown else [line]
    return out


def format_sizing(s: Sizing, shape: GpuShape) -> str:
    m = s.memory
    lines = [
        f"{s.model} on {shape.gpu_id} ({shape.gpus_per_node} per node, NVLink domain {shape.nvlink_domain}, "
        f"p2p {'yes' if shape.peer_to_peer else 'no'}): {'FITS' if s.fits else 'DOES NOT FIT'}",
        f"  TP {s.tp} x PP {s.pp} = {s.gpus_per_replica} GPU(s) on {s.nodes_per_replica} node(s), "
        f"{s.objective} objective",
        f"  per GPU (GiB): usable {m.usable:.2f} = weights {m.weights:.2f} + activation {m.activation:.2f} "
        f"+ non-torch {m.non_torch:.2f} + KV cache {m.kv_cache:.2f} (needs {m.kv_needed:.2f})",
    ]
    if s.kv_cache_tokens is not None and s.fits:
        lines.append(
            f"  KV cache: {s.kv_cache_tokens} tokens, max concurrency {s.max_concurrency}x at {s.max_model_len} tokens"
        )
    env = " ".join(f"{k}={v}" for k, v in s.env.items())
    lines.append(f"  {env + ' ' if env else ''}vllm serve {shlex.join(s.vllm_args)}")
    lines += ["  why:", *[f"    - {r}" for r in s.reasons]]
    if s.warnings:
        lines += ["  warnings:", *[f"    - {w}" for w in s.warnings]]
    return "\n".join(lines)


# ---------------------------------------------------------------- commands
