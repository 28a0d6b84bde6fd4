"""The README's "Use the cluster" examples, run as a client would: every curl and OpenAI SDK block as written, against
prod rendered once with vllm-router and once with LiteLLM. The real gateway runs from the rendered configuration in
front of fake vLLM servers; testbed/fake_envoy.py plays Envoy from the rendered HTTPRoute, SecurityPolicy,
BackendTrafficPolicy and HTTPRouteFilter (Envoy cannot run here). Every process is started and stopped here on
127.0.0.1; every wait is bounded."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.api_gateway import CLIENT_KEYS_SECRET, UPSTREAM_CREDENTIAL
from components.gateway_config import INFERENCE_ROUTES_ENV
from components.planning.types import ClusterPlan
from components.stacks import PROJECT_DIR
from components.tools.render import ProgramRun, run_program
from testbed.client_examples import (
    ApiUnderTest,
    code_blocks,
    promised_status,
    rendered_services,
    section_text,
    shell_commands,
    sse_events,
    streamed_text,
)
from testbed.fake_envoy import AUTH_FAILED, LOCAL_RATE_LIMITED, envoy_config
from testbed.gateways import litellm_env, litellm_files, loopback_router_args
from testbed.http_client import request
from testbed.processes import VENV_BIN, fake_vllm, free_port, running, start, wait_http
from testbed.stacks import rendered, stack_config
from tests.test_versions import pins

STACK = "prod"
CHAT, EMBED, SCORE = "qwen2-5-coder-32b-instruct", "bge-m3", "bge-reranker-v2-m3"  # the models the examples call
README_CLIENT = "code-assistant"  # whose key the examples use
LIMITED_CLIENT = "meeting-summaries"  # whose rateLimit a test spends
INFERENCE_KEY = "sk-test-inference-key-0123456789"  # what the rendered HTTPRouteFilter injects for LiteLLM
MASTER_KEY = "sk-test-master-key-0123456789"
UNKNOWN_MODEL_BODY = {"vllm-router": "does not exist", "litellm": "Invalid model name passed in model="}


def blocks(language: str) -> list[str]:
    return [code for lang, code in code_blocks(section_text()) if lang == language]


def setup_block() -> str:
    (block,) = [b for b in blocks("bash") if "pulumi stack output" in b]
    return block


def error_block() -> str:
    (block,) = [b for b in blocks("bash") if "-w '%{http_code}" in b]
    return block


def python_blocks() -> tuple[str, list[str], str]:
    """(the client's setup, the examples, the error handling) of the Python blocks, in the README's order."""
    setup, *examples, errors = blocks("python")
    assert "OpenAI(" in setup and "except openai." in errors
    return setup, examples, errors


def stack_with(kind: str) -> ProgramRun:
    config = copy.deepcopy(stack_config(STACK))
    config["gateway"] = {**config.get("gateway", {}), "kind": kind}
    return run_program(config)


def one(run: ProgramRun, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in run.manifests if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def start_litellm(run: ProgramRun, ports: dict[str, int], port: int, tmp: Path, processes: list[Any]) -> None:
    """LiteLLM from the rendered ConfigMap and environment; api_base of each model rewritten to its stand-in."""
    files = one(run, "ConfigMap", "llm-gateway-config")["data"]
    config = yaml.safe_load(files["config.yaml"])
    for entry in config["model_list"]:
        entry["litellm_params"]["api_base"] = f"http://127.0.0.1:{ports.get(entry['model_name'], ports[CHAT])}/v1"
    (container,) = one(run, "Deployment", "llm-gateway")["spec"]["template"]["spec"]["containers"]
    routes = {e["name"]: e for e in container["env"]}[INFERENCE_ROUTES_ENV]["value"]
    (tmp / "prometheus").mkdir()
    env = litellm_env(MASTER_KEY, INFERENCE_KEY, routes, tmp / "prometheus")
    args = ["--config", str(litellm_files(files, config, tmp)), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]  # fmt: skip
    processes.append(start([str(VENV_BIN / "litellm"), *args], tmp / "gateway.log", env=env))
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", 180, processes[-1], tmp / "gateway.log")
    # What the HTTPRouteFilter injects: the rendered Secret's `credential` key (the test puts its own key there).
    assert set(one(run, "Secret", UPSTREAM_CREDENTIAL)["stringData"]) == {"credential"}


def start_router(run: ProgramRun, ports: dict[str, int], port: int, tmp: Path, processes: list[Any]) -> None:
    """vllm-router with the rendered arguments; every stand-in registered, as pod discovery would (all are servers)."""
    plan = ClusterPlan.model_validate(run.exports["plan"])
    args = loopback_router_args(plan, port, free_port())
    processes.append(start([str(VENV_BIN / "vllm-router"), *args], tmp / "gateway.log"))
    wait_http(f"http://127.0.0.1:{port}/liveness", 60, processes[-1], tmp / "gateway.log")
    for worker in ports.values():
        status, _, body = request(f"http://127.0.0.1:{port}/workers", {"url": f"http://127.0.0.1:{worker}"})
        assert status < 300, body


@pytest.fixture(scope="module", params=["vllm-router", "litellm"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiUnderTest]:
    kind = str(request.param)
    tmp = tmp_path_factory.mktemp(f"clients-{kind}")
    run = stack_with(kind)
    plan = ClusterPlan.model_validate(run.exports["plan"])
    assert plan.gateway.kind == kind
    ports = {model: free_port() for model in (CHAT, EMBED, SCORE)}
    processes = [fake_vllm(p, [m], m, tmp / f"{m}.log") for m, p in ports.items()]
    with running(processes):
        for model, port in ports.items():
            wait_http(f"http://127.0.0.1:{port}/health", 30, log=tmp / f"{model}.log")
        gateway_port, envoy_port = free_port(), free_port()
        (start_litellm if kind == "litellm" else start_router)(run, ports, gateway_port, tmp, processes)
        services = {"llm-gateway": f"http://127.0.0.1:{gateway_port}"}
        services |= {m: f"http://127.0.0.1:{p}" for m, p in ports.items() if m in rendered_services(run.manifests)}
        assert rendered_services(run.manifests) <= set(services)
        keys = {c.name: f"sk-test-{c.name}-0123456789" for c in plan.auth.clients}
        secrets = {CLIENT_KEYS_SECRET: keys, UPSTREAM_CREDENTIAL: {"credential": f"Bearer {INFERENCE_KEY}"}}
        (tmp / "envoy.json").write_text(json.dumps(envoy_config(run.manifests, secrets, services)))
        args = ["-m", "testbed.fake_envoy", "--port", str(envoy_port), "--config", str(tmp / "envoy.json")]
        processes.append(start([sys.executable, *args], tmp / "envoy.log"))
        wait_http(f"http://127.0.0.1:{envoy_port}/", 30, processes[-1], tmp / "envoy.log")
        url = run.exports["apiUrl"]
        assert url.startswith("https://") and "<" not in url, url  # prod's is a real URL
        yield ApiUnderTest(kind, "http://" + url.removeprefix("https://"), f"http://127.0.0.1:{envoy_port}", keys,
                           plan.rate_limits.scope)  # fmt: skip


def test_the_examples_run_with_the_pinned_sdk() -> None:
    assert importlib.metadata.version("openai") == pins(PROJECT_DIR / "requirements-dev.txt")["openai"]


def test_the_setup_block_reads_outputs_the_program_exports() -> None:
    block, exports = setup_block(), rendered(STACK).exports
    assert set(re.findall(r"pulumi stack output (\w+)", block)) == {"apiUrl", "models", "clientKeys"} <= set(exports)
    assert f"# {exports['apiUrl']}\n" in block
    (client,) = re.findall(r"jq -r '\.\"([a-z0-9-]+)\"'", block)
    assert client == README_CLIENT and client in {c["name"] for c in stack_config(STACK)["auth"]["clients"]}
    models = exports["models"]
    assert CHAT in models["generate"] and EMBED in models["embed"] and SCORE in models["score"]


def test_every_curl_example_answers_as_shown(api: ApiUnderTest) -> None:
    examples = [b for b in blocks("bash") if b not in (setup_block(), error_block())]
    assert len(examples) == 5
    for block in examples:
        out = api.run_shell(block, api.keys[README_CLIENT])
        if '"stream": true' in block:
            events = sse_events(out)
            assert events[-1] == "[DONE]" and streamed_text(events).startswith("tok0 "), out[-500:]
        elif "/v1/chat/completions" in block:
            assert json.loads(out)["choices"][0]["message"]["content"].endswith(f"[{CHAT}]")
        elif "/v1/embeddings" in block:
            assert [d["index"] for d in json.loads(out)["data"]] == [0, 1]
        elif "/v1/rerank" in block:
            assert sorted(r["index"] for r in json.loads(out)["results"]) == [0, 1, 2]
        elif "/v1/models" in block:
            answer = json.loads(out)
            names = [m["id"] for m in answer["data"]] if api.gateway_kind == "litellm" else answer["models"]
            assert {CHAT, EMBED} <= set(names), answer
        else:
            raise AssertionError(f"an example the test does not know: {block}")


def test_every_python_example_prints_its_answer(api: ApiUnderTest) -> None:
    setup, examples, _ = python_blocks()
    assert len(examples) == 4
    marker = "----- next example -----"
    source = setup + "".join(f"\nprint({marker!r})\n{example}" for example in examples)
    outputs = api.run_python(source, api.keys[README_CLIENT]).split(marker + "\n")[1:]
    chat, stream, vectors, ranked = (o.strip() for o in outputs)
    assert chat.startswith("tok0 ") and chat.endswith(f"[{CHAT}]")
    assert stream.startswith("tok0 ") and stream.endswith(f"[{CHAT}]")
    assert vectors == "2 vectors of 4 dimensions"
    assert sorted(line.split()[0] for line in ranked.splitlines()) == ["0", "1", "2"]


def test_each_error_line_answers_the_status_it_promises(api: ApiUnderTest) -> None:
    commands = shell_commands(error_block())
    assert len(commands) == 4
    for command in commands:
        out = api.run_shell(command, api.keys[README_CLIENT]).splitlines()
        assert int(out[-1]) == promised_status(command, api.gateway_kind), (command, out)
        if "qwen-coder" in command:  # the unknown model: the body the table names
            assert UNKNOWN_MODEL_BODY[api.gateway_kind] in "\n".join(out[:-1])
            assert UNKNOWN_MODEL_BODY[api.gateway_kind] in section_text()


def test_the_stand_in_answers_401_and_404_as_envoy_does(api: ApiUnderTest) -> None:
    for key in (None, "sk-llm-not-a-key"):
        status, _, body = api.get("/v1/models", key)
        assert (status, body) == (401, AUTH_FAILED)
    assert AUTH_FAILED.decode() in section_text()
    assert api.get("/v1/files", api.keys[README_CLIENT])[:3:2] == (404, b"")
    assert api.get("/v1/files", None)[0] == 404  # no route: the per-route key check never runs


def test_a_spent_rate_limit_answers_429_and_the_sdk_example_reports_it(api: ApiUnderTest) -> None:
    limit = next(c.rate_limit for c in _plan_clients() if c.name == LIMITED_CLIENT)
    assert limit is not None and limit.unit == "Minute" and limit.requests <= 600  # spent well inside the window
    key = api.keys[LIMITED_CLIENT]
    statuses = [api.get("/v1/models", key)[0] for _ in range(limit.requests)]
    assert statuses == [200] * limit.requests
    status, headers, body = api.get("/v1/models", key)
    assert status == 429
    assert body == (LOCAL_RATE_LIMITED if api.rate_limit_scope == "local" else b"")
    assert headers["x-ratelimit-remaining"] == "0" and 0 < int(headers["x-ratelimit-reset"]) <= 60
    assert headers["x-ratelimit-limit"].startswith(f"{limit.requests}, ")
    assert api.get("/v1/models", api.keys[README_CLIENT])[0] == 200  # another client is not limited

    setup, _, errors = python_blocks()
    limited = api.run_python(f"{setup}\n{errors}", key).splitlines()
    assert len(limited) == 2 and all(re.fullmatch(r"rate limited; the limit refills in \d+ s", o) for o in limited)


def test_the_sdk_error_example_reports_each_error(api: ApiUnderTest) -> None:
    setup, _, errors = python_blocks()
    refused = api.run_python(f"{setup}\n{errors}", "sk-llm-not-a-key").splitlines()
    assert refused == ["the API gateway refused the key: 401"] * 2
    answer, unknown = api.run_python(f"{setup}\n{errors}", api.keys[README_CLIENT]).splitlines()
    assert answer.startswith("tok0 ") and answer.endswith(f"[{CHAT}]")
    (call,) = [line for line in errors.splitlines() if line.startswith('ask("qwen-coder")')]
    assert unknown.startswith(f"{promised_status(call, api.gateway_kind)} Error code: ")
    assert UNKNOWN_MODEL_BODY[api.gateway_kind] in unknown


def _plan_clients() -> list[Any]:
    return ClusterPlan.model_validate(rendered(STACK).exports["plan"]).auth.clients
