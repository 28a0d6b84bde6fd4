"""`python -m components size|plan`: size one model, or print a stack's capacity plan, offline.

Exit codes: 0 fits / plan printed; 1 bad input (the message names the field or flag and the fix);
2 the model fits nothing (`size`, one line saying what would).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import yaml

from components.catalog import CatalogError, ModelArch, load_gpu_catalog, load_hf_config, load_model_catalog
from components.planning.sizing import size_model
from components.planning.types import CLI_MAX_NODES, ClusterPlan, GpuShape, Sizing, SizingRequest
from components.spec import SpecError, load_cluster_spec
from components.stacks import (
    PROJECT_DIR,
    StackFileError,
    cluster_config,
    load_stack,
    plan_for,
    read_stack_config,
    stack_file,
)
from components.tools.capacity_diff import diff_plans

DEFAULT_GPUS_PER_NODE = 8


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


# ---------------------------------------------------------------- rendering the plan


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
    out: list[str] = []
    for m in plan.models:
        out.append(f"{'- **' if markdown else ''}{m.name}{'**' if markdown else ''} ({m.model})")
        serving = [
            f"{m.workload}: {m.workload_reason}",
            *m.pod.reasons,
            f"weights cache: {m.cache.access_mode} {m.cache.size_gib} GiB ({m.cache.reason})",
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


def _positive(kind: type, name: str) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name}: must be > 0, got {text}")
        return value

    return parse


def _rope(text: str) -> float:
    kind, _, factor = text.partition(":")
    try:
        value = float(factor)
    except ValueError:
        value = 0.0
    if kind != "yarn" or value <= 1:
        raise argparse.ArgumentTypeError(f"--rope-scaling: {text!r}; write yarn:<factor>, e.g. yarn:4")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m components", description=__doc__.split("\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    size = sub.add_parser("size", help="size one model on one GPU shape")
    model = size.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", help="catalog model id (or an HF id together with --config)")
    model.add_argument("--config", type=Path, help="path to an HF config.json")
    size.add_argument("--params-b", type=_positive(float, "--params-b"), help="published parameter count, billions")
    size.add_argument("--gpu", help="catalog GPU id, e.g. H100-SXM-80GB")
    size.add_argument("--gpu-memory-gib", type=_positive(float, "--gpu-memory-gib"), help="GPU memory, GiB")
    size.add_argument("--gpus-per-node", type=_positive(int, "--gpus-per-node"))
    size.add_argument("--nvlink-domain", type=_positive(int, "--nvlink-domain"))
    size.add_argument("--no-p2p", action="store_true", help="GPUs without working peer-to-peer")
    size.add_argument(
        "--nodes",
        type=_positive(int, "--nodes"),
        default=CLI_MAX_NODES,
        help=f"most nodes one replica may span (default {CLI_MAX_NODES})",
    )
    size.add_argument("--task", choices=["generate", "embed", "score"])
    size.add_argument("--max-model-len", type=_positive(int, "--max-model-len"))
    size.add_argument(
        "--quantization", default="auto", choices=["auto", "bf16", "fp16", "fp8", "awq", "gptq", "bitsandbytes"]
    )
    size.add_argument("--kv-cache-dtype", default="auto", choices=["auto", "fp8", "fp8_e4m3", "fp8_e5m2"])
    size.add_argument("--gpu-memory-utilization", type=_positive(float, "--gpu-memory-utilization"), default=0.9)
    size.add_argument("--objective", choices=["throughput", "latency"], default="throughput")
    size.add_argument("--min-concurrency", type=_positive(int, "--min-concurrency"), default=1)
    size.add_argument("--rope-scaling", type=_rope, metavar="yarn:FACTOR")
    size.add_argument("--tensor-parallel", type=_positive(int, "--tensor-parallel"))
    size.add_argument("--pipeline-parallel", type=_positive(int, "--pipeline-parallel"))
    size.add_argument("--json", action="store_true", help="print one JSON object")

    plan = sub.add_parser("plan", help="print a stack's capacity plan")
    plan.add_argument("--stack", required=True, help="stack name: reads stacks/Pulumi.<stack>.yaml")
    plan.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    plan.add_argument(
        "--diff",
        metavar="BASE",
        help="print the capacity diff against BASE: a stack file, or a git ref (its stacks/Pulumi.<stack>.yaml)",
    )
    plan.add_argument(
        "--render",
        type=Path,
        metavar="DIR",
        help="also run the Pulumi program offline (mocks) and write manifests.yaml, helm/, cloud.yaml, plan.json",
    )
    return parser


def _shape(args: argparse.Namespace) -> GpuShape:
    explicit = args.gpu_memory_gib is not None
    if args.gpu and explicit:
        raise UsageError("--gpu and --gpu-memory-gib: give a catalog GPU or an explicit shape, not both")
    if args.gpu:
        gpus = load_gpu_catalog()
        gpu = gpus.get(args.gpu)
        if gpu is None:
            raise UsageError(f"--gpu: unknown GPU {args.gpu!r}; known GPUs: {', '.join(gpus)}")
        shape = GpuShape.of(gpu, args.gpus_per_node or DEFAULT_GPUS_PER_NODE, args.nvlink_domain)
        return shape if not args.no_p2p else GpuShape(**{**shape.__dict__, "peer_to_peer": False})
    if not explicit:
        raise UsageError(
            "--gpu: required (a catalog id), or give --gpu-memory-gib, --gpus-per-node and --nvlink-domain"
        )
    if args.gpus_per_node is None or args.nvlink_domain is None:
        raise UsageError("--gpus-per-node and --nvlink-domain: required with --gpu-memory-gib")
    if args.gpus_per_node % args.nvlink_domain:
        raise UsageError(f"--nvlink-domain: {args.nvlink_domain} does not divide --gpus-per-node {args.gpus_per_node}")
    return GpuShape(
        gpu_id=f"custom-{args.gpu_memory_gib:g}GiB",
        gpu_name="custom",
        memory_mib=int(args.gpu_memory_gib * 1024),
        gpus_per_node=args.gpus_per_node,
        nvlink_domain=args.nvlink_domain,
        peer_to_peer=not args.no_p2p,
        native_fp8=True,
        compute_capability="9.0",
    )


def _arch(args: argparse.Namespace) -> ModelArch:
    if args.config is not None:
        return load_hf_config(args.config, args.model or args.config.parent.name or "model", args.params_b)
    models = load_model_catalog()
    arch = models.get(args.model)
    if arch is None:
        raise UsageError(
            f"--model: {args.model!r} is not in the model catalog; pass --config <its config.json> "
            f"(and --params-b), or use one of: {', '.join(models)}"
        )
    if args.params_b:
        arch = replace(arch, params_b=args.params_b)
    return arch


def cmd_size(args: argparse.Namespace) -> int:
    shape = _shape(args)
    request = SizingRequest(
        arch=_arch(args),
        field="size",
        task=args.task,
        quantization=args.quantization,
        kv_cache_dtype=args.kv_cache_dtype,
        max_model_len=args.max_model_len,
        rope_factor=args.rope_scaling,
        objective=args.objective,
        min_concurrency=args.min_concurrency,
        gpu_memory_utilization=args.gpu_memory_utilization,
        tensor_parallel=args.tensor_parallel,
        pipeline_parallel=args.pipeline_parallel,
    )
    sizing = size_model(request, shape, args.nodes)
    if args.json:
        print(json.dumps(sizing.model_dump(mode="json"), indent=2))
    else:
        print(format_sizing(sizing, shape))
    if not sizing.fits:
        print(f"does not fit: {sizing.reasons[0]}", file=sys.stderr)
        return 2
    return 0


def base_plan(stack: str, base: str) -> ClusterPlan | None:
    """The plan of the stack at BASE (a file or a git ref); None when the stack did not exist there."""
    path = Path(base)
    if path.is_file():
        raw = read_stack_config(path)
    else:
        relative = stack_file(stack).relative_to(PROJECT_DIR)
        shown = subprocess.run(
            ["git", "show", f"{base}:{relative.as_posix()}"],
            cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if shown.returncode != 0:
            known = subprocess.run(
                ["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"],
                cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            if known.returncode != 0:
                raise UsageError(f"--diff: {base!r} is neither a stack file nor a git ref")
            return None  # the stack is new at this ref
        document = yaml.safe_load(shown.stdout) or {}
        raw = cluster_config(document, f"{base}:{relative.as_posix()}")
    try:
        return plan_for(load_cluster_spec(raw))
    except (SpecError, CatalogError) as exc:
        raise UsageError(f"--diff: the stack at {base} does not plan: {exc}") from None


def cmd_plan(args: argparse.Namespace) -> int:
    plan = plan_for(load_stack(args.stack))
    if args.diff is not None:
        print(diff_plans(base_plan(args.stack, args.diff), plan, args.stack, args.diff), end="")
        return 0
    if args.render is not None:
        from components.tools.render import RenderError, render_stack  # imports the Pulumi runtime only when asked

        try:
            written = render_stack(args.stack, plan, args.render)
        except RenderError as exc:
            raise UsageError(str(exc)) from None
        print(
            f"rendered {len(written)} files to {args.render}: "
            + ", ".join(str(p.relative_to(args.render)) for p in written),
            file=sys.stderr,
        )
    if args.format == "json":
        print(json.dumps(plan.model_dump(mode="json"), indent=2))
    else:
        print(format_plan(plan, args.stack, markdown=args.format == "markdown"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return cmd_size(args) if args.command == "size" else cmd_plan(args)
    except (UsageError, StackFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (SpecError, CatalogError) as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 1
