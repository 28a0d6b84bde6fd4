"""Which paths the rendered HTTPRoute admits and where it sends them (Gateway API path matching), and every route
the real LiteLLM app and vLLM's server serve, so tests can check the one against the others and call each route."""

from __future__ import annotations

import ast
import functools
import os
import re
from typing import Any

from components.stacks import PROJECT_DIR


def route_admits(route: dict[str, Any], path: str) -> bool:
    """Gateway API path matching (HTTPPathMatch): Exact, and PathPrefix by whole path elements."""
    return route_backends(route, path) is not None


def route_backends(route: dict[str, Any], path: str) -> list[dict[str, Any]] | None:
    """The backendRefs of the rule that takes `path`, None when no rule admits it. Gateway API precedence between
    rules that match: an Exact match, then the longest prefix, then the first rule."""
    taken: list[tuple[tuple[int, int, int], list[dict[str, Any]]]] = []
    for index, rule in enumerate(route["spec"]["rules"]):
        for match in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
            kind, value = match["path"]["type"], match["path"]["value"]
            if kind == "RegularExpression":
                raise AssertionError(f"{value}: a regular expression route cannot be checked path by path")
            if kind == "Exact" and path == value:
                taken.append(((0, 0, index), rule.get("backendRefs") or []))
            if kind == "PathPrefix" and (path == value or path.startswith(value.rstrip("/") + "/")):
                taken.append(((1, -len(value), index), rule.get("backendRefs") or []))
    return min(taken, key=lambda t: t[0])[1] if taken else None


@functools.cache
def vllm_server_paths() -> frozenset[str]:
    """Every path vLLM's own HTTP servers declare (`@router.post("/score")`, `@app.get(...)`, `Mount("/metrics")`
    in the pinned vLLM package of .venv-vllm, vllm/entrypoints), read from the source: whatever flags switch on."""
    packages = sorted((PROJECT_DIR / ".venv-vllm" / "lib").glob("python3*/site-packages/vllm/entrypoints"))
    if not packages:
        raise AssertionError("no .venv-vllm: install it with the README's test command (requirements-vllm.txt)")
    verbs = {"get", "post", "put", "delete", "patch", "api_route", "add_api_route"}
    found: set[str] = set()
    for source in packages[0].rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            first, func = node.args[0], node.func
            declares = (isinstance(func, ast.Attribute) and func.attr in verbs) or (
                isinstance(func, ast.Name) and func.id == "Mount"
            )
            if declares and isinstance(first, ast.Constant) and str(first.value).startswith("/"):
                found.add(re.sub(r"\{[^}]+\}", "x", str(first.value)))
    return frozenset(found)


@functools.cache
def litellm_app_routes() -> dict[str, frozenset[str]]:
    """Every path the real LiteLLM proxy app serves (its FastAPI routes, included routers and mounts walked),
    path parameters filled in so that each is a concrete request, with its HTTP methods (GET for a mount).
    Optional feature routers (MCP, vector stores, ...) register on their first request; all are registered first,
    as LITELLM_DISABLE_LAZY_ROUTES would at startup, so none is missed."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from the internet on import
    from litellm.proxy._lazy_features import register_all_features
    from litellm.proxy.proxy_server import app

    register_all_features(app)

    found: dict[str, set[str]] = {}

    def walk(routes: list[Any], prefix: str = "") -> None:
        for route in routes:
            if hasattr(route, "path"):
                path = re.sub(r"\{[^}]+\}", "x", prefix + route.path)
                found.setdefault(path, set()).update(getattr(route, "methods", None) or {"GET"})
            for attribute in ("router", "original_router"):
                inner = getattr(route, attribute, None)
                if inner is not None and isinstance(getattr(inner, "routes", None), list):
                    walk(inner.routes, prefix + getattr(route, "prefix", ""))

    walk(app.routes)
    return {path: frozenset(methods) for path, methods in found.items()}
