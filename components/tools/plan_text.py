"""The capacity plan and a sizing as text: the tables and reasons `plan` and `size` print (or markdown for PRs)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from components.planning.types import ClusterPlan, GpuShape, ModelPlan, Sizing
from components.tools.prediction_text import prediction_lines
from components.tools.sharing_text import sharing_lines
from components.tools.text_layout import TEXT_WIDTH, shell_command, shell_words, table, wrap_line


def _table(headers: list[str], rows: list[list[str]], markdown: bool, width: int | None = None) -> str:
    return table(headers, rows, markdown, width)


def _replicas(model: Any) -> str:
    if model.autoscaling:
        return f"{model.min_replicas}-{model.max_replicas} HPA"
    return f"{model.max_replicas} fixed"


def format_plan(
    plan: ClusterPlan, stack: str, markdown: bool, wide: bool = False, cli: str = "python -m components"
) -> str:
    """The plan for a terminal (fits TEXT_WIDTH: the models in two tables, prose and commands wrapped; `wide`: one
    table and unwrapped lines) or markdown for a PR (one table, as wide as it is)."""
    h = "### " if markdown else ""
    width = None if markdown or wide else TEXT_WIDTH
    # A model on another vLLM release than its stack says so next to the stack's (ModelPlan.vllm_version).
    others = "".join(f"; {m.name} on {m.vllm_version}" for m in plan.models if m.vllm_version != plan.vllm_version)
    title = (
        f"{'## ' if markdown else ''}Capacity plan: stack `{stack}` (vLLM {plan.vllm_version}{others}, "
        f"Kubernetes {plan.kubernetes_version}, namespace `{plan.namespace}`)"
    )
    out = [
        *_prose([title], width),
        "",
        f"{h}Pools",
        _pools_table(plan, markdown, width),
        "",
        f"{h}Models",
        _models_table(plan, markdown, width),
    ]
    if width is not None:
        out += ["", "Memory per GPU and load", _load_table(plan, width)]
    out += prediction_lines(plan, f"{h}Predicted per replica", markdown, width)
    out += ["", f"{h}Decisions", *_prose(_decisions(plan, markdown), width)]
    if plan.warnings:
        out += ["", f"{h}Warnings", *_prose([f"- {w}" for w in plan.warnings], width)]
    out += ["", f"{h}vLLM arguments", *_vllm_arguments(plan, markdown, width)]
    if not markdown:
        out += ["", "Next steps", *_next_steps(stack, width, cli)]
    return "\n".join(x for x in out if x is not None)


def _prose(lines: list[str], width: int | None) -> list[str]:
    """Reasons and warnings: a line longer than `width` continues under its text, two columns further in."""
    out: list[str] = []
    for line in lines:
        text = line.lstrip()
        fits = width is None or len(line) <= width
        out += [line] if fits else wrap_line(text, width, line[: len(line) - len(text)])
    return out


_POOL_HEADERS = ["pool", "gpu", "backend", "nodes", "gpus/node", "nvlink", "p2p", "gpus min/max/total", "nodes min/max"]


def _pools_table(plan: ClusterPlan, markdown: bool, width: int | None) -> str:
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
    return _table(_POOL_HEADERS, rows, markdown, width)


_Cell = Callable[[ModelPlan], str]


def _kv(m: ModelPlan, text: str) -> str:
    return text if m.kv_cache_tokens is not None else "-"


# A model's columns by header. A terminal gets two tables of at most TEXT_WIDTH (capacity, then memory and load,
# both keyed by model name); `--wide` and markdown get one table with every column.
_CAPACITY_COLUMNS: dict[str, _Cell] = {
    "model": lambda m: m.name,
    "pool": lambda m: m.pool,
    "task": lambda m: m.task,
    "tp x pp": lambda m: f"{m.tp}x{m.pp}",
    "gpus/replica": lambda m: (
        (f"1/{m.sharing.slices_per_gpu}" if m.sharing else str(m.gpus_per_replica))
        + (f" ({m.nodes_per_replica} nodes)" if m.nodes_per_replica > 1 else "")
    ),
    "replicas": _replicas,
    "gpus": lambda m: (
        f"{m.min_replicas}-{m.max_replicas} x 1/{m.sharing.slices_per_gpu}"
        if m.sharing
        else f"{m.min_replicas * m.gpus_per_replica}-{m.max_replicas * m.gpus_per_replica}"
    ),
    "dtype": lambda m: m.weight_dtype + (f"/kv {m.kv_cache_dtype}" if m.kv_cache_tokens is not None else ""),
    "max len": lambda m: str(m.max_model_len),
}
_LOAD_COLUMNS: dict[str, _Cell] = {
    "model": lambda m: m.name,
    "weights GiB/gpu": lambda m: f"{m.memory.weights:.1f}",
    "kv GiB/gpu": lambda m: _kv(m, f"{m.memory.kv_cache:.1f}"),
    "kv tokens": lambda m: _kv(m, str(m.kv_cache_tokens)),
    "concurrency": lambda m: f"{m.max_concurrency:.2f}" if m.max_concurrency is not None else "-",
    "HPA target": lambda m: f"{m.autoscaling.target:g} {m.autoscaling.metric}" if m.autoscaling else "-",
}


def _columns_table(plan: ClusterPlan, columns: dict[str, _Cell], markdown: bool, width: int | None) -> str:
    rows = [[cell(m) for cell in columns.values()] for m in plan.models]
    return _table(list(columns), rows, markdown, width)


def _models_table(plan: ClusterPlan, markdown: bool, width: int | None) -> str:
    columns = _CAPACITY_COLUMNS if width is not None else {**_CAPACITY_COLUMNS, **_LOAD_COLUMNS}
    return _columns_table(plan, columns, markdown, width)


def _load_table(plan: ClusterPlan, width: int) -> str:
    return _columns_table(plan, _LOAD_COLUMNS, False, width)


def _decisions(plan: ClusterPlan, markdown: bool) -> list[str]:
    """Each model's reasons (sizing, then workload, pod, cache and HPA) and warnings, under its name."""
    out: list[str] = [
        f"{'- ' if markdown else ''}network: {plan.network.reason}",
        f"{'- ' if markdown else ''}rate limits: {plan.rate_limits.scope}, {plan.rate_limits.reason}",
        *_api_lines(plan, "- " if markdown else ""),
        *_gateway_lines(plan, "- " if markdown else ""),
        *sharing_lines(plan, "- " if markdown else "", "  - " if markdown else "    "),
    ]
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


def _api_lines(plan: ClusterPlan, bullet: str) -> list[str]:
    """How clients reach the API gateway: the Service type, ports and traffic policy, and the URL, each with why."""
    s = plan.api_service
    ports = ", ".join(f"{listener} {port}" for listener, port in s.node_ports.items())
    return [
        f"{bullet}api: Service {s.namespace}/{s.name} {s.type}{f' (node ports {ports})' if ports else ''}: "
        f"{s.type_reason}",
        *([f"{bullet}api traffic policy: {s.external_traffic_policy}, {s.traffic_reason}"]
          if s.external_traffic_policy else []),
        f"{bullet}api url: {s.url} ({s.url_reason})",
    ]  # fmt: skip


def _gateway_lines(plan: ClusterPlan, bullet: str) -> list[str]:
    """The LLM gateway's kind with why and what it costs, and the paths the API gateway sends around it."""
    g = plan.gateway
    return [
        f"{bullet}gateway: {g.kind}, {g.kind_reason}",
        *(f"{bullet}direct route: {', '.join(d.paths)} -> Service {d.model} ({d.reason})" for d in g.direct_routes),
    ]


def _vllm_arguments(plan: ClusterPlan, markdown: bool, width: int | None) -> list[str]:
    """Each model's `vllm serve` command: in a terminal a `# name` line, then the command wrapped with ` \\` to
    fit `width` (it pastes as is); in markdown one line per model, fenced one by one."""
    out: list[str] = []
    for m in plan.models:
        words = shell_words(m.env, ["vllm", "serve", *m.vllm_args])
        if markdown:
            out += ["```", f"{m.name}: {' '.join(words)}", "```"]
        else:
            out += [f"# {m.name}", *shell_command(words, width, head=len(m.env) + 3)]
    return out


def _next_steps(stack: str, width: int | None, cli: str) -> list[str]:
    """What to run after reading the plan, the stack filled in; comments and commands, so the block pastes."""
    quoted = shlex.quote(stack)
    steps = [
        (f"write every Kubernetes object, Helm release and the plan to render/{stack}, offline",
         [*cli.split(), "plan", "--stack", quoted, "--render", shlex.quote(f"render/{stack}")]),
        ("see what `pulumi up` would change in the cluster (needs the stack's backend and kubeconfig)",
         ["pulumi", "preview", "--stack", quoted]),
        ("apply it", ["pulumi", "up", "--stack", quoted]),
    ]  # fmt: skip
    out: list[str] = []
    for why, words in steps:
        out += [f"  # {why}", *shell_command(words, width, head=len(words), indent="  ")]
    return out


def format_sizing(s: Sizing, shape: GpuShape, markdown: bool = False, wide: bool = False) -> str:
    """One model on one GPU shape: the decision, the memory per GPU, the command and the reasons."""
    width = None if markdown or wide else TEXT_WIDTH
    m = s.memory
    facts = [
        f"TP {s.tp} x PP {s.pp} = {s.gpus_per_replica} GPU(s) on {s.nodes_per_replica} node(s), "
        f"{s.objective} objective",
        f"per GPU (GiB): usable {m.usable:.2f} = weights {m.weights:.2f} + activation {m.activation:.2f} "
        f"+ non-torch {m.non_torch:.2f} "
        + (f"+ CUDA graphs {m.cuda_graphs:.2f} " if m.cuda_graphs else "")
        + f"+ KV cache {m.kv_cache:.2f} (needs {m.kv_needed:.2f})",
        f"batch limits: max_num_seqs {s.max_num_seqs}, max_num_batched_tokens {s.max_num_batched_tokens} "
        f"(activation {m.activation:.2f} GiB per GPU)",
    ]
    if s.kv_cache_tokens is not None and s.fits:
        facts.append(
            f"KV cache: {s.kv_cache_tokens} tokens, max concurrency {s.max_concurrency}x at {s.max_model_len} tokens"
        )
    title = (
        f"{s.model} on {shape.gpu_id} ({shape.gpus_per_node} per node, NVLink domain {shape.nvlink_domain}, "
        f"p2p {'yes' if shape.peer_to_peer else 'no'}): {'FITS' if s.fits else 'DOES NOT FIT'}"
    )
    words = shell_words(s.env, ["vllm", "serve", *s.vllm_args])
    if markdown:
        lines = [f"## {title}", "", *[f"- {f}" for f in facts], "", "```", " ".join(words), "```", "", "### Why"]
        lines += [f"- {r}" for r in s.reasons]
        if s.warnings:
            lines += ["", "### Warnings", *[f"- {w}" for w in s.warnings]]
        return "\n".join(lines)
    lines = [*_prose([title], width), *_prose([f"  {f}" for f in facts], width)]
    lines += shell_command(words, width, head=len(s.env) + 3, indent="  ")
    lines += ["  why:", *_prose([f"    - {r}" for r in s.reasons], width)]
    if s.warnings:
        lines += ["  warnings:", *_prose([f"    - {w}" for w in s.warnings], width)]
    return "\n".join(lines)
