"""The real LiteLLM proxy, run from what the program renders (the ConfigMap's config.yaml and custom auth hook, the
container's environment) in front of fake vLLM servers on 127.0.0.1: inference with the key Envoy injects, and
nothing else with it. Every process is started and stopped here; every wait is bounded.
vllm-router: tests/test_router_live.py."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from components.gateway_config import INFERENCE_ROUTES_ENV
from components.planning.types import ClusterPlan
from testbed.gateways import litellm_env, litellm_files
from testbed.http_client import chat, request, served_by
from testbed.processes import VENV_BIN, fake_vllm, free_port, running, start, wait_http
from testbed.routes import litellm_app_routes, route_admits
from testbed.stacks import rendered

# The stack that runs LiteLLM for its model fallbacks and serves every task (prod runs vllm-router:
# tests/test_router_live.py).
STACK = "example-gke"
FLAKY_MODEL = "qwen3-32b"
MASTER_KEY = "sk-test-master-key-0123456789"
INFERENCE_KEY = "sk-test-inference-key-0123456789"  # what Envoy injects
# One request per inference path the plan serves (the stack serves every task).
INFERENCE_BODIES: dict[str, dict[str, Any] | None] = {
    "/v1/models": None,
    "/v1/chat/completions": chat("qwen2-5-32b-instruct"),
    "/v1/completions": {"model": "qwen2-5-32b-instruct", "prompt": "hi", "max_tokens": 4},
    "/v1/embeddings": {"model": "bge-m3", "input": ["a"]},
    "/v1/rerank": {"model": "bge-reranker-v2-m3", "query": "q", "documents": ["x"]},
}
# Admin and management paths from LiteLLM's own route lists (litellm.proxy._types.LiteLLMRoutes), with the group
# each comes from, plus the ones measured reachable through the old /v1 prefix (issue 13).
MANAGEMENT = [
    ("POST", "/key/generate", "key_management_routes"), ("GET", "/key/list", "key_management_routes"),
    ("POST", "/user/new", "management_routes"), ("POST", "/team/new", "management_routes"),
    ("POST", "/model/new", "management_routes"), ("POST", "/model/delete", "management_routes"),
    ("GET", "/model/info", "model_info_routes"), ("GET", "/v1/model/info", "model_info_routes"),
    ("GET", "/global/spend", "global_spend_tracking_routes"), ("GET", "/spend/logs", "spend_tracking_routes"),
    ("POST", "/global/spend/reset", "master_key_only_routes"), ("GET", "/v1/mcp/server", "mcp_management_routes"),
    ("POST", "/mcp", "mcp_inference_routes"), ("GET", "/mcp-rest/tools/list", "mcp_inference_routes"),
    ("POST", "/v1/vector_stores", "openai_routes"), ("GET", "/v1/files", "openai_routes"),
    ("GET", "/v1/batches", "openai_routes"), ("POST", "/v1/responses", "openai_routes"),
    ("POST", "/chat/completions", "openai_routes"), ("GET", "/health", "info_routes"),
    ("GET", "/get/config/callbacks", "admin_viewer_routes"), ("GET", "/config/yaml", "public_routes"),
    ("POST", "/config/update", None), ("POST", "/credentials", None), ("POST", "/cache/flushall", None),
]  # fmt: skip


def rendered_object(kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in rendered(STACK).manifests if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def rendered_env() -> dict[str, dict[str, Any]]:
    (container,) = rendered_object("Deployment", "llm-gateway")["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


@pytest.fixture(scope="module")
def litellm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The stack's rendered ConfigMap files and environment; api_base rewritten to two stand-ins, one failing every
    other request; test keys in place of the Secrets'."""
    tmp = tmp_path_factory.mktemp("litellm")
    files = rendered_object("ConfigMap", "llm-gateway-config")["data"]
    config = yaml.safe_load(files["config.yaml"])
    assert config["router_settings"]["fallbacks"], "the stack's reason for LiteLLM"
    flaky_model = FLAKY_MODEL
    names = [m["model_name"] for m in config["model_list"]]
    main_port, flaky_port, proxy_port = free_port(), free_port(), free_port()
    for entry in config["model_list"]:
        port = flaky_port if entry["model_name"] == flaky_model else main_port
        entry["litellm_params"]["api_base"] = f"http://127.0.0.1:{port}/v1"  # the only change
    config_path = litellm_files(files, config, tmp)
    (tmp / "prometheus").mkdir()
    env = litellm_env(MASTER_KEY, INFERENCE_KEY, rendered_env()[INFERENCE_ROUTES_ENV]["value"], tmp / "prometheus")
    processes = [
        fake_vllm(main_port, [n for n in names if n != flaky_model], "main", tmp / "main.log"),
        fake_vllm(flaky_port, [flaky_model], "flaky", tmp / "flaky.log", fail_every=2),
    ]
    with running(processes):
        for port, log in ((main_port, "main.log"), (flaky_port, "flaky.log")):
            wait_http(f"http://127.0.0.1:{port}/health", 30, log=tmp / log)
        args = ["--config", str(config_path), "--host", "127.0.0.1", "--port", str(proxy_port), "--num_workers", "1"]
        proxy = start([str(VENV_BIN / "litellm"), *args], tmp / "litellm.log", env=env)
        processes.append(proxy)
        wait_http(f"http://127.0.0.1:{proxy_port}/health/liveliness", 120, proxy, tmp / "litellm.log")
        yield {"url": f"http://127.0.0.1:{proxy_port}", "flaky": flaky_port, "config": config, "env": env}


def test_litellm_runs_the_rendered_config_and_environment_with_no_database(litellm: Any) -> None:
    config = litellm["config"]
    assert {e["litellm_params"]["model"].split("/")[0] for e in config["model_list"]} == {"hosted_vllm"}
    modes = {e["model_name"]: e["model_info"]["mode"] for e in config["model_list"]}
    assert modes["bge-m3"] == "embedding" and modes["bge-reranker-v2-m3"] == "rerank"
    assert "database_url" not in json.dumps(config).lower()
    assert config["general_settings"]["custom_auth"] == "litellm_auth.user_api_key_auth"
    assert set(litellm["env"]) == set(rendered_env())  # the pod's variables, no more, no fewer


@pytest.mark.parametrize("key", [None, "sk-some-client-key-0123456789", MASTER_KEY])
def test_litellm_refuses_inference_without_the_inference_key(litellm: Any, key: str | None) -> None:
    """No key, a client's key (Envoy strips it, but a pod could send one) and even the master key: 401."""
    for path, body in INFERENCE_BODIES.items():
        status, _, answer = request(f"{litellm['url']}{path}", body, key)
        assert status == 401, (path, answer[:300])


def test_litellm_serves_chat_with_the_inference_key(litellm: Any) -> None:
    status, _, body = request(f"{litellm['url']}/v1/chat/completions", chat("qwen2-5-32b-instruct"), INFERENCE_KEY)
    assert status == 200
    assert served_by(body) == "main"


def test_litellm_streams_to_done(litellm: Any) -> None:
    status, headers, body = request(
        f"{litellm['url']}/v1/chat/completions", chat("qwen2-5-32b-instruct", stream=True), INFERENCE_KEY
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [line for line in body.decode().splitlines() if line.startswith("data: ")]
    assert len(events) > 2 and events[-1] == "data: [DONE]"


def test_litellm_embeddings_and_rerank(litellm: Any) -> None:
    url, body = litellm["url"], {"model": "bge-m3", "input": ["a", "b"]}
    status, _, answer = request(f"{url}/v1/embeddings", body, INFERENCE_KEY)
    assert status == 200 and len(json.loads(answer)["data"]) == 2
    body = {"model": "bge-reranker-v2-m3", "query": "q", "documents": ["x", "y", "z"]}
    status, _, answer = request(f"{url}/v1/rerank", body, INFERENCE_KEY)
    assert status == 200 and len(json.loads(answer)["results"]) == 3


def test_litellm_retries_through_a_backend_that_fails_every_other_request(litellm: Any) -> None:
    url = f"{litellm['url']}/v1/chat/completions"
    statuses = [request(url, chat(FLAKY_MODEL), INFERENCE_KEY)[0] for _ in range(10)]
    assert statuses == [200] * 10
    _, _, stats = request(f"http://127.0.0.1:{litellm['flaky']}/_stats")
    assert json.loads(stats)["counts"]["/v1/chat/completions"] > 10  # the failures happened and were retried


def test_litellm_probes_and_metrics_need_no_key(litellm: Any) -> None:
    assert request(f"{litellm['url']}/health/readiness")[0] == 200
    status, _, body = request(f"{litellm['url']}/metrics/")
    assert status == 200 and b"litellm_" in body


def test_every_path_the_route_admits_answers_through_litellm(litellm: Any) -> None:
    """The real LiteLLM behind the stack's route table: each admitted path serves inference with the injected key."""
    route = rendered_object("HTTPRoute", "llm-api")
    routes = ClusterPlan.model_validate(rendered(STACK).exports["plan"]).gateway.routes
    assert set(routes) == set(INFERENCE_BODIES)
    assert rendered_env()[INFERENCE_ROUTES_ENV]["value"].split(",") == routes  # what the hook allows
    for path in routes:
        assert route_admits(route, path)
        status, _, body = request(f"{litellm['url']}{path}", INFERENCE_BODIES[path], INFERENCE_KEY)
        assert status == 200, (path, body[:300])


@pytest.mark.parametrize(("method", "path", "group"), MANAGEMENT)
def test_management_paths_refuse_the_injected_key(litellm: Any, method: str, path: str, group: str | None) -> None:
    """Not routed by Envoy, and refused even to a pod that reaches LiteLLM directly with the injected key."""
    from litellm.proxy._types import LiteLLMRoutes
    from litellm.proxy.auth.route_checks import RouteChecks

    if group is not None:
        assert RouteChecks.check_route_access(path, LiteLLMRoutes[group].value)
    assert method in litellm_app_routes()[path]
    assert not route_admits(rendered_object("HTTPRoute", "llm-api"), path)
    url = f"{litellm['url']}{path}"
    body: dict[str, Any] | None = None if method == "GET" else {}
    assert request(url, body, INFERENCE_KEY, timeout=15, method=method)[0] == 403
    assert request(url, body, None, timeout=15, method=method)[0] == 401
    assert request(url, body, MASTER_KEY, timeout=15, method=method)[0] == 401


def test_the_injected_key_opens_nothing_beyond_inference(litellm: Any) -> None:
    """Every route the LiteLLM app serves outside the inference paths: the injected key is refused (401/403), or
    the route answers it exactly as it answers any other bearer token: probes, the UI's static and public pages,
    and routes with an auth of their own (Lens workers check their own tokens, and have no database here)."""
    url, routes = litellm["url"], litellm_app_routes()
    assert len(routes) > 300
    opened: dict[str, tuple[int, int]] = {}
    deadline = time.monotonic() + 300
    for path, methods in sorted(routes.items()):
        assert time.monotonic() < deadline, f"the sweep of {len(routes)} routes is stuck at {path}"
        if path in INFERENCE_BODIES:
            continue
        method = "GET" if "GET" in methods else sorted(methods)[0]
        body: dict[str, Any] | None = None if method == "GET" else {}
        with_key = request(f"{url}{path}", body, INFERENCE_KEY, timeout=15, method=method)[0]
        if with_key in (401, 403):
            continue
        other = request(f"{url}{path}", body, "sk-not-a-key-0123456789", timeout=15, method=method)[0]
        if with_key != other:
            opened[f"{method} {path}"] = (with_key, other)
    assert opened == {}, f"the injected key changes these answers (with it, with another key): {opened}"
