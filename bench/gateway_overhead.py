"""Streaming latency the LLM gateways add in front of vLLM, measured on loopback with the real gateways.

    python -m bench.gateway_overhead [--quick] [--concurrency 1 8 32 64 128] [--requests N] [--route-table prod]

Stand-ins for vLLM (testbed/fake_vllm.py, one process per model-server worker) stream `TOKENS`
tokens `ITL_MS` apart. The same stand-ins sit behind every target:

- direct: the stand-ins themselves (the load generator spreads requests over them, as a Service would);
- litellm-1w, litellm-2w: the real LiteLLM proxy as the program configures it for the staging stack
  (`litellm_config(plan)` with api_base pointing at the stand-ins, one deployment per stand-in, as LiteLLM
  balances without a Service; `litellm_args(plan)` with host 127.0.0.1, a free port and --num_workers 1 or 2;
  the Deployment's environment);
- vllm-router: the real router with `router_args(plan)` of the dev stack (single model, round_robin), pod
  discovery replaced by registering the stand-ins with POST /workers, host 127.0.0.1.

Per target and concurrency level a bounded asyncio load generator (aiohttp) sends a fixed number of streaming
chat requests (at least four times the concurrency, so every level spends most of its time at it) within a time
budget, from as many closed-loop clients as the concurrency, their first requests spread over one stream's
duration (no synchronized burst at the start of a level); requests that fail, time out or are not finished within
the budget count as errors. Per request it measures the time to the
first content chunk (TTFT), the gaps between content chunks (ITL) and the total. Writes
bench/results/gateway_overhead.json, .md and .png; progress goes to stderr. Everything runs on 127.0.0.1 and
is stopped on the way out.

`--route-table STACK` measures the stack's own route table instead (bench/route_table.py): its chat path through
vllm-router with the stack's arguments and its rerank path straight to the score model, against direct and against
the same paths through LiteLLM; bench/results/gateway_routes.json and .md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.gateway_load import (
    HOST,
    ITL_MS,
    REQUEST_TIMEOUT_S,
    STAND_INS,
    TOKENS,
    WARMUP,
    Target,
    bench_target,
    generate_model,
    litellm_target,
    log,
    per_level,
    percentile,
    router_target,
    stand_in,
)
from components.gateway_config import litellm_args, router_args
from components.planning.types import ClusterPlan
from components.stacks import load_stack, plan_for
from testbed.fake_vllm import StandInServer
from testbed.processes import free_port, stop, wait_http

RESULTS = Path(__file__).parent / "results"
LITELLM_STACK = "staging"  # gateway.kind litellm, one generate model, workers 1
ROUTER_STACK = "dev"  # gateway.kind vllm-router, one generate model, round_robin


@dataclass(frozen=True)
class Preset:
    concurrency: tuple[int, ...]
    requests: int  # per level, at least MIN_WAVES times its concurrency
    level_budget_s: float


QUICK = Preset((1, 8, 32, 128), 24, 60.0)
FULL = Preset((1, 8, 32, 64, 128), 200, 180.0)
GATEWAYS = ["litellm-1w", "litellm-2w", "vllm-router"]


# ---------------------------------------------------------------- results


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, {platform.python_implementation()} {platform.python_version()}"
    )


def overheads(rows: list[dict[str, Any]], key: str) -> dict[str, dict[int, float]]:
    """Per gateway and concurrency: `key` minus direct's `key` at the same concurrency (ms)."""
    direct = {r["concurrency"]: r[key] for r in rows if r["gateway"] == "direct" and r[key] is not None}
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        if r["gateway"] != "direct" and r[key] is not None and r["concurrency"] in direct:
            out.setdefault(r["gateway"], {})[r["concurrency"]] = round(r[key] - direct[r["concurrency"]], 1)
    return out


def fmt(value: Any) -> str:
    return "-" if value is None else f"{value:g}"


def reading(rows: list[dict[str, Any]], itl_ms: float, fixed_ms: float = 0.0) -> list[str]:
    """Sentences generated from the numbers, so they stay true whenever the benchmark is rerun; `fixed_ms`: the
    stand-ins' own delay before the first token (a rerank's), which is no noise."""
    p50, p99 = overheads(rows, "ttft_p50_ms"), overheads(rows, "ttft_p99_ms")
    direct = {r["concurrency"]: r for r in rows if r["gateway"] == "direct"}
    sentences = []
    for gateway, by_level in p50.items():
        levels = sorted(by_level)
        steps = ", ".join(f"{by_level[c]:+g} ms at {c}" for c in levels)
        top = levels[-1]
        tail = p99.get(gateway, {})
        high = f" (p99 {tail[top]:+g} ms at {top})" if top in tail else ""
        # Direct's own spread at the level: an overhead below it is not told apart from noise.
        noise = {c: max(5.0, 0.25 * ((direct[c]["ttft_p50_ms"] or 0) - fixed_ms)) for c in levels}
        if all(by_level[c] <= noise[c] for c in levels):
            where = f"; at most {max(noise.values()):.3g} ms over direct (direct's own noise) at every level"
        else:
            jumps = [(by_level[b] - by_level[a], a, b) for a, b in itertools.pairwise(levels)]
            worst = max(jumps, default=None)
            where = f"; it grows most between concurrency {worst[1]} and {worst[2]}" if worst else ""
        mine = {r["concurrency"]: r for r in rows if r["gateway"] == gateway}
        peak = max(mine.values(), key=lambda r: r["rps"] or 0)
        cost = [r["cpu_ms_per_request"] for r in mine.values() if r["cpu_ms_per_request"] is not None]
        rate = (
            f"; it peaks at {peak['rps']:g} req/s (direct {direct[peak['concurrency']]['rps']:g} at "
            f"{peak['concurrency']}) and spends about {percentile(cost, 50):.3g} ms of CPU per request"
            if cost and peak["concurrency"] in direct
            else ""
        )
        sentences.append(f"{gateway} adds to direct's TTFT p50 {steps}{high}{where}{rate}.")
    spread = [
        r
        for r in rows
        if r["gateway"] != "direct"
        and r["concurrency"] == max(levels_of(rows))
        and len([c for c in r["process_cpu_percent"] if c >= 1]) > 1
    ]
    for r in spread:
        busy = ", ".join(f"{c:g}%" for c in r["process_cpu_percent"] if c >= 1)
        sentences.append(f"At {r['concurrency']} {r['gateway']}'s processes used {busy} of a core each.")
    bursts = [r for r in rows if r["itl_p50_ms"] is not None and r["itl_p50_ms"] < itl_ms / 2]
    if bursts:
        sentences.append(
            "Where a gateway falls behind the stream it delivers chunks in bursts: ITL p50 "
            + ", ".join(f"{r['itl_p50_ms']:g} ms ({r['gateway']} at {r['concurrency']})" for r in bursts)
            + f" against the {itl_ms:g} ms the stand-ins emit, with a longer p99."
        )
    failed = [r for r in rows if r["errors"]]
    if failed:
        sentences.append(
            "Errors: "
            + "; ".join(f"{r['gateway']} at {r['concurrency']}: {r['errors']} {r['error_kinds']}" for r in failed)
            + "."
        )
    else:
        sentences.append("No request failed at any level on any target.")
    return sentences


def levels_of(rows: list[dict[str, Any]]) -> list[int]:
    return sorted({r["concurrency"] for r in rows})


def write_markdown(result: dict[str, Any], path: Path) -> str:
    rows = result["rows"]
    p50 = overheads(rows, "ttft_p50_ms")
    lines = [
        "| gateway | concurrency | requests | errors | TTFT p50 ms | +p50 vs direct | TTFT p95 ms | TTFT p99 ms "
        "| ITL p50 ms | ITL p99 ms | req/s | tokens/s | CPU % | CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        extra = p50.get(r["gateway"], {}).get(r["concurrency"])
        cells = [r["gateway"], r["concurrency"], r["requests"], r["errors"], r["ttft_p50_ms"],
                 "-" if extra is None else f"{extra:+g}",
                 r["ttft_p95_ms"], r["ttft_p99_ms"], r["itl_p50_ms"], r["itl_p99_ms"], r["rps"], r["tokens_per_s"],
                 r["target_cpu_percent"], r["cpu_ms_per_request"]]  # fmt: skip
        lines.append("| " + " | ".join(fmt(c) if isinstance(c, (int, float)) or c is None else c for c in cells) + " |")
    table = "\n".join(lines)
    s = result["settings"]
    per_level_text = ", ".join(f"{n} at {c}" for c, n in s["requests_per_level"].items())
    text = f"""# Gateway overhead: TTFT and ITL through LiteLLM and vllm-router vs direct

`{result["command"]}` on {result["machine"]}; {result["wall_s"]} s in all.

Stand-ins ({s["stand_ins"]} processes of `testbed/fake_vllm.py`, listen backlog {s["stand_in_backlog"]} as
vLLM's) stream {s["tokens"]} tokens {s["itl_ms"]:g} ms apart; the same ones back every target. `direct`: the
load generator spreads requests over the stand-ins. `litellm-1w`/`-2w`: the real LiteLLM proxy from the
{s["litellm_stack"]} stack's rendered config (api_base pointing at the stand-ins, one deployment each) and
arguments with `--num_workers` 1 or 2. `vllm-router`: the real router with the {s["router_stack"]} stack's
arguments, the stand-ins registered with POST /workers instead of pod discovery. Streaming chat requests per
level: {per_level_text}, from as many closed-loop clients as the concurrency whose first requests are spread
over {s["client_stagger_s"]:g} s (one stream), after a discarded warm-up; at most {s["level_budget_s"]:g} s per
level; failed, timed-out and unfinished requests count as errors. "+p50 vs direct" is the TTFT p50 minus
direct's at the same concurrency; "CPU %" is the CPU time of the target's processes (the stand-ins for
direct) over the level's wall time, 100 = one core, and "CPU ms/req" the same per successful request.

{table}

{" ".join(reading(rows, s["itl_ms"]))}

Caveats: the machine has {os.cpu_count()} cores shared by the load generator (one Python process), the stand-ins
and the gateway, so a gateway that wants more than what is left (LiteLLM with 2 workers under load) is
partly measuring CPU contention that a gateway pod with its own cores would not see; LiteLLM with 1 worker is
one Python process and saturates one core whatever the machine. The stand-ins close the connection after each
stream, so `direct` pays a new TCP connection per request in the load generator while the gateways keep the
client's connections alive: small negative overheads are that and noise. The stand-ins have no prefill or
decoding cost, so these are the gateways' costs alone. The load generator keeps its connections to a gateway
alive and each new connection goes to whichever LiteLLM worker accepts it first, so two workers' shares of the
load can be uneven (per-process CPU in the JSON), as they can behind Envoy's pooled connections. Each level is
one run: a few ms either way is noise.

![TTFT overhead over direct](gateway_overhead.png)
"""
    path.write_text(text)
    return table


def plot(result: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure  # requirements-bench.txt; only the plot needs it

    rows = result["rows"]
    p50, p99 = overheads(rows, "ttft_p50_ms"), overheads(rows, "ttft_p99_ms")
    figure = Figure(figsize=(8, 5), dpi=120)
    axes = figure.add_subplot()
    colors = {"litellm-1w": "tab:blue", "litellm-2w": "tab:orange", "vllm-router": "tab:green"}
    for gateway, by_level in p50.items():
        color = colors.get(gateway)
        levels = sorted(by_level)
        axes.plot(levels, [by_level[c] for c in levels], marker="o", color=color, label=f"{gateway} p50")
        tail = p99.get(gateway, {})
        tail_levels = sorted(tail)
        axes.plot(tail_levels, [tail[c] for c in tail_levels], linestyle="--", marker="x", color=color,
                  label=f"{gateway} p99")  # fmt: skip
    levels = sorted({r["concurrency"] for r in rows})
    axes.set_xscale("log", base=2)
    axes.set_xticks(levels, [str(c) for c in levels])
    axes.set_yscale("symlog", linthresh=1)
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_xlabel("concurrent streaming requests")
    axes.set_ylabel("TTFT over direct, ms (symlog)")
    s = result["settings"]
    axes.set_title(f"Gateway TTFT overhead ({s['tokens']} tokens, {s['itl_ms']:g} ms apart, {os.cpu_count()} cores)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    levels, requests, budget_s, logs, route_table = parse_args(argv)
    command = " ".join(["python -m bench.gateway_overhead", *(argv if argv is not None else sys.argv[1:])])
    if route_table is not None:
        from bench.route_table import bench_route_table  # it reuses this module's reporting

        bench_route_table(route_table, levels, requests, budget_s, logs, command)
        return
    litellm_plan, router_plan = plan_for(load_stack(LITELLM_STACK)), plan_for(load_stack(ROUTER_STACK))
    assert litellm_plan.gateway.kind == "litellm" and router_plan.gateway.kind == "vllm-router"
    models = sorted({generate_model(litellm_plan), generate_model(router_plan)})
    began = time.perf_counter()
    rows = run_targets(litellm_plan, router_plan, models, levels, requests, budget_s, logs)
    result = {
        "command": command,
        "machine": machine(),
        "settings": settings(litellm_plan, router_plan, levels, requests, budget_s),
        "wall_s": round(time.perf_counter() - began, 1),
        "rows": rows,
    }
    write_results(result)


def parse_args(argv: Sequence[str] | None) -> tuple[list[int], int, float, Path | None, str | None]:
    """(levels, requests per level, budget per level, where to keep the logs, the stack whose route table to run)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer levels and requests: under 5 minutes")
    parser.add_argument("--concurrency", type=int, nargs="+", help="levels (default 1 8 32 64 128; quick 1 8 32 128)")
    parser.add_argument("--requests", type=int, help="requests per level, at least 4x its concurrency (200; quick 24)")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs and configs here (default: discarded)")
    parser.add_argument("--route-table", metavar="STACK", help="run this stack's route table (chat and rerank paths)")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    levels: list[int] = args.concurrency or list(preset.concurrency)
    requests: int = args.requests or preset.requests
    budget_s = preset.level_budget_s
    if min(levels) < 1 or requests < 1 or max(levels) > 512:
        parser.error("concurrency must be 1..512 and requests at least 1")
    logs: Path | None = args.logs
    route_table: str | None = args.route_table
    return levels, requests, budget_s, logs, route_table


def run_targets(
    litellm_plan: ClusterPlan,
    router_plan: ClusterPlan,
    models: list[str],
    levels: list[int],
    requests: int,
    budget_s: float,
    logs: Path | None,
) -> list[dict[str, Any]]:
    """Direct, then each gateway, all in front of the same stand-ins; every process is stopped on return."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gateway-overhead-") as tmpdir:
        tmp = Path(logs or tmpdir)
        tmp.mkdir(parents=True, exist_ok=True)
        ports = [free_port() for _ in range(STAND_INS)]
        stand_ins = [f"http://{HOST}:{p}" for p in ports]
        workers: list[subprocess.Popen[bytes]] = []
        try:
            for i, port in enumerate(ports):
                workers.append(stand_in(port, models, f"w{i}", tmp / f"w{i}.log"))
            for i, port in enumerate(ports):
                wait_http(f"http://{HOST}:{port}/health", 30, workers[i], tmp / f"w{i}.log")
            log(f"{STAND_INS} stand-ins up ({TOKENS} tokens, {ITL_MS:g} ms apart); levels {levels}")
            direct = Target(
                "direct", [f"{b}/v1/chat/completions" for b in stand_ins], models[0], {}, [w.pid for w in workers]
            )
            bench_target(direct, levels, requests, budget_s, rows)
            for workers_count in (1, 2):
                with litellm_target(litellm_plan, stand_ins, workers_count, tmp) as target:
                    bench_target(target, levels, requests, budget_s, rows)
            with router_target(router_plan, stand_ins, tmp) as target:
                bench_target(target, levels, requests, budget_s, rows)
        finally:
            for worker in workers:
                stop(worker)
    return rows


def settings(
    litellm_plan: ClusterPlan, router_plan: ClusterPlan, levels: list[int], requests: int, budget_s: float
) -> dict[str, Any]:
    return {
        "tokens": TOKENS,
        "itl_ms": ITL_MS,
        "stand_ins": STAND_INS,
        "stand_in_backlog": StandInServer.request_queue_size,
        "requests_per_level": {str(c): per_level(requests, c) for c in levels},
        "level_budget_s": budget_s,
        "request_timeout_s": REQUEST_TIMEOUT_S,
        "warmup": {"concurrency": WARMUP[0], "requests": WARMUP[1]},
        "client_stagger_s": TOKENS * ITL_MS / 1000,
        "litellm_stack": LITELLM_STACK,
        "router_stack": ROUTER_STACK,
        "litellm_args": litellm_args(litellm_plan),
        "router_args": router_args(router_plan),
    }


def write_results(result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gateway_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    table = write_markdown(result, RESULTS / "gateway_overhead.md")
    plot(result, RESULTS / "gateway_overhead.png")
    print(table)
    log(f"done in {result['wall_s']} s; wrote {RESULTS}/gateway_overhead.json, .md, .png")


if __name__ == "__main__":
    main()
