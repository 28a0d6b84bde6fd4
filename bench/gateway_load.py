"""The load generator of `bench.gateway_overhead`: the targets (stand-ins and real gateways as processes), a
bounded asyncio client sending streaming chat or rerank requests, and the measurements of one level (TTFT, ITL,
CPU)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import math
import os
import resource
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp

from components.gateway_config import litellm_args, litellm_config, litellm_config_files
from components.planning.types import ClusterPlan
from testbed.gateways import litellm_env, litellm_files, loopback_router_args, with_values
from testbed.processes import VENV_BIN, fake_vllm, free_port, start, stop, wait_http

HOST = "127.0.0.1"
TOKENS = 32
ITL_MS = 20.0
MASTER_KEY = "sk-bench-master-key-0123456789"
INFERENCE_KEY = "sk-bench-inference-key-0123456789"  # what Envoy injects; the master key opens nothing
STAND_INS = 2  # the dev stack's two replicas; every target sees the same ones
# A rerank request: one query and this many passages of RERANK_WORDS words each (~10 KB of JSON).
RERANK_DOCUMENTS = 20
RERANK_WORDS = 64
# fake_vllm's ThreadingHTTPServer listens with socketserver's backlog of 5: with more connections arriving at
# once the kernel drops SYNs and clients retry after 1 s, 3 s... (ListenOverflows), a stand-in artefact that
# would show up as TTFT tails on every target. vLLM (uvicorn) listens with 2048; so do the stand-ins here.
REQUEST_TIMEOUT_S = 60.0
MIN_WAVES = 4  # requests per level >= this x concurrency
WARMUP = (8, 32)  # concurrency, requests: discarded, before the first level of every target
START_TIMEOUT_S = 180.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- targets


@dataclass
class Target:
    name: str
    urls: list[str]  # the path's URLs (chat completions, or rerank), used round-robin
    model: str
    headers: dict[str, str]
    sessions: list[int]  # process session ids whose CPU time is the target's
    # chat: streaming chat completions; rerank: one query against RERANK_DOCUMENTS passages, not streamed.
    request: Literal["chat", "rerank"] = "chat"


def generate_model(plan: ClusterPlan) -> str:
    return next(m.name for m in plan.models if m.task == "generate")


def bench_litellm_config(
    plan: ClusterPlan, stand_ins: list[str], bases: Mapping[str, list[str]] | None = None
) -> dict[str, Any]:
    """The rendered config with each model's api_base rewritten: one deployment per stand-in (per stand-in of the
    model's own in `bases`, where it has some)."""
    config = litellm_config(plan)
    entries = []
    for entry in config["model_list"]:
        for base in (bases or {}).get(entry["model_name"], stand_ins):
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


def stand_in(port: int, models: list[str], name: str, logfile: Path, rerank_ms: float = 0) -> subprocess.Popen[bytes]:
    return fake_vllm(port, models, name, logfile, tokens=TOKENS, itl_ms=ITL_MS, rerank_ms=rerank_ms)


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
    with litellm_process(plan, bench_litellm_config(plan, stand_ins), workers, tmp / name) as (url, pid):
        headers = {"Authorization": f"Bearer {INFERENCE_KEY}"}
        yield Target(name, [f"{url}/v1/chat/completions"], generate_model(plan), headers, [pid])


@contextmanager
def litellm_process(plan: ClusterPlan, config: dict[str, Any], workers: int, tmp: Path) -> Iterator[tuple[str, int]]:
    """The real LiteLLM proxy from the plan's files and arguments with `config` as config.yaml, on 127.0.0.1 in
    `tmp`; (its URL, its process id) once it is ready."""
    tmp.mkdir()
    config_path = litellm_files(litellm_config_files(plan), config, tmp)
    metrics_dir = tmp / "prometheus"
    metrics_dir.mkdir()
    port = free_port()
    args = with_values(
        litellm_args(plan),
        {"--config": str(config_path), "--host": HOST, "--port": str(port), "--num_workers": str(workers)},
    )
    env = litellm_env(MASTER_KEY, INFERENCE_KEY, ",".join(plan.gateway.routes), metrics_dir)
    logfile = tmp / "litellm.log"
    log(f"starting {tmp.name}: litellm {' '.join(args)}")
    with started([str(VENV_BIN / "litellm"), *args], logfile, env) as process:
        url = f"http://{HOST}:{port}"
        wait_http(f"{url}/health/liveliness", START_TIMEOUT_S, process, logfile)
        wait_http(f"{url}/health/readiness", START_TIMEOUT_S, process, logfile)
        yield url, process.pid


@contextmanager
def router_target(plan: ClusterPlan, stand_ins: list[str], tmp: Path) -> Iterator[Target]:
    with router_process(plan, stand_ins, tmp) as (url, pid):
        yield Target("vllm-router", [f"{url}/v1/chat/completions"], generate_model(plan), {}, [pid])


@contextmanager
def router_process(plan: ClusterPlan, stand_ins: list[str], tmp: Path) -> Iterator[tuple[str, int]]:
    """The real vllm-router with the plan's arguments on 127.0.0.1, the stand-ins registered as pod discovery
    would register them; (its URL, its process id) once it is ready."""
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
        yield url, process.pid


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


def rerank_body(model: str) -> dict[str, Any]:
    passage = " ".join(f"word{i}" for i in range(RERANK_WORDS))
    documents = [f"{d}: {passage}" for d in range(RERANK_DOCUMENTS)]
    return {"model": model, "query": "Which passage answers the question?", "documents": documents}


async def rerank_once(
    session: aiohttp.ClientSession, target: Target, url: str, timeout: float, level: Level, _tokens: int
) -> None:
    """One rerank request; not streamed, so its whole answer is its first token: TTFT = total."""
    begin = time.perf_counter()
    level.first_start = min(level.first_start, begin)
    try:
        async with session.post(
            url, json=rerank_body(target.model), headers=target.headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            answer = await response.read()
            if response.status != 200:
                level.errors[f"HTTP {response.status}"] += 1
                return
            results = json.loads(answer).get("results") or []
    except TimeoutError:
        level.errors["timeout"] += 1
        return
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        level.errors[type(exc).__name__] += 1
        return
    end = time.perf_counter()
    level.last_end = max(level.last_end, end)
    if len(results) != RERANK_DOCUMENTS:
        level.errors["results missing"] += 1
    else:
        level.samples_ttft.append(end - begin)
        level.samples_total.append(end - begin)


async def run_level(
    target: Target, concurrency: int, requests: int, budget_s: float, tokens: int, stagger_s: float
) -> Level:
    """`requests` requests of the target's kind, at most `concurrency` in flight, all within `budget_s`."""
    once = stream_once if target.request == "chat" else rerank_once
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
                await once(session, target, url, min(REQUEST_TIMEOUT_S, remaining), level, tokens)

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
