"""Where the API gateway counts each client's requests: in one Redis shared by every Envoy replica (global), in each
replica alone (local), or nowhere when no client has a limit.

A local count is per Envoy replica, so with N replicas a client gets N times its limit: global is the default as
soon as the API gateway runs more than one replica, and local stays an option for a single one. Global counts live
in a Redis that holds nothing else; Envoy Gateway's rate-limit service reads and increments them
(components/rate_limit_store.py).
"""

from __future__ import annotations

from components.planning.types import RateLimitPlan, SizingError
from components.spec import AuthSpec

# BackendTrafficPolicy rateLimit.{local,global}.rules maxItems (Envoy Gateway v1.9.0 CRD,
# tests/conformance/upstream/): one rule per limited client.
LOCAL_RULES_MAX = 16
GLOBAL_RULES_MAX = 256
# What happens when the count cannot be read: Envoy Gateway's rateLimit.failClosed defaults to false, so Envoy lets
# the request through (api/v1alpha1/envoygateway_types.go RateLimit.FailClosed; xds/translator/ratelimit.go sets
# failure_mode_deny only when it is true). The plan keeps that: a lost counter store must not stop inference.
FAIL_OPEN = "if Redis or the rate-limit service cannot answer, requests pass unlimited (failClosed: false)"


def resolve_rate_limits(auth: AuthSpec) -> RateLimitPlan:
    """The scope of the clients' limits, with its reason; SizingError when the stack asks for what cannot hold."""
    limited = [c.name for c in auth.clients if c.rate_limit is not None]
    replicas, asked = auth.replicas, auth.rate_limit_scope
    if not limited:
        unused = f" (rateLimitScope: {asked} has nothing to count)" if asked else ""
        return RateLimitPlan(scope="none", reason=f"no client has a rateLimit: nothing is counted{unused}")
    errors: list[str] = []
    if asked == "local" and replicas > 1:
        errors.append(
            f"auth.rateLimitScope: local counts per Envoy replica, so with auth.replicas: {replicas} a client gets "
            f"{replicas} times its limit; use global (the default) or auth.replicas: 1"
        )
    scope = asked or ("global" if replicas > 1 else "local")
    most = LOCAL_RULES_MAX if scope == "local" else GLOBAL_RULES_MAX
    if len(limited) > most:
        errors.append(
            f"auth.clients: {len(limited)} clients have a rateLimit, more than the {most} rules a {scope} "
            f"BackendTrafficPolicy holds (Envoy Gateway v1.9); give fewer clients a limit"
            + ("" if scope == "global" else " or use rateLimitScope: global")
        )
    if errors:
        raise SizingError(errors)
    clients = f"{len(limited)} limited client(s)"
    if scope == "local":
        why = "set in the stack" if asked else "the default for one Envoy replica"
        return RateLimitPlan(
            scope="local",
            reason=f"{why}: the one Envoy replica counts each of {clients} alone; no Redis runs, and the counts "
            "restart with the replica",
        )
    why = "set in the stack" if asked else f"the default for {replicas} Envoy replicas"
    return RateLimitPlan(
        scope="global",
        reason=f"{why}: each of {clients} is counted once, in Redis, across all {replicas} replica(s); {FAIL_OPEN}",
    )
