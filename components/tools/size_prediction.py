"""The `predicted` object of `size --json`: the performance model (components/planning/performance.py) run on the
layout `size` chose, for the workload given by --input-len, --output-len and --concurrency."""

from __future__ import annotations

import argparse
from typing import Any

from components.catalog import ModelArch, load_gpu_catalog
from components.planning.performance import (
    Hardware,
    Layout,
    Objective,
    PerformanceError,
    Workload,
    predict,
)
from components.planning.types import GpuShape, Sizing

# Without --input-len/--output-len/--concurrency: a chat turn of one user.
DEFAULT_INPUT_LEN = 1024
DEFAULT_OUTPUT_LEN = 256
DEFAULT_CONCURRENCY = 1


def add_workload_flags(parser: argparse.ArgumentParser, positive: Any) -> None:
    parser.add_argument(
        "--input-len", type=positive(int, "--input-len"), help=f"mean prompt tokens (default {DEFAULT_INPUT_LEN})"
    )
    parser.add_argument(
        "--output-len", type=positive(int, "--output-len"), help=f"mean output tokens (default {DEFAULT_OUTPUT_LEN})"
    )
    parser.add_argument(
        "--concurrency", type=positive(float, "--concurrency"), help="concurrent users per replica (default 1)"
    )
    parser.add_argument("--ttft-ms", type=positive(float, "--ttft-ms"), help="TTFT objective, ms")
    parser.add_argument("--itl-ms", type=positive(float, "--itl-ms"), help="inter-token latency objective, ms")


def predicted(args: argparse.Namespace, arch: ModelArch, shape: GpuShape, sizing: Sizing) -> dict[str, Any] | None:
    """The prediction, or None with the reason when the model cannot predict (pooling model, custom GPU, no fit)."""
    if not sizing.fits:
        return None
    gpu = load_gpu_catalog().get(shape.gpu_id)
    if gpu is None:
        return {"error": f"--gpu: {shape.gpu_id} has no bandwidth/TFLOPS row; use a catalog GPU id to predict"}
    workload = Workload(
        args.input_len or DEFAULT_INPUT_LEN,
        args.output_len or DEFAULT_OUTPUT_LEN,
        args.concurrency or DEFAULT_CONCURRENCY,
    )
    layout = Layout(sizing.tp, sizing.pp, sizing.max_num_seqs, sizing.max_num_batched_tokens, sizing.kv_cache_tokens)
    objective = Objective(args.ttft_ms, args.itl_ms) if args.ttft_ms or args.itl_ms else None
    try:
        hw = Hardware.of(gpu, shape.nvlink_domain, shape.peer_to_peer)
        p = predict(arch, hw, layout, sizing.weight_dtype, sizing.kv_cache_dtype, workload, objective)
    except PerformanceError as exc:
        return {"error": str(exc)}
    return {
        "input_len": workload.input_len,
        "output_len": workload.output_len,
        "concurrency": workload.concurrency,
        "ttft_ms": p.ttft_ms,
        "itl_ms": p.itl_ms,
        "output_tokens_per_s": p.output_tokens_per_s,
        "output_tokens_per_s_per_gpu": p.output_tokens_per_s_per_gpu,
        "bound": p.bound,
        "max_concurrency_for_objective": p.max_concurrency_for_objective,
    }
