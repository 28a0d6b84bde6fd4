"""`python -m components size|plan|catalog` (or `llm-cluster ...` from any directory): size one model, print a
stack's capacity plan, or list the catalog, offline.

Text output fits 120 columns (`--wide` lifts that); `--format table|markdown|json` on every command (`text` is
`table`). Exit codes: 0 fits / printed; 1 bad input (the message names the field or flag and the fix); 2 the model
fits nothing (`size`, one line saying what would). A closed pipe (`| head`) ends it quietly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from components.catalog import CatalogError, ModelArch, load_gpu_catalog, load_hf_config, load_model_catalog
from components.planning.engine_versions import DEFAULT_VLLM_VERSION, ENGINE_VERSIONS
from components.planning.sizing import size_model
from components.planning.types import CLI_MAX_NODES, ClusterPlan, GpuShape, SizingRequest
from components.spec import SpecError, load_cluster_spec
from components.spec.api_rules import MAX_NODES
from components.spec.models import MAX_NUM_BATCHED_TOKENS, MAX_NUM_SEQS
from components.stacks import (
    PROJECT_DIR,
    StackFileError,
    cluster_config,
    parse_stack_document,
    plan_for,
    plan_stack,
    read_stack_config,
    stack_file,
)
from components.tools.capacity_diff import diff_data, format_diff
from components.tools.catalog_text import catalog_data, format_catalog
from components.tools.plan_text import format_plan, format_sizing
from components.tools.size_prediction import add_workload_flags, predicted
from components.tools.text_layout import TEXT_WIDTH

DEFAULT_GPUS_PER_NODE = 8
FORMATS = ("table", "markdown", "json")
# How the command was started, for the next steps `plan` prints (the console script names itself).
MODULE_PROG = "python -m components"
# The most GPUs a node has (GB200 NVL72), as the stack's gpusPerNode allows.
MAX_GPUS_PER_NODE = 72


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


# ---------------------------------------------------------------- rendering the plan


def _positive(kind: type, name: str, maximum: float | None = None) -> Any:
    """A number > 0 (and <= maximum): NaN, infinity and counts no cluster has never reach the sizing loops."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {text!r} is not a number") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{name}: {text!r} is not a finite number; give e.g. 1 or 0.9")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name}: must be > 0, got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{name}: must be at most {maximum:g}, got {text}")
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


def _format_choice(text: str) -> str:
    return "table" if text == "text" else text


def _output_flags(parser: argparse.ArgumentParser, default: str | None = "table", note: str = "") -> None:
    parser.add_argument(
        "--format",
        type=_format_choice,
        choices=FORMATS,
        default=default,
        help=f"table (alias text: for a terminal), markdown (for a PR or a wiki) or json{note}",
    )
    parser.add_argument(
        "--wide", action="store_true", help=f"text: every column and unwrapped lines, past {TEXT_WIDTH} columns"
    )


def build_parser(prog: str = MODULE_PROG) -> argparse.ArgumentParser:
    description = __doc__.split("\n\n")[0].replace("\n", " ") if __doc__ else None
    parser = _Parser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    size = sub.add_parser("size", help="size one model on one GPU shape")
    size.add_argument(
        "--model", help="catalog model id; with --config, the HF id of that config's model (the served model)"
    )
    size.add_argument("--config", type=Path, help="path to an HF config.json (named by --model, else by its folder)")
    size.add_argument("--params-b", type=_positive(float, "--params-b"), help="published parameter count, billions")
    size.add_argument("--gpu", help="catalog GPU id, e.g. H100-SXM-80GB")
    size.add_argument(
        "--gpu-memory-gib",
        type=_positive(float, "--gpu-memory-gib"),
        help="memory of one GPU as the driver reports it (nvidia-smi's total: MiB / 1024), GiB",
    )
    size.add_argument("--gpus-per-node", type=_positive(int, "--gpus-per-node", MAX_GPUS_PER_NODE))
    size.add_argument(
        "--nvlink-domain",
        type=_positive(int, "--nvlink-domain", MAX_GPUS_PER_NODE),
        help="GPUs joined by NVLink (default with --no-p2p: 1)",
    )
    size.add_argument("--no-p2p", action="store_true", help="GPUs without working peer-to-peer")
    size.add_argument(
        "--nodes",
        type=_positive(int, "--nodes", MAX_NODES),
        default=CLI_MAX_NODES,
        help=f"most nodes one replica may span (default {CLI_MAX_NODES})",
    )
    size.add_argument(
        "--task",
        choices=["generate", "embed", "score"],
        help="serve a pooling model as embed or score (default: the task of its architecture)",
    )
    size.add_argument(
        "--max-num-seqs",
        type=_positive(int, "--max-num-seqs", MAX_NUM_SEQS),
        help="vLLM's max_num_seqs (default: vLLM's for the GPU, lowered only when nothing fits otherwise)",
    )
    size.add_argument(
        "--max-num-batched-tokens",
        type=_positive(int, "--max-num-batched-tokens", MAX_NUM_BATCHED_TOKENS),
        help="vLLM's max_num_batched_tokens (default: vLLM's for the GPU)",
    )
    size.add_argument("--max-model-len", type=_positive(int, "--max-model-len"))
    size.add_argument(
        "--quantization",
        default="auto",
        choices=["auto", "bf16", "fp16", "fp8", "awq", "gptq", "bitsandbytes", "mxfp4"],
    )
    size.add_argument("--kv-cache-dtype", default="auto", choices=["auto", "fp8", "fp8_e4m3", "fp8_e5m2"])
    size.add_argument(
        "--gpu-memory-utilization",
        type=_positive(float, "--gpu-memory-utilization", 1.0),
        default=0.0,
        help="fraction of GPU memory vLLM may use (default: the vLLM release's own, 0.92 from 0.33)",
    )
    size.add_argument("--objective", choices=["throughput", "latency"], default="throughput")
    size.add_argument(
        "--vllm-version",
        choices=list(ENGINE_VERSIONS),
        default=DEFAULT_VLLM_VERSION,
        help="the vLLM release the arguments and batch defaults are for (default: the current one)",
    )
    size.add_argument("--min-concurrency", type=_positive(int, "--min-concurrency"), default=1)
    size.add_argument("--rope-scaling", type=_rope, metavar="yarn:FACTOR")
    size.add_argument("--tensor-parallel", type=_positive(int, "--tensor-parallel"))
    size.add_argument("--pipeline-parallel", type=_positive(int, "--pipeline-parallel"))
    add_workload_flags(size, _positive)
    size.add_argument("--json", action="store_true", help="print one JSON object (the same as --format json)")
    _output_flags(size)

    plan = sub.add_parser("plan", help="print a stack's capacity plan")
    plan.add_argument("--stack", required=True, help="stack name: reads stacks/Pulumi.<stack>.yaml")
    _output_flags(plan, default=None, note="; default table, or markdown with --diff (the PR comment)")
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

    catalog = sub.add_parser("catalog", help="list the catalog's GPUs and models with their key facts")
    _output_flags(catalog)
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
    # GPUs without peer-to-peer have no NVLink between them: each is its own domain.
    domain = args.nvlink_domain or (1 if args.no_p2p else None)
    if args.gpus_per_node is None or domain is None:
        raise UsageError(
            "--gpus-per-node and --nvlink-domain: required with --gpu-memory-gib (--nvlink-domain is 1 with --no-p2p)"
        )
    if args.gpus_per_node % domain:
        raise UsageError(f"--nvlink-domain: {domain} does not divide --gpus-per-node {args.gpus_per_node}")
    return GpuShape(
        gpu_id=f"custom-{args.gpu_memory_gib:g}GiB",
        gpu_name="custom",
        memory_mib=int(args.gpu_memory_gib * 1024),
        gpus_per_node=args.gpus_per_node,
        nvlink_domain=domain,
        peer_to_peer=not args.no_p2p,
        native_fp8=True,
        compute_capability="9.0",
    )


def _arch(args: argparse.Namespace) -> ModelArch:
    if args.model is None and args.config is None:
        raise UsageError("--model or --config: required (a catalog model id, or an HF config.json with its model id)")
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
    arch = _arch(args)
    request = SizingRequest(
        arch=arch,
        field="size",
        task=args.task,
        quantization=args.quantization,
        kv_cache_dtype=args.kv_cache_dtype,
        max_model_len=args.max_model_len,
        rope_factor=args.rope_scaling,
        objective=args.objective,
        vllm_version=args.vllm_version,
        min_concurrency=args.min_concurrency,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        tensor_parallel=args.tensor_parallel,
        pipeline_parallel=args.pipeline_parallel,
    )
    sizing = size_model(request, shape, args.nodes)
    if args.json or args.format == "json":
        answer = {**sizing.model_dump(mode="json"), "predicted": predicted(args, arch, shape, sizing)}
        print(json.dumps(answer, indent=2))
    else:
        print(format_sizing(sizing, shape, markdown=args.format == "markdown", wide=args.wide))
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
            cwd=PROJECT_DIR, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        if shown.returncode != 0:
            known = subprocess.run(
                ["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"],
                cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            if known.returncode != 0:
                raise UsageError(f"--diff: {base!r} is neither a stack file nor a git ref")
            return None  # the stack is new at this ref
        where = f"{base}:{relative.as_posix()}"
        raw = cluster_config(parse_stack_document(shown.stdout, where), where)
    try:
        return plan_for(load_cluster_spec(raw))
    except (SpecError, CatalogError) as exc:
        raise UsageError(f"--diff: the stack at {base} does not plan: {exc}") from None


def _check_render_dir(path: Path) -> None:
    """Before planning: the --render directory exists or can be made (its nearest existing part is a directory)."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"--render: {existing} is a file; give a directory to write the render into (made if missing)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--render: {existing} is not writable; give a directory you can write to")


def cmd_plan(args: argparse.Namespace) -> int:
    if args.render is not None:
        _check_render_dir(args.render)
    plan = plan_stack(args.stack)
    if args.diff is not None:
        diff = diff_data(base_plan(args.stack, args.diff), plan, args.stack, args.diff)
        if args.format == "json":
            print(json.dumps(diff, indent=2, ensure_ascii=False))
        else:
            text = args.format == "table"
            print(format_diff(diff, markdown=not text, width=TEXT_WIDTH if text and not args.wide else None), end="")
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
        print(format_plan(plan, args.stack, args.format == "markdown", args.wide, args.prog))
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    data = catalog_data()
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        markdown = args.format == "markdown"
        print(format_catalog(data, markdown, None if markdown or args.wide else TEXT_WIDTH))
    return 0


COMMANDS = {"size": cmd_size, "plan": cmd_plan, "catalog": cmd_catalog}


def main(argv: Sequence[str] | None = None, prog: str = MODULE_PROG) -> int:
    try:
        args = build_parser(prog).parse_args(argv)
        if args.command == "plan" and args.format is None:
            args.format = "markdown" if args.diff is not None else "table"
        args.prog = prog
        return COMMANDS[args.command](args)
    except (UsageError, StackFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (SpecError, CatalogError) as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 1


def run() -> int:
    """The entry point of `python -m components` and of the `llm-cluster` console script (pyproject.toml), which
    works from any directory: it imports the package installed (editable) in the venv by requirements.txt, while
    `python -m` finds it only from the repository root."""
    started_as = Path(sys.argv[0]).name
    prog = MODULE_PROG if started_as in ("__main__.py", "-m", "") else started_as
    try:
        code = main(prog=prog)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (`| head`) went away: stop quietly, as a pipeline expects; the interpreter's own flush at exit
        # would raise again, so stdout goes to /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    except KeyboardInterrupt:
        code = 130  # Ctrl-C: the shell's code for SIGINT, without a traceback
    return code
