"""A stack's route table under load, as the rendered HTTPRoute sends each path: its chat path through the real
vllm-router (the stack's own arguments: every model's server registered, multi-model mode, its policy) and its
rerank path straight to the score model's stand-ins, each against direct and against the same path through the
real LiteLLM configured for the same models (what the stack ran before, kind: litellm, 2 workers).

    python -m bench.gateway_overhead --route-table prod [--quick]

Stand-ins (testbed/fake_vllm.py): two for the chat model streaming TOKENS tokens ITL_MS apart, two for the score
model answering a rerank of RERANK_DOCUMENTS passages after one stream's duration, so both paths run the same
request rate at a level. Each request's backend comes from the route the program renders (api_gateway.http_route),
matched the way Gateway API matches paths. Envoy itself is not in the loop: it would sit in front of every target
alike. Writes bench/results/gateway_routes.json and .md; every process is stopped on the way out.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from bench.gateway_load import (
    HOST,
    INFERENCE_KEY,
    ITL_MS,
    RERANK_DOCUMENTS,
    RERANK_WORDS,
    STAND_INS,
    TOKENS,
    Target,
    bench_litellm_config,
    bench_target,
    generate_model,
    litellm_process,
    log,
    per_level,
    router_process,
    stand_in,
)
from bench.gateway_overhead import RESULTS, fmt, levels_of, machine, overheads, reading
from components.api_gateway import http_route
from components.gateway import NAME as LLM_GATEWAY
from components.gateway_config import router_args
from components.planning.types import ClusterPlan
from components.stacks import load_stack, plan_for
from testbed.processes import free_port, stop, wait_http
from testbed.routes import route_backends

CHAT_PATH = "/v1/chat/completions"
LITELLM_WORKERS = 2  # gateway.workers' default


def plans(stack: str) -> tuple[ClusterPlan, ClusterPlan]:
    """The stack's plan (vllm-router with a direct rerank route) and the same stack under kind: litellm."""
    spec = load_stack(stack)
    plan = plan_for(spec)
    if plan.gateway.kind != "vllm-router" or not plan.gateway.direct_routes:
        raise SystemExit(f"{stack}: the route table needs kind vllm-router and a score model (a direct route)")
    litellm = spec.model_copy(update={"gateway": spec.gateway.model_copy(update={"kind": "litellm"})})
    return plan, plan_for(litellm)


def backend_urls(plan: ClusterPlan, path: str, by_service: dict[str, list[str]]) -> list[str]:
    """Where the rendered HTTPRoute sends `path`: the URLs of the processes standing in for its backend Service."""
    backends = route_backends({"spec": http_route(plan)}, path)
    if not backends:
        raise SystemExit(f"the route admits no {path}")
    return [f"{base}{path}" for b in backends for base in by_service[b["name"]]]


def bench_route_table(
    stack: str, levels: list[int], requests: int, budget_s: float, logs: Path | None, command: str
) -> None:
    plan, litellm_plan = plans(stack)
    chat, direct_route = generate_model(plan), plan.gateway.direct_routes[0]
    score, rerank_path = direct_route.model, direct_route.paths[0]
    began, load = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gateway-routes-") as tmpdir:
        tmp = Path(logs or tmpdir)
        tmp.mkdir(parents=True, exist_ok=True)
        ports = {(model, i): free_port() for model in (chat, score) for i in range(STAND_INS)}
        bases = {model: [f"http://{HOST}:{p}" for (m, _), p in ports.items() if m == model] for model in (chat, score)}
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for (model, i), port in ports.items():
                logfile = tmp / f"{model}-{i}.log"
                processes.append(stand_in(port, [model], f"{model}-{i}", logfile, rerank_ms=TOKENS * ITL_MS))
                wait_http(f"http://{HOST}:{port}/health", 30, processes[-1], logfile)
            log(f"stand-ins up: {STAND_INS} for {chat}, {STAND_INS} for {score}; levels {levels}")
            pids = [p.pid for p in processes]
            # The route sends rerank straight to the score model's Service: that is its direct path.
            chat_direct = [f"{b}{CHAT_PATH}" for b in bases[chat]]
            rerank_direct = backend_urls(plan, rerank_path, {score: bases[score]})
            for path, model, urls in ((CHAT_PATH, chat, chat_direct), (rerank_path, score, rerank_direct)):
                target = Target("direct", urls, model, {}, pids, kind(path))
                measure_path(target, path, levels, requests, budget_s, rows)
            # vllm-router discovers every model server of the namespace, the score model's too.
            with router_process(plan, bases[chat] + bases[score], tmp) as (url, pid):
                urls = backend_urls(plan, CHAT_PATH, {LLM_GATEWAY: [url]})
                target = Target("vllm-router", urls, chat, {}, [pid])
                measure_path(target, CHAT_PATH, levels, requests, budget_s, rows)
            config = bench_litellm_config(litellm_plan, bases[chat], bases)
            with litellm_process(litellm_plan, config, LITELLM_WORKERS, tmp / "litellm") as (url, pid):
                headers = {"Authorization": f"Bearer {INFERENCE_KEY}"}
                for path, model in ((CHAT_PATH, chat), (rerank_path, score)):
                    target = Target(f"litellm-{LITELLM_WORKERS}w", [f"{url}{path}"], model, headers, [pid], kind(path))
                    measure_path(target, path, levels, requests, budget_s, rows)
        finally:
            for process in processes:
                stop(process)
    result = {
        "command": command,
        "machine": machine(),
        "load_average_at_start": load,  # 1, 5, 15 min: anything else running on the cores skews the levels
        "stack": stack,
        "route": http_route(plan),
        "settings": {
            "tokens": TOKENS, "itl_ms": ITL_MS, "rerank_ms": TOKENS * ITL_MS, "stand_ins_per_model": STAND_INS,
            "rerank_documents": RERANK_DOCUMENTS, "rerank_words": RERANK_WORDS, "chat_model": chat,
            "score_model": score, "rerank_path": rerank_path, "level_budget_s": budget_s,
            "requests_per_level": {str(c): per_level(requests, c) for c in levels},
            "router_args": router_args(plan), "litellm_workers": LITELLM_WORKERS,
        },
        "wall_s": round(time.perf_counter() - began, 1),
        "rows": rows,
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gateway_routes.json").write_text(json.dumps(result, indent=2) + "\n")
    print(write_markdown(result, RESULTS / "gateway_routes.md"))
    log(f"done in {result['wall_s']} s; wrote {RESULTS}/gateway_routes.json, .md")


def kind(path: str) -> Literal["chat", "rerank"]:
    return "chat" if path == CHAT_PATH else "rerank"


def measure_path(
    target: Target, path: str, levels: list[int], requests: int, budget_s: float, rows: list[dict[str, Any]]
) -> None:
    """The target's levels on one path, each row marked with it; `direct` rows are the path's baseline."""
    mine: list[dict[str, Any]] = []
    bench_target(target, levels, requests, budget_s, mine)
    rows.extend({"path": path, **row} for row in mine)


# What each target is on the route table, where the name alone does not say.
LABELS = {(CHAT_PATH, "vllm-router"): "vllm-router (the route table)", ("rerank", "direct"): "direct (the route table)"}


def write_markdown(result: dict[str, Any], path: Path) -> str:
    s, rows = result["settings"], result["rows"]
    lines = [
        "| path | target | concurrency | requests | errors | TTFT p50 ms | +p50 vs direct | TTFT p95 ms | TTFT p99 ms "
        "| ITL p50 ms | req/s | CPU % | CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_path = {route_path: [r for r in rows if r["path"] == route_path] for route_path in (CHAT_PATH, s["rerank_path"])}
    for route_path, mine in by_path.items():
        added = overheads(mine, "ttft_p50_ms")
        for r in mine:
            extra = added.get(r["gateway"], {}).get(r["concurrency"])
            label = LABELS.get((route_path if route_path == CHAT_PATH else "rerank", r["gateway"]), r["gateway"])
            cells = [route_path, label, r["concurrency"], r["requests"], r["errors"], r["ttft_p50_ms"],
                     "-" if extra is None else f"{extra:+g}", r["ttft_p95_ms"], r["ttft_p99_ms"], r["itl_p50_ms"],
                     r["rps"], r["target_cpu_percent"], r["cpu_ms_per_request"]]  # fmt: skip
            lines.append("| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in cells) + " |")
    table = "\n".join(lines)
    per_level_text = ", ".join(f"{n} at {c}" for c, n in s["requests_per_level"].items())
    text = f"""# {result["stack"]}'s route table under load: chat through vllm-router, rerank straight to the model

`{result["command"]}` on {result["machine"]} (load average {result["load_average_at_start"][0]:g} at the
start); {result["wall_s"]} s in all.

The HTTPRoute the program renders for {result["stack"]} sends `{CHAT_PATH}` (and the other chat, completion and
embedding paths) to vllm-router and `{s["rerank_path"]}` straight to {s["score_model"]}'s Service. Here each
request goes where that route sends it: `vllm-router` is the real router with {result["stack"]}'s arguments
(multi-model mode, every stand-in registered as pod discovery would). `direct` is the stand-ins with nothing in
between, which for rerank is the route table's own path (its URLs come from the route);
`litellm-{s["litellm_workers"]}w` is the real LiteLLM proxy configured for the same models, the path
{result["stack"]} took before. Stand-ins: {s["stand_ins_per_model"]} for {s["chat_model"]} streaming
{s["tokens"]} tokens {s["itl_ms"]:g} ms apart, {s["stand_ins_per_model"]} for {s["score_model"]} answering a
rerank of {s["rerank_documents"]} passages of {s["rerank_words"]} words after {s["rerank_ms"]:g} ms, one
stream's duration, so both paths run at the same request rate. Requests per level: {per_level_text}, closed-loop
clients staggered over one stream, at most {s["level_budget_s"]:g} s per level. For rerank, which is not
streamed, "TTFT" is the whole answer. Envoy is not in the loop; it sits in front of every target alike.

{table}

Chat: {" ".join(reading(by_path[CHAT_PATH], s["itl_ms"]))}

Rerank: {" ".join(reading(by_path[s["rerank_path"]], s["itl_ms"], s["rerank_ms"]))}

Caveats: as in gateway_overhead.md, the {os.cpu_count()} cores are shared by the load generator, the stand-ins
and the gateway, each level is one run, and the stand-ins have no model cost of their own beyond their fixed
delays. Levels: {", ".join(str(c) for c in levels_of(rows))}.
"""
    path.write_text(text)
    return table
