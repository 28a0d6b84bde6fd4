"""Which paths the rendered HTTPRoute admits (Gateway API path matching), and every route the real LiteLLM app
serves, so tests can check the one against the other and call each route."""

from __future__ import annotations

import functools
import os
import re
from typing import Any


def route_admits(route: dict[str, Any], path: str) -> bool:
    """Gateway API path matching (HTTPPathMatch): Exact, and PathPrefix by whole path elements."""
    for rule in route["spec"]["rules"]:
        for match in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
            kind, value = match["path"]["type"], match["path"]["value"]
            if kind == "Exact" and path == value:
                return True
            if kind == "PathPrefix" and (path == value or path.startswith(value.rstrip("/") + "/")):
                return True
            if kind == "RegularExpression":
                raise AssertionError(f"{value}: a regular expression route cannot be checked path by path")
    return False


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
