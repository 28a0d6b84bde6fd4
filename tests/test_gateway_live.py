"""The real LiteLLM proxy and the real vllm-router, run from the configuration the program renders, in front
of fake vLLM servers on 127.0.0.1. Every process is started and stopped here; every wait is bounded."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.planning.types import ClusterPlan
from testbed.gateways import loopback_router_args
from testbed.processes import VENV_BIN, fake_vllm, free_port, running, start, stop, wait_http
from testbed.stacks import rendered

MASTER_KEY = "sk-test-master-key-0123456789"


def request(
    url: str, body: dict[str, Any] | None = None, key: str | None = None, timeout: float = 60
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def served_by(body: bytes) -> str:
    """The stand-in names itself at the end of every answer: "... [a1]"."""
    content = json.loads(body)["choices"][0]["message"]["content"]
    return str(content.rsplit("[", 1)[1].rstrip("]"))


def chat(model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16, "stream": stream}


# ---------------------------------------------------------------- LiteLLM


def rendered_litellm_config(stack: str) -> dict[str, Any]:
    (config_map,) = [
        o
        for o in rendered(stack).manifests
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "llm-gateway-config"
    ]
    return dict(yaml.safe_load(config_map["data"]["config.yaml"]))


@pytest.fixture(scope="module")
def litellm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """prod's rendered LiteLLM config; api_base rewritten to two stand-ins, one failing every other request."""
    tmp = tmp_path_factory.mktemp("litellm")
    config = rendered_litellm_config("prod")
    flaky_model = "t-lite-it-1-0"
    names = [m["model_name"] for m in config["model_list"]]
    main_port, flaky_port, proxy_port = free_port(), free_port(), free_port()
    for entry in config["model_list"]:
        port = flaky_port if entry["model_name"] == flaky_model else main_port
        entry["litellm_params"]["api_base"] = f"http://127.0.0.1:{port}/v1"  # the only change
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp / "prometheus").mkdir()
    processes = [
        fake_vllm(main_port, [n for n in names if n != flaky_model], "main", tmp / "main.log"),
        fake_vllm(flaky_port, [flaky_model], "flaky", tmp / "flaky.log", fail_every=2),
    ]
    with running(processes):
        for port, log in ((main_port, "main.log"), (flaky_port, "flaky.log")):
            wait_http(f"http://127.0.0.1:{port}/health", 30, log=tmp / log)
        proxy = start(
            [
                str(VENV_BIN / "litellm"),
                "--config",
                str(tmp / "config.yaml"),
                "--host",
                "127.0.0.1",
                "--port",
                str(proxy_port),
                "--num_workers",
                "1",
            ],
            tmp / "litellm.log",
            env={
                "LITELLM_MASTER_KEY": MASTER_KEY,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus"),
            },
        )
        processes.append(proxy)
        wait_http(f"http://127.0.0.1:{proxy_port}/health/liveliness", 120, proxy, tmp / "litellm.log")
        yield {"url": f"http://127.0.0.1:{proxy_port}", "main": main_port, "flaky": flaky_port, "config": config}


def test_litellm_config_is_the_rendered_one_with_no_database(litellm: Any) -> None:
    config = litellm["config"]
    assert {e["litellm_params"]["model"].split("/")[0] for e in config["model_list"]} == {"hosted_vllm"}
    modes = {e["model_name"]: e["model_info"]["mode"] for e in config["model_list"]}
    assert modes["bge-m3"] == "embedding" and modes["bge-reranker-v2-m3"] == "rerank"
    assert "database_url" not in json.dumps(config).lower()


def test_litellm_refuses_requests_without_a_key(litellm: Any) -> None:
    status, _, _ = request(f"{litellm['url']}/v1/chat/completions", chat("qwen2-5-coder-7b-instruct"))
    assert status == 401


def test_litellm_serves_chat_with_the_master_key(litellm: Any) -> None:
    status, _, body = request(f"{litellm['url']}/v1/chat/completions", chat("qwen2-5-coder-7b-instruct"), MASTER_KEY)
    assert status == 200
    assert served_by(body) == "main"


def test_litellm_streams_to_done(litellm: Any) -> None:
    status, headers, body = request(
        f"{litellm['url']}/v1/chat/completions", chat("qwen2-5-coder-7b-instruct", stream=True), MASTER_KEY
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [line for line in body.decode().splitlines() if line.startswith("data: ")]
    assert len(events) > 2 and events[-1] == "data: [DONE]"


def test_litellm_embeddings_and_rerank(litellm: Any) -> None:
    status, _, body = request(f"{litellm['url']}/v1/embeddings", {"model": "bge-m3", "input": ["a", "b"]}, MASTER_KEY)
    assert status == 200 and len(json.loads(body)["data"]) == 2
    status, _, body = request(
        f"{litellm['url']}/v1/rerank",
        {"model": "bge-reranker-v2-m3", "query": "q", "documents": ["x", "y", "z"]},
        MASTER_KEY,
    )
    assert status == 200 and len(json.loads(body)["results"]) == 3


def test_litellm_retries_through_a_backend_that_fails_every_other_request(litellm: Any) -> None:
    statuses = [
        request(f"{litellm['url']}/v1/chat/completions", chat("t-lite-it-1-0"), MASTER_KEY)[0] for _ in range(10)
    ]
    assert statuses == [200] * 10
    _, _, stats = request(f"http://127.0.0.1:{litellm['flaky']}/_stats")
    assert json.loads(stats)["counts"]["/v1/chat/completions"] > 10  # the failures happened and were retried


def test_litellm_probes_and_metrics_need_no_key(litellm: Any) -> None:
    assert request(f"{litellm['url']}/health/readiness")[0] == 200
    status, _, body = request(f"{litellm['url']}/metrics/")
    assert status == 200 and b"litellm_" in body


# ---------------------------------------------------------------- vllm-router


def plan_of(stack: str) -> ClusterPlan:
    return ClusterPlan.model_validate(rendered(stack).exports["plan"])


def test_vllm_router_routes_each_model_to_its_workers_and_survives_a_dead_worker(tmp_path: Path) -> None:
    plan = plan_of("example-multinode")  # vllm-router, two models: multi-model (IGW) mode
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
        router = start([str(VENV_BIN / "vllm-router"), *args], tmp_path / "router.log")
        with running([router]):
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/liveness", 30, router, tmp_path / "router.log")
            # What pod discovery does in the cluster: register each model-server pod.
            for worker_port in ports.values():
                status, _, body = request(f"{url}/workers", {"url": f"http://127.0.0.1:{worker_port}"})
                assert status < 300, body

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


def test_every_path_the_route_admits_answers_through_litellm(litellm: Any) -> None:
    """The real LiteLLM behind prod's route table: each admitted path serves inference with the injected key."""
    bodies: dict[str, dict[str, Any] | None] = {
        "/v1/models": None,
        "/v1/chat/completions": chat("qwen2-5-32b-instruct"),
        "/v1/completions": {"model": "qwen2-5-32b-instruct", "prompt": "hi", "max_tokens": 4},
        "/v1/embeddings": {"model": "bge-m3", "input": ["a"]},
        "/v1/rerank": {"model": "bge-reranker-v2-m3", "query": "q", "documents": ["x"]},
    }
    routes = plan_of("prod").gateway.routes
    assert set(routes) == set(bodies)
    for path in routes:
        status, _, body = request(f"{litellm['url']}{path}", bodies[path], MASTER_KEY)
        assert status == 200, (path, body[:300])
