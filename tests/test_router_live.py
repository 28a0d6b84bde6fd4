"""The real vllm-router, run with the arguments the program renders, in front of fake vLLM servers on 127.0.0.1:
routing and failover, and what keeps its worker-management endpoints closed. Every process is started and
stopped here; every wait is bounded."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from components.gateway import NAME as LLM_GATEWAY
from components.images import VLLM_ROUTER_VERSION
from components.planning.types import ClusterPlan
from testbed.gateways import loopback_router_args
from testbed.http_client import chat, request, served_by
from testbed.processes import VENV_BIN, fake_vllm, free_port, running, start, stop, wait_http
from testbed.routes import route_admits, route_backends
from testbed.stacks import rendered

STACK = "example-multinode"  # vllm-router, two models: multi-model (IGW) mode


def plan_of(stack: str) -> ClusterPlan:
    return ClusterPlan.model_validate(rendered(stack).exports["plan"])


def http_route(stack: str) -> dict[str, Any]:
    (route,) = [o for o in rendered(stack).manifests if o["kind"] == "HTTPRoute"]
    return route


@contextmanager
def router(args: list[str], port: int, workers: dict[str, int], log_dir: Path) -> Iterator[str]:
    """vllm-router on 127.0.0.1 with each worker registered, as pod discovery does in the cluster; its URL."""
    process: subprocess.Popen[bytes] = start([str(VENV_BIN / "vllm-router"), *args], log_dir / "router.log")
    with running([process]):
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/liveness", 30, process, log_dir / "router.log")
        for worker_port in workers.values():
            status, _, body = request(f"{url}/workers", {"url": f"http://127.0.0.1:{worker_port}"})
            assert status < 300, body
        yield url


def test_vllm_router_routes_each_model_to_its_workers_and_survives_a_dead_worker(tmp_path: Path) -> None:
    plan = plan_of(STACK)
    model_a, model_b = (m.name for m in plan.models)
    args = loopback_router_args(plan, port := free_port(), free_port())
    assert "--enable-igw" in args and args[args.index("--policy") + 1] == plan.gateway.routing_policy
    ports = {"a1": free_port(), "a2": free_port(), "b1": free_port()}
    workers = {
        name: fake_vllm(port, [model_a if name.startswith("a") else model_b], name, tmp_path / f"{name}.log")
        for name, port in ports.items()
    }
    with running(list(workers.values())):
        for name, worker_port in ports.items():
            wait_http(f"http://127.0.0.1:{worker_port}/health", 30, log=tmp_path / f"{name}.log")
        with router(args, port, ports, tmp_path) as url:
            served: dict[str, set[str]] = {model_a: set(), model_b: set()}
            for model in (model_a, model_b) * 4:
                status, _, body = request(f"{url}/v1/chat/completions", chat(model))
                assert status == 200
                served[model].add(served_by(body))
            # Each model only ever reaches its own workers (cache_aware may keep one of a model's two).
            assert served[model_a] <= {"a1", "a2"} and served[model_a]
            assert served[model_b] == {"b1"}

            status, _, body = request(f"{url}/v1/chat/completions", chat(model_a, stream=True))
            assert status == 200 and body.decode().rstrip().endswith("data: [DONE]")

            # Kill a worker that has been serving model A; the router must carry on with the other.
            stop(workers[sorted(served[model_a])[0]])
            statuses = [request(f"{url}/v1/chat/completions", chat(model_a))[0] for _ in range(10)]
            assert statuses == [200] * 10


def test_vllm_router_worker_management_is_closed_by_the_route_table_not_by_a_key(tmp_path: Path) -> None:
    """vllm-router (images.VLLM_ROUTER_VERSION) checks no client key: `--api-key` only authenticates the router to
    its workers, and with it set the router still lists, removes and flushes workers for anyone. Nothing in the
    router closes these endpoints, so nothing is injected for it and two things keep them out of reach: the
    HTTPRoute admits none of them, and the NetworkPolicy admits only Envoy's pods to the router's API port
    (tests/test_gateway.py). If a router release starts refusing keyless calls here, revisit the injection."""
    assert VLLM_ROUTER_VERSION == "0.1.17", "re-measure: does this router version check a key?"
    plan = plan_of(STACK)
    model = plan.models[0].name
    args = [*loopback_router_args(plan, port := free_port(), free_port()), "--api-key", "sk-router-test-key-0123"]
    worker_port = free_port()
    worker = fake_vllm(worker_port, [model], "w1", tmp_path / "w1.log")
    with running([worker]):
        wait_http(f"http://127.0.0.1:{worker_port}/health", 30, log=tmp_path / "w1.log")
        with router(args, port, {"w1": worker_port}, tmp_path) as url:
            worker_url = f"http://127.0.0.1:{worker_port}"
            status, _, body = request(f"{url}/list_workers")  # no key
            assert status == 200 and worker_url in json.loads(body)["urls"]
            assert request(f"{url}/get_loads")[0] == 200
            assert request(f"{url}/v1/chat/completions", chat(model))[0] == 200
            removed = request(f"{url}/remove_worker?url=http://127.0.0.1:1", method="POST")
            assert removed[0] == 200, removed[2]

    route = http_route(STACK)
    management = ["/list_workers", "/get_loads", "/remove_worker", "/add_worker", "/flush_cache", "/workers",
                  "/workers/x", "/generate", "/v1/responses", "/metrics"]  # fmt: skip
    assert [p for p in management if route_admits(route, p)] == []
    assert all(route_admits(route, p) for p in plan.gateway.routes)
    assert "filters" not in route["spec"]["rules"][0]  # no credential injected: the router would ignore it


def test_prods_route_table_sends_chat_and_embeddings_through_the_router_and_rerank_to_the_reranker(
    tmp_path: Path,
) -> None:
    """prod's rendered HTTPRoute in front of the real router with prod's arguments (multi-model mode) and a stand-in
    per task, every one registered with the router as pod discovery registers every model server: each request
    goes to the backend the route picks for its path. Rerank must go around the router, which does not route it
    to the score model (images.VLLM_ROUTER_VERSION): if a router release does, the direct route can go."""
    plan = plan_of("prod")
    route = http_route("prod")
    (direct,) = plan.gateway.direct_routes
    models = {task: next(m.name for m in plan.models if m.task == task) for task in ("generate", "embed", "score")}
    assert models["score"] == direct.model
    ports = {task: free_port() for task in models}
    workers = [fake_vllm(ports[task], [model], task, tmp_path / f"{task}.log") for task, model in models.items()]
    rerank = {"model": direct.model, "query": "q", "documents": ["x", "y", "z"]}
    bodies: dict[str, dict[str, Any] | None] = {
        "/v1/models": None,
        "/v1/chat/completions": chat(models["generate"]),
        "/v1/completions": {"model": models["generate"], "prompt": "hi", "max_tokens": 4},
        "/v1/embeddings": {"model": models["embed"], "input": ["a", "b"]},
        "/v1/rerank": rerank,
    }
    assert set(bodies) == {*plan.gateway.routes, *direct.paths}  # every path a client may call
    args = loopback_router_args(plan, port := free_port(), free_port())
    with running(workers):
        for task, worker_port in ports.items():
            wait_http(f"http://127.0.0.1:{worker_port}/health", 30, log=tmp_path / f"{task}.log")
        with router(args, port, ports, tmp_path) as url:
            services = {LLM_GATEWAY: url, direct.model: f"http://127.0.0.1:{ports['score']}"}
            answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
            for path, body in bodies.items():
                (backend,) = route_backends(route, path) or []
                assert (backend["name"] == direct.model) == (path in direct.paths), path
                answers[path] = request(f"{services[backend['name']]}{path}", body)
                assert answers[path][0] == 200, (path, answers[path][2][:300])
            assert served_by(answers["/v1/chat/completions"][2]) == "generate"
            assert len(json.loads(answers["/v1/embeddings"][2])["data"]) == 2
            assert answers["/v1/rerank"][1]["X-Served-By"] == "score"
            assert len(json.loads(answers["/v1/rerank"][2])["results"]) == 3
            status, _, answer = request(f"{url}/v1/rerank", rerank)  # what the router would have done with it
            assert status != 200 or "results" not in json.loads(answer), answer[:300]
