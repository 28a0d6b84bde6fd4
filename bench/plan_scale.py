"""Time to validate and plan stacks of 10, 100 and 1000 synthetic models.

    python -m bench.plan_scale [--sizes 10 100 1000] [--repeat 5]

Writes bench/results/plan_scale.json and bench/results/plan_scale.md. Each synthetic model is a
catalog model with its own served name, context and replica bounds, spread over two pools whose
node lists grow with the stack, so every run sizes and places every replica.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from components.catalog import load_gpu_catalog, load_model_catalog
from components.spec import load_cluster_spec
from components.stacks import plan_for

RESULTS = Path(__file__).parent / "results"

# (catalog model, pool, extra spec keys): a mix of dense, FP8, YaRN, latency and pooling models.
TEMPLATES: list[tuple[str, str, dict[str, Any]]] = [
    ("Qwen/Qwen2.5-32B-Instruct", "h100", {"quantization": "fp8", "ropeScaling": {"factor": 4}, "minConcurrency": 4}),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "h100", {"maxModelLen": 32768}),
    ("meta-llama/Llama-3.1-8B-Instruct", "h100", {"maxModelLen": 65536, "objective": "latency"}),
    ("Qwen/Qwen2.5-Coder-7B-Instruct", "rtx4090", {"quantization": "fp8", "maxModelLen": 32768}),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "rtx4090", {"maxModelLen": 16384}),
    ("BAAI/bge-m3", "rtx4090", {"task": "embed"}),
    ("BAAI/bge-reranker-v2-m3", "rtx4090", {"task": "score"}),
]


def synthetic_stack(count: int) -> dict[str, Any]:
    models = []
    for i in range(count):
        model, pool, extra = TEMPLATES[i % len(TEMPLATES)]
        models.append(
            {
                "name": f"m{i:04d}",
                "model": model,
                "pool": pool,
                "autoscaling": {"minReplicas": 1, "maxReplicas": 1 + i % 3},
                **extra,
            }
        )
    # Generous node lists so placement succeeds: at most 3 replicas of at most 8 GPUs each.
    nodes = max(2, count * 3)
    return {
        "storageClass": "standard",
        "auth": {"allowPlainHttp": True, "clients": [{"name": "bench"}]},
        "pools": [
            {
                "name": "h100",
                "gpu": "H100-SXM-80GB",
                "gpusPerNode": 8,
                "backend": {"kind": "existing", "nodeNames": [f"h100-{n:05d}" for n in range(nodes)]},
            },
            {
                "name": "rtx4090",
                "gpu": "RTX-4090-24GB",
                "gpusPerNode": 8,
                "backend": {"kind": "existing", "nodeNames": [f"rtx-{n:05d}" for n in range(nodes)]},
            },
        ],
        "models": models,
    }


def time_plan(count: int, repeat: int) -> dict[str, Any]:
    raw = synthetic_stack(count)
    seconds = []
    replicas = 0
    for _ in range(repeat):
        start = time.perf_counter()
        plan = plan_for(load_cluster_spec(raw))
        seconds.append(time.perf_counter() - start)
        replicas = sum(m.max_replicas for m in plan.models)
    median = statistics.median(seconds)
    return {
        "models": count,
        "replicas_placed": replicas,
        "median_s": round(median, 4),
        "min_s": round(min(seconds), 4),
        "per_model_ms": round(median / count * 1000, 3),
        "repeat": repeat,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    load_gpu_catalog(), load_model_catalog()  # warm the catalog caches outside the timing
    rows = [time_plan(n, args.repeat) for n in args.sizes]
    for small, large in itertools.pairwise(rows):
        large["time_ratio_vs_previous"] = round(large["median_s"] / small["median_s"], 2)
        large["size_ratio_vs_previous"] = round(large["models"] / small["models"], 2)
    result = {
        "command": f"python -m bench.plan_scale --sizes {' '.join(map(str, args.sizes))} --repeat {args.repeat}",
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "plan_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "| models | replicas placed | median s | per model ms | time x vs previous | size x vs previous |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['models']} | {r['replicas_placed']} | {r['median_s']} | {r['per_model_ms']} | "
            f"{r.get('time_ratio_vs_previous', '-')} | {r.get('size_ratio_vs_previous', '-')} |"
        )
    table = "\n".join(lines)
    (RESULTS / "plan_scale.md").write_text(f"`{result['command']}` on {result['machine']}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
