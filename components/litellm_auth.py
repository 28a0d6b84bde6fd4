"""LiteLLM's custom auth hook for the API gateway's inference key: inference routes only, nothing else.

LiteLLM runs here without a database, so it has no virtual keys that could be scoped to routes; its
`admin_only_routes` and `public_routes` settings are ignored without an enterprise license, and
`general_settings.allowed_routes` is flagged as enterprise-only and would bind every caller, not one key. Its
open-source `general_settings.custom_auth` hook replaces its own key check: LiteLLM calls the hook before it
would compare the master key and returns what the hook returns, or fails the request with what it raises
(litellm/proxy/auth/user_api_key_auth.py, user_api_key_auth_builder, "USER-DEFINED AUTH FUNCTION"). So with
this hook:

- the one key Envoy injects (LITELLM_INFERENCE_KEY, never the master key) passes on the plan's inference paths
  (LITELLM_INFERENCE_ROUTES, comma-separated exact paths) and on no other path (403);
- any other key, the master key included, and no key at all get 401 on every path the hook guards;
- the token it returns is a plain internal user whose `allowed_routes` are those paths, which LiteLLM enforces
  again on its own for every auth flow (RouteChecks.should_call_route in _authorize_authenticated_request).

Refusals are ProxyExceptions on purpose: with litellm_enterprise's custom_auth_settings mode "auto", any other
exception would fall back to LiteLLM's own key check.

Probes and /metrics/ never reach the hook (they have no auth dependency). LiteLLM loads this file from the
directory of its config.yaml (general_settings.custom_auth: litellm_auth.user_api_key_auth): the LLM gateway's
ConfigMap ships this source next to the config (components/gateway.py). It runs inside the LiteLLM image, so it
imports only the standard library, FastAPI and LiteLLM, and it refuses to load without its settings.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping

from fastapi import Request, status
from litellm.proxy._types import LitellmUserRoles, ProxyErrorTypes, ProxyException, UserAPIKeyAuth
from litellm.proxy.auth.auth_utils import get_request_route

KEY_ENV = "LITELLM_INFERENCE_KEY"
ROUTES_ENV = "LITELLM_INFERENCE_ROUTES"
# What LiteLLM's logs and metrics call the caller: the API gateway, whichever client it authenticated.
KEY_ALIAS = "llm-api-gateway"


class InferenceOnlyAuth:
    """One key, allowed on a fixed set of exact paths. (No dataclass: LiteLLM executes this file without
    registering it in sys.modules, where dataclasses would look the module up.)"""

    def __init__(self, key: str, routes: frozenset[str]) -> None:
        self.key = key
        self.routes = routes

    def check(self, route: str, api_key: str | None) -> UserAPIKeyAuth:
        """The token for an allowed call; ProxyException 401 for a wrong or missing key, 403 for another path."""
        if not api_key or not hmac.compare_digest(api_key.encode(), self.key.encode()):
            raise refusal(status.HTTP_401_UNAUTHORIZED, "Authentication Error: invalid API key", "api_key")
        if route not in self.routes:
            raise refusal(status.HTTP_403_FORBIDDEN, f"Route {route} is not an inference route", "route")
        return UserAPIKeyAuth(
            key_alias=KEY_ALIAS,
            user_role=LitellmUserRoles.INTERNAL_USER,
            allowed_routes=sorted(self.routes),
        )

    async def __call__(self, request: Request, api_key: str | None) -> UserAPIKeyAuth:
        # The route as LiteLLM's own checks see it (the ASGI path, root path stripped), not request.url.path.
        return self.check(get_request_route(request), api_key)


def refusal(code: int, message: str, param: str) -> ProxyException:
    return ProxyException(message=message, type=ProxyErrorTypes.auth_error, param=param, code=code)


def from_environment(environ: Mapping[str, str]) -> InferenceOnlyAuth:
    """The hook's key and routes; ValueError (LiteLLM does not start) when either is missing."""
    key = environ.get(KEY_ENV, "")
    routes = frozenset(r.strip() for r in environ.get(ROUTES_ENV, "").split(",") if r.strip())
    if not key:
        raise ValueError(f"{KEY_ENV} is not set: the inference key Envoy injects")
    if not routes or not all(r.startswith("/") for r in routes):
        raise ValueError(f"{ROUTES_ENV} must list the inference paths, comma-separated, each starting with /")
    return InferenceOnlyAuth(key=key, routes=routes)


# What general_settings.custom_auth names; read once when LiteLLM loads its config.
user_api_key_auth = from_environment(os.environ)
