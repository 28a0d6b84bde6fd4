"""Streaming latency the LLM gateways add in front of vLLM, measured on loopback with the real gateways.

    python -m bench.gateway_overhead [--quick] [--concurrency 1 8 32 64 128] [--requests N]

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
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from matplotlib.figure import Figure

from components.gateway import litellm_args, litellm_config, router_args
from components.planning.types import ClusterPlan
from components.stacks import load_stack, plan_for
from testbed.fake_vllm import StandInServer
from testbed.gateways import loopback_router_args, with_values
from testbed.processes import VENV_BIN, fake_vllm, free_port, start, stop, wait_http

RESULTS = Path(__file__).parent / "results"
HOST = "127.0.0.1"
TOKENS = 32
ITL_MS = 20.0
STAND_INS = 2  # the dev stack's two replicas; every target sees the same ones
# fake_vllm's ThreadingHTTPServer listens with socketserver's backlog of 5: with more connections arriving at
# once the kernel drops SYNs and clients retry after 1 s, 3 s... (ListenOverflows), a stand-in artefact that
# would show up as TTFT tails on every target. vLLM (uvicorn) listens with 2048; so do the stand-ins here.
MASTER_KEY = "sk-bench-master-key-0123456789"
LITELLM_STACK = "staging"  # gateway.kind litellm, one generate model, workers 1
ROUTER_STACK = "dev"  # gateway.kind vllm-router, one generate model, round_robin


@dataclass(frozen=True)
class Preset:
    concurrency: tuple[int, ...]
    requests: int  # per level, at least MIN_WAVES times its concurrency
    level_budget_s: float


QUICK = Preset((1, 8, 32, 128), 24, 60.0)
FULL = Preset((1, 8, 32, 64, 128), 200, 180.0)
REQUEST_TIMEOUT_S = 60.0
MIN_WAVES = 4  # requests per level >= this x concurrency
WARMUP = (8, 32)  # concurrency, requests: discarded, before the first level of every target
START_TIMEOUT_S = 180.0
GATEWAYS = ["litellm-1w", "litellm-2w", "vllm-router"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- targets


@dataclass
class Target:
    name: str
    urls: list[str]  # chat completions URLs, used round-robin
    model: str
    headers: dict[str, str]
    sessions: list[int]  # process session ids whose CPU time is the target's


def generate_model(plan: ClusterPlan) -> str:
    return next(m.name for m in plan.models if m.task == "generate")


def bench_litellm_config(plan: ClusterPlan, stand_ins: list[str]) -> dict[str, Any]:
    """The rendered config with each model's api_base rewritten: one deployment per stand-in."""
    config = litellm_config(plan)
    entries = []
    for entry in config["model_list"]:
        for base in stand_ins:
            copy = json.loads(json.dumps(entry))
            copy["litellm_params"]["api_base"] = f"{base}/v1"
            entries.append(copy)
    config["model_list"] = entries
    return config


def post_json(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status), bytes(response.read())


def stand_in(port: int, models: list[str], name: str, logfile: Path) -> subprocess.Popen[bytes]:
    return fake_vllm(port, models, name, logfile, tokens=TOKENS, itl_ms=ITL_MS)


@contextmanager
def started(args: list[str], logfile: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    process = start(args, logfile, env)
    try:
        yield process
    finally:
        stop(process)


@contextmanager
def litellm_target(plan: ClusterPlan, stand_ins: list[str], workers: int, tmp: Path) -> Iterator[Target]:
    name = f"litellm-{workers}w"
    config_path = tmp / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(bench_litellm_config(plan, stand_ins), sort_keys=False))
    metrics_dir = tmp / f"{name}-prometheus"
    metrics_dir.mkdir()
    port = free_port()
    args = with_values(
        litellm_args(plan),
        {"--config": str(config_path), "--host": HOST, "--port": str(port), "--num_workers": str(workers)},
    )
    env = {
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    logfile = tmp / f"{name}.log"
    log(f"starting {name}: litellm {' '.join(args)}")
    with started([str(VENV_BIN / "litellm"), *args], logfile, env) as process:
        url = f"http://{HOST}:{port}"
        wait_http(f"{url}/health/liveliness", START_TIMEOUT_S, process, logfile)
        wait_http(f"{url}/health/readiness", START_TIMEOUT_S, process, logfile)
        yield Target(
            name,
            [f"{url}/v1/chat/completions"],
            generate_model(plan),
            {"Authorization": f"Bearer {MASTER_KEY}"},
            [process.pid],
        )


@contextmanager
def router_target(plan: ClusterPlan, stand_ins: list[str], tmp: Path) -> Iterator[Target]:
    port = free_port()
    args = loopback_router_args(plan, port, free_port())
    logfile = tmp / "vllm-router.log"
    log(f"starting vllm-router {' '.join(args)}")
    with started([str(VENV_BIN / "vllm-router"), *args], logfile) as process:
        url = f"http://{HOST}:{port}"
        wait_http(f"{url}/liveness", START_TIMEOUT_S, process, logfile)
        for base in stand_ins:  # what pod discovery does in the cluster
            status, body = post_json(f"{url}/workers", {"url": base})
            if status >= 300:
                raise RuntimeError(f"registering {base} with vllm-router: {status} {body!r}")
        wait_http(f"{url}/readiness", 30, process, logfile)
        yield Target("vllm-router", [f"{url}/v1/chat/completions"], generate_model(plan), {}, [process.pid])


# ---------------------------------------------------------------- load generator


@dataclass
class Level:
    samples_ttft: list[float] = field(default_factory=list)
    samples_itl: list[float] = field(default_factory=list)
    samples_total: list[float] = field(default_factory=list)
    tokens: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    first_start: float = math.inf
    last_end: float = 0.0


async def stream_once(
    session: aiohttp.ClientSession, target: Target, url: str, timeout: float, level: Level, expected_tokens: int
) -> None:
    body = {
        "model": target.model,
        "messages": [{"role": "user", "content": "Count to thirty-two."}],
        "max_tokens": expected_tokens,
        "stream": True,
    }
    begin = time.perf_counter()
    level.first_start = min(level.first_start, begin)
    stamps: list[float] = []
    done = False
    try:
        async with session.post(
            url, json=body, headers=target.headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            if response.status != 200:
                await response.read()
                level.errors[f"HTTP {response.status}"] += 1
                return
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                choices = json.loads(data).get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    stamps.append(time.perf_counter())
    except TimeoutError:
        level.errors["timeout"] += 1
        return
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        level.errors[type(exc).__name__] += 1
        return
    end = time.perf_counter()
    level.last_end = max(level.last_end, end)
    if not done:
        level.errors["stream without [DONE]"] += 1
    elif len(stamps) < expected_tokens:
        level.errors["short stream"] += 1
    else:
        level.samples_ttft.append(stamps[0] - begin)
        level.samples_itl.extend(b - a for a, b in itertools.pairwise(stamps))
        level.samples_total.append(end - begin)
        level.tokens += len(stamps)


async def run_level(
    target: Target, concurrency: int, requests: int, budget_s: float, tokens: int, stagger_s: float
) -> Level:
    """`requests` streaming requests, at most `concurrency` in flight, all within `budget_s`."""
    level = Level()
    deadline = time.monotonic() + budget_s
    issued = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(index: int) -> None:
            nonlocal issued
            # Spread the clients' first requests over one stream's duration: steady load, not a burst.
            await asyncio.sleep(index * stagger_s / concurrency)
            while issued < requests:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                url = target.urls[issued % len(target.urls)]
                issued += 1
                await stream_once(session, target, url, min(REQUEST_TIMEOUT_S, remaining), level, tokens)

        tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
        _, pending = await asyncio.wait(tasks, timeout=budget_s + 15)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    unfinished = requests - len(level.samples_ttft) - sum(level.errors.values())
    if unfinished > 0:
        level.errors["not finished within the level budget"] += unfinished
    return level


# ---------------------------------------------------------------- measurement


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def session_cpu_seconds(sessions: list[int]) -> dict[int, float]:
    """User + system CPU time per live process of these sessions (a gateway and its workers)."""
    ticks: dict[int, int] = {}
    wanted = set(sessions)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[3]) in wanted:  # session id
            ticks[int(entry.name)] = int(fields[11]) + int(fields[12])  # utime, stime
    return {pid: t / os.sysconf("SC_CLK_TCK") for pid, t in ticks.items()}


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(target: Target, concurrency: int, requests: int, budget_s: float) -> dict[str, Any]:
    cpu_before, client_before = session_cpu_seconds(target.sessions), client_cpu_seconds()
    started_at = time.perf_counter()
    level = asyncio.run(run_level(target, concurrency, requests, budget_s, TOKENS, TOKENS * ITL_MS / 1000))
    elapsed = time.perf_counter() - started_at
    cpu_after = session_cpu_seconds(target.sessions)
    by_process = {pid: seconds - cpu_before.get(pid, 0.0) for pid, seconds in cpu_after.items()}
    cpu = sum(by_process.values())
    client_cpu = client_cpu_seconds() - client_before
    ok = len(level.samples_ttft)
    wall = level.last_end - level.first_start if ok else elapsed
    return {
        "gateway": target.name,
        "concurrency": concurrency,
        "requests": requests,
        "ok": ok,
        "errors": requests - ok,
        "error_kinds": dict(level.errors),
        "ttft_p50_ms": ms(percentile(level.samples_ttft, 50)),
        "ttft_p95_ms": ms(percentile(level.samples_ttft, 95)),
        "ttft_p99_ms": ms(percentile(level.samples_ttft, 99)),
        "itl_p50_ms": ms(percentile(level.samples_itl, 50)),
        "itl_p99_ms": ms(percentile(level.samples_itl, 99)),
        "total_p50_ms": ms(percentile(level.samples_total, 50)),
        "rps": round(ok / wall, 2) if wall > 0 else None,
        "tokens_per_s": round(level.tokens / wall, 1) if wall > 0 else None,
        "target_cpu_percent": round(100 * cpu / elapsed, 1),
        "cpu_ms_per_request": round(1000 * cpu / ok, 2) if ok else None,
        # Per process, busiest first: how evenly a multi-worker gateway spreads the load.
        "process_cpu_percent": sorted((round(100 * c / elapsed, 1) for c in by_process.values()), reverse=True),
        "client_cpu_percent": round(100 * client_cpu / elapsed, 1),
        "wall_s": round(elapsed, 2),
    }


def bench_target(target: Target, levels: list[int], requests: int, budget_s: float, rows: list[dict[str, Any]]) -> None:
    warm = measure(target, WARMUP[0], WARMUP[1], budget_s)
    log(f"{target.name}: warm-up {warm['ok']}/{warm['requests']} ok {warm['error_kinds'] or ''}")
    for concurrency in levels:
        n = per_level(requests, concurrency)
        row = measure(target, concurrency, n, budget_s)
        rows.append(row)
        log(
            f"{target.name} c={concurrency}: {row['ok']}/{n} ok in {row['wall_s']} s, ttft p50 {row['ttft_p50_ms']} "
            f"p99 {row['ttft_p99_ms']} ms, itl p50 {row['itl_p50_ms']} p99 {row['itl_p99_ms']} ms, "
            f"{row['rps']} req/s, cpu {row['target_cpu_percent']}% {row['process_cpu_percent']} "
            f"(client {row['client_cpu_percent']}%)" + (f", errors {row['error_kinds']}" if row["errors"] else "")
        )
        time.sleep(1)  # let connections close between levels


def per_level(requests: int, concurrency: int) -> int:
    return max(requests, MIN_WAVES * concurrency)


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


def reading(rows: list[dict[str, Any]], itl_ms: float) -> list[str]:
    """Sentences generated from the numbers, so they stay true whenever the benchmark is rerun."""
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
        noise = {c: max(5.0, 0.25 * (direct[c]["ttft_p50_ms"] or 0)) for c in levels}
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer levels and requests: under 5 minutes")
    parser.add_argument("--concurrency", type=int, nargs="+", help="levels (default 1 8 32 64 128; quick 1 8 32 128)")
    parser.add_argument("--requests", type=int, help="requests per level, at least 4x its concurrency (200; quick 24)")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs and configs here (default: discarded)")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    levels: list[int] = args.concurrency or list(preset.concurrency)
    requests: int = args.requests or preset.requests
    budget_s = preset.level_budget_s
    if min(levels) < 1 or requests < 1 or max(levels) > 512:
        parser.error("concurrency must be 1..512 and requests at least 1")

    litellm_plan, router_plan = plan_for(load_stack(LITELLM_STACK)), plan_for(load_stack(ROUTER_STACK))
    assert litellm_plan.gateway.kind == "litellm" and router_plan.gateway.kind == "vllm-router"
    models = sorted({generate_model(litellm_plan), generate_model(router_plan)})
    command = " ".join(["python -m bench.gateway_overhead", *(argv if argv is not None else sys.argv[1:])])
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gateway-overhead-") as tmpdir:
        tmp = Path(args.logs or tmpdir)
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

    result = {
        "command": command,
        "machine": machine(),
        "settings": {
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
        },
        "wall_s": round(time.perf_counter() - began, 1),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gateway_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    table = write_markdown(result, RESULTS / "gateway_overhead.md")
    plot(result, RESULTS / "gateway_overhead.png")
    print(table)
    log(f"done in {result['wall_s']} s; wrote {RESULTS}/gateway_overhead.json, .md, .png")


if __name__ == "__main__":
    main()
