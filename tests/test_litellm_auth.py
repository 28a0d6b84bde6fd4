"""LiteLLM's custom auth hook (components/litellm_auth.py), loaded the way LiteLLM loads it: its own loader, from
the directory of a config file, with the settings the LLM gateway's pod gives it."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException

from components import gateway_config as gateway
from components.planning.defaults import INFERENCE_ROUTES, MODELS_ROUTE

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from the internet on import
from litellm.proxy._types import LitellmUserRoles, ProxyException
from litellm.proxy.auth.route_checks import RouteChecks
from litellm.proxy.types_utils.utils import get_instance_fn

KEY = "sk-test-inference-key-0123456789"
ROUTES = [MODELS_ROUTE, *(path for paths in INFERENCE_ROUTES.values() for path in paths)]


def load_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    """The hook as LiteLLM's load_config gets it: get_instance_fn on general_settings.custom_auth, resolved next
    to config.yaml, with the ConfigMap's files written there."""
    for name in (gateway.INFERENCE_KEY_ENV, gateway.INFERENCE_ROUTES_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    files = {gateway.AUTH_MODULE.name: gateway.AUTH_MODULE.read_text(), "config.yaml": "{}"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return get_instance_fn(value="litellm_auth.user_api_key_auth", config_file_path=str(tmp_path / "config.yaml"))


@pytest.fixture
def hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings = {gateway.INFERENCE_KEY_ENV: KEY, gateway.INFERENCE_ROUTES_ENV: ",".join(ROUTES)}
    return load_hook(tmp_path, monkeypatch, settings)


@pytest.mark.parametrize("route", ROUTES)
def test_the_inference_key_passes_on_inference_routes_as_a_plain_user(hook: Any, route: str) -> None:
    token = hook.check(route, KEY)
    assert token.user_role == LitellmUserRoles.INTERNAL_USER
    assert sorted(token.allowed_routes) == sorted(ROUTES)
    assert token.api_key is None  # the key itself is never carried into logs or callbacks
    RouteChecks.should_call_route(route=route, valid_token=token)  # LiteLLM's own check lets it through


@pytest.mark.parametrize(
    "route",
    ["/key/generate", "/model/new", "/v1/model/info", "/config/update", "/v1/mcp/server", "/mcp/", "/health",
     "/v1/models/x", "/v1/chat/completions/", "/chat/completions", "/v1/responses", "/v1/vector_stores", "/"],
)  # fmt: skip
def test_the_inference_key_is_refused_everywhere_else(hook: Any, route: str) -> None:
    with pytest.raises(ProxyException) as refused:
        hook.check(route, KEY)
    assert refused.value.code == "403"


@pytest.mark.parametrize("key", [None, "", "sk-test-master-key-0123456789", KEY[:-1], KEY + "x", f"Bearer {KEY}"])
def test_any_other_key_is_refused_on_every_route(hook: Any, key: str | None) -> None:
    for route in [*ROUTES, "/key/generate"]:
        with pytest.raises(ProxyException) as refused:
            hook.check(route, key)
        assert refused.value.code == "401"


def test_litellm_enforces_the_tokens_routes_itself(hook: Any) -> None:
    """Second line: LiteLLM checks a token's allowed_routes on every auth flow, custom auth included
    (user_api_key_auth.py _authorize_authenticated_request -> RouteChecks.should_call_route)."""
    token = hook.check("/v1/models", KEY)
    for route in ("/key/generate", "/model/new", "/config/update", "/global/spend"):
        with pytest.raises(HTTPException) as refused:
            RouteChecks.should_call_route(route=route, valid_token=token)
        assert refused.value.status_code == 403


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({gateway.INFERENCE_ROUTES_ENV: "/v1/models"}, "LITELLM_INFERENCE_KEY is not set"),
        ({gateway.INFERENCE_KEY_ENV: KEY}, "LITELLM_INFERENCE_ROUTES must list the inference paths"),
        ({gateway.INFERENCE_KEY_ENV: KEY, gateway.INFERENCE_ROUTES_ENV: "v1/models"}, "LITELLM_INFERENCE_ROUTES"),
    ],
)
def test_the_hook_refuses_to_load_without_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    """LiteLLM then fails to start (load_config raises) instead of running with no key check."""
    with pytest.raises(ValueError, match=message):
        load_hook(tmp_path, monkeypatch, env)


def test_the_hook_imports_only_what_the_litellm_image_has() -> None:
    """It runs from the ConfigMap inside the LiteLLM image: no import of this project."""
    tree = ast.parse(gateway.AUTH_MODULE.read_text())
    imported = {
        ((node.module or "") if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "hmac", "os", "collections", "fastapi", "litellm"}, imported


def test_the_gateway_sets_the_variables_the_hook_reads(hook: Any) -> None:
    hook_globals = type(hook).check.__globals__  # the module LiteLLM loaded, never imported by the program
    assert hook_globals["KEY_ENV"] == gateway.INFERENCE_KEY_ENV
    assert hook_globals["ROUTES_ENV"] == gateway.INFERENCE_ROUTES_ENV


@pytest.mark.parametrize("mode", [None, "on", "auto"])
def test_refusals_reach_the_client_in_every_custom_auth_mode(
    hook: Any, monkeypatch: pytest.MonkeyPatch, mode: str | None
) -> None:
    """Through LiteLLM's enterprise wrapper (installed with the proxy): in mode "auto" any exception but a
    ProxyException would fall back to LiteLLM's own key check. The request's route comes from its ASGI scope."""
    import asyncio

    import litellm_enterprise.proxy.proxy_server as enterprise_settings
    from litellm_enterprise.proxy.auth.user_api_key_auth import enterprise_custom_auth
    from starlette.requests import Request

    monkeypatch.setattr(enterprise_settings, "custom_auth_settings", None if mode is None else {"mode": mode})
    # A private loop: asyncio.run would leave the main thread without one, which Pulumi's mocks in later tests need.
    loop = asyncio.new_event_loop()
    request = Request({"type": "http", "method": "POST", "path": "/key/generate", "headers": [], "query_string": b""})
    try:
        with pytest.raises(ProxyException) as refused:
            loop.run_until_complete(enterprise_custom_auth(request=request, api_key=KEY, user_custom_auth=hook))
        assert refused.value.code == "403"
        request = Request({"type": "http", "method": "GET", "path": "/v1/models", "headers": [], "query_string": b""})
        token = loop.run_until_complete(enterprise_custom_auth(request=request, api_key=KEY, user_custom_auth=hook))
    finally:
        loop.close()
    assert token is not None and token.user_role == LitellmUserRoles.INTERNAL_USER
