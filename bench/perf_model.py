"""Calibrate the performance model on published runs and report its error on the runs it did not see.

    python -m bench.perf_model [--runs bench/reference/perf_runs.yaml] [--out bench/results] [--no-fit]

Split (fixed): within each source, in file order, the runs not `excluded` alternate fit, test, fit, ... The
efficiency factors per GPU architecture (HBM and tensor efficiency, fixed per-step cost) and one all-reduce
factor are fitted by grid search on the fit runs (mean |log(predicted / measured)| over every metric a run
reports) and written to components/planning/performance_fit.yaml; the errors are then computed on the test runs
only and written to bench/results/perf_model.md and .json. --no-fit re-evaluates with the fit file as it is.
Regime: latency-bound for concurrency <= 16, throughput-bound above (a rule on the inputs, not on the model).
A run of fewer prompts than its concurrency (`num_prompts`) never has more requests in flight than prompts.
Physics floor: a run whose TTFT is shorter than its prompt's weight FLOPs at 100% of the GPU's peak dense tensor
rate cannot be what its setup says (prefix-cache hits, or a shorter prompt than stated); it keeps its place in
the alternation (so no other run changes split) but is reported as excluded with the reason.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.catalog import ModelArch, load_gpu_catalog, load_model_catalog
from components.planning.batch_limits import engine_batch_defaults
from components.planning.performance import (
    FIT_FILE,
    Efficiency,
    Fit,
    Hardware,
    Layout,
    Workload,
    load_fit,
    predict,
)
from components.planning.sizing import size_model
from components.planning.types import GpuShape, SizingRequest

BENCH_DIR = Path(__file__).parent
RUNS = BENCH_DIR / "reference" / "perf_runs.yaml"
RESULTS = BENCH_DIR / "results"
COMMAND = "python -m bench.perf_model"
METRICS = ("ttft_ms", "itl_ms", "output_tokens_per_s")
LATENCY_BOUND_MAX_CONCURRENCY = 16
GRID_MEMORY = [round(0.30 + 0.05 * i, 2) for i in range(15)]  # 0.30 .. 1.00
GRID_COMPUTE = [round(0.2 + 0.1 * i, 1) for i in range(9)]  # 0.2 .. 1.0
GRID_OVERHEAD = [1.0 * i for i in range(11)]  # 0 .. 10 ms
GRID_COMM = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
DEFAULT = Efficiency(memory=0.7, compute=0.5, step_overhead_ms=2.0)


@dataclass(frozen=True)
class Case:
    """One published run, resolved to what `predict` takes."""

    id: str
    source: str
    row: dict[str, Any]
    arch: ModelArch
    hw: Hardware
    layout: Layout
    split: str  # fit | test | excluded

    @property
    def regime(self) -> str:
        return "latency-bound" if self.row["concurrency"] <= LATENCY_BOUND_MAX_CONCURRENCY else "throughput-bound"


def _arch(model: str, archs: dict[str, dict[str, Any]]) -> ModelArch:
    if model in archs:
        values = {k: v for k, v in archs[model].items() if k != "source"}
        return ModelArch(id=model, task="generate", attention="gqa", source=archs[model]["source"], **values)
    arch: ModelArch = load_model_catalog()[model]
    return arch


def _layout(arch: ModelArch, gpu_id: str, row: dict[str, Any]) -> Layout:
    """vLLM's batch limits and the KV cache the project's own sizing gives this layout (None when it cannot)."""
    gpu = load_gpu_catalog()[gpu_id]
    shape = GpuShape.of(gpu, max(8, row["tp"] * row["pp"]))
    request = SizingRequest(
        arch=arch, field=row["id"], quantization=row["weight_dtype"], kv_cache_dtype=row["kv_dtype"],
        max_model_len=row["input_len"] + row["output_len"], tensor_parallel=row["tp"], pipeline_parallel=row["pp"],
    )  # fmt: skip
    try:
        sizing = size_model(request, shape)
    except ValueError:
        seqs, batched = engine_batch_defaults(request, shape)
        return Layout(tp=row["tp"], pp=row["pp"], max_num_seqs=seqs, max_num_batched_tokens=batched)
    return Layout(
        tp=row["tp"], pp=row["pp"], max_num_seqs=sizing.max_num_seqs,
        max_num_batched_tokens=sizing.max_num_batched_tokens, kv_cache_tokens=sizing.kv_cache_tokens,
    )  # fmt: skip


def load_cases(path: Path = RUNS) -> list[Case]:
    data = yaml.safe_load(path.read_text())
    archs = data.get("archs") or {}
    cases: list[Case] = []
    seen: dict[str, int] = defaultdict(int)
    for row in data["runs"]:
        arch = _arch(row["model"], archs)
        gpu = load_gpu_catalog()[row["gpu"]]
        if row.get("excluded"):
            split = "excluded"
        else:
            split = "fit" if seen[row["source"]] % 2 == 0 else "test"
            seen[row["source"]] += 1
        hw = Hardware.of(gpu)
        floor = ttft_floor_ms(arch, hw, row)
        if split != "excluded" and row["measured"].get("ttft_ms", floor) < floor:
            split = "excluded"
            row = {**row, "excluded": f"TTFT {row['measured']['ttft_ms']} ms is below the {floor:.0f} ms floor"}
        cases.append(Case(row["id"], row["source"], row, arch, hw, _layout(arch, row["gpu"], row), split))
    return cases


def ttft_floor_ms(arch: ModelArch, hw: Hardware, row: dict[str, Any]) -> float:
    """The prompt's weight FLOPs (2 per active parameter per token, attention left out) at 100% of the peak
    dense tensor rate of the replica's GPUs: no engine can return the first token sooner."""
    active = arch.params_b * 1e9
    if arch.is_moe:  # routed experts: only experts_per_token of them per token
        routed = (arch.layers - arch.dense_layers) * arch.experts * 3 * arch.hidden * arch.moe_intermediate
        active -= routed * (1 - arch.experts_per_token / arch.experts)
    peak = hw.fp8_tflops if row["weight_dtype"] == "fp8" and hw.fp8_tflops > 0 else hw.bf16_tflops
    gpus = int(row["tp"]) * int(row["pp"])
    return 2 * active * float(row["input_len"]) / (peak * 1e12 * gpus) * 1e3


def predicted(case: Case, fit: Fit) -> dict[str, float]:
    r = case.row
    p = predict(
        case.arch, case.hw, case.layout, r["weight_dtype"], r["kv_dtype"],
        Workload(r["input_len"], r["output_len"], min(r["concurrency"], r.get("num_prompts", r["concurrency"]))),
        fit=fit,
    )  # fmt: skip
    return {"ttft_ms": p.ttft_ms, "itl_ms": p.itl_ms, "output_tokens_per_s": p.output_tokens_per_s}


def _loss(cases: list[Case], fit: Fit) -> float:
    import math

    errors = []
    for case in cases:
        pred = predicted(case, fit)
        errors += [abs(math.log(pred[k] / v)) for k, v in case.row["measured"].items() if k in METRICS]
    return statistics.fmean(errors) if errors else 0.0


def fit_factors(cases: list[Case]) -> Fit:
    """Grid search per GPU architecture on the fit runs; the all-reduce factor on the classes with TP > 1."""
    train = [c for c in cases if c.split == "fit"]
    by_class: dict[str, list[Case]] = defaultdict(list)
    for case in train:
        by_class[case.hw.gpu_class].append(case)

    def best(group: list[Case], comm: float) -> tuple[float, Efficiency]:
        scored = []
        for mem, comp, over in itertools.product(GRID_MEMORY, GRID_COMPUTE, GRID_OVERHEAD):
            eff = Efficiency(memory=mem, compute=comp, step_overhead_ms=over)
            scored.append((_loss(group, Fit({}, eff, comm)), eff))
        return min(scored, key=lambda s: s[0])

    multi = [c for c in train if c.layout.tp * c.layout.pp > 1]
    comm = min(GRID_COMM, key=lambda f: best(multi, f)[0]) if multi else 1.0
    fitted = {name: best(group, comm)[1] for name, group in sorted(by_class.items())}
    default = best(train, comm)[1] if train else DEFAULT
    return Fit(by_class=fitted, default=default, comm_factor=comm)


def write_fit(fit: Fit, path: Path = FIT_FILE) -> None:
    lines = [
        f"# Written by `{COMMAND}` from bench/reference/perf_runs.yaml (fit split): fraction of peak HBM bandwidth",
        "# and dense tensor FLOPS a step reaches, its fixed cost, per GPU architecture; `default` for others.",
        f"comm_factor: {fit.comm_factor}",
        f"default: {json.dumps(fit.default.__dict__)}",
        "by_class:",
        *[f"  {name}: {json.dumps(eff.__dict__)}" for name, eff in fit.by_class.items()],
    ]
    path.write_text("\n".join(lines) + "\n")


def _ape(pred: float, meas: float) -> float:
    return abs(pred - meas) / meas * 100


def evaluate(cases: list[Case], fit: Fit) -> dict[str, Any]:
    """Per-run predictions and the error summary on the test runs (and, apart, the excluded ones)."""
    rows = []
    for case in cases:
        pred = predicted(case, fit)
        errs = {k: round(_ape(pred[k], v), 1) for k, v in case.row["measured"].items() if k in METRICS}
        rows.append({
            "id": case.id, "split": case.split, "gpu_class": case.hw.gpu_class, "regime": case.regime,
            "measured": case.row["measured"], "predicted": pred, "ape": errs,
        })  # fmt: skip
    test = [r for r in rows if r["split"] == "test"]
    summary: dict[str, Any] = {"all": _summary(test)}
    for key in ("gpu_class", "regime"):
        for value in sorted({r[key] for r in test}):
            summary[f"{key}={value}"] = _summary([r for r in test if r[key] == value])
    within = [e for r in test for k, e in r["ape"].items() if k in ("ttft_ms", "itl_ms")]
    return {
        "rows": rows,
        "summary": summary,
        "latency_within_25pct": f"{sum(e <= 25 for e in within)}/{len(within)}",
        "counts": {s: sum(r["split"] == s for r in rows) for s in ("fit", "test", "excluded")},
    }


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric in METRICS:
        errs = [r["ape"][metric] for r in rows if metric in r["ape"]]
        out[metric] = {"n": len(errs), "median": round(statistics.median(errs), 1) if errs else None,
                       "worst": round(max(errs), 1) if errs else None}  # fmt: skip
    return out


def render(report: dict[str, Any], fit: Fit) -> str:
    c = report["counts"]
    lines = [
        "# Performance model: error on published runs it was not fitted on",
        "",
        f"Written by `{COMMAND}` from `bench/reference/perf_runs.yaml` ({c['fit']} fit, {c['test']} test, "
        f"{c['excluded']} excluded runs). Absolute percentage error |predicted - measured| / measured on the "
        "**test** runs; fit and test alternate within each source.",
        "",
        f"TTFT and ITL within +-25%: **{report['latency_within_25pct']}** test measurements.",
        "",
        "| group | TTFT n | TTFT median % | TTFT worst % | ITL n | ITL median % | ITL worst % | "
        "tok/s n | tok/s median % | tok/s worst % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for group, s in report["summary"].items():
        cells = [f"{s[m]['n']} | {s[m]['median']} | {s[m]['worst']}" for m in METRICS]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    lines += ["", "Fitted factors (components/planning/performance_fit.yaml):", ""]
    lines += [f"- {name}: {eff.__dict__}" for name, eff in fit.by_class.items()]
    lines += [f"- default: {fit.default.__dict__}; all-reduce factor {fit.comm_factor}", ""]
    lines += ["| run | split | measured | predicted | APE % |", "|---|---|---|---|---|"]
    for r in report["rows"]:
        pred = {k: r["predicted"][k] for k in r["measured"] if k in METRICS}
        lines.append(f"| {r['id']} | {r['split']} | {r['measured']} | {pred} | {r['ape']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-fit", action="store_true", help="evaluate with the fit file as it is")
    args = parser.parse_args(argv)
    cases = load_cases(args.runs)
    if not args.no_fit:
        write_fit(fit_factors(cases))
        load_fit.cache_clear()
    fit = load_fit()
    report = evaluate(cases, fit)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "perf_model.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "perf_model.md").write_text(render(report, fit))
    print(json.dumps(report["summary"]["all"], indent=2), report["latency_within_25pct"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["Case", "evaluate", "fit_factors", "load_cases", "main", "predicted", "render", "ttft_floor_ms"]
