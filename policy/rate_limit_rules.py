"""Rate-limit rule: a client's limit holds whatever the number of Envoy replicas.

Local limits (BackendTrafficPolicy rateLimit.local) are counted by each Envoy replica alone, so they hold only for a
single replica: the EnvoyProxy's envoyDeployment.replicas (Envoy Gateway's default: 1) and no envoyHpa. Global
limits (rateLimit.global) are counted by Envoy Gateway's rate-limit service, which exists only when the EnvoyGateway
config names a backend (gateway-helm `config.envoyGateway.rateLimit.backend`); Envoy Gateway refuses the policy
otherwise. The backend must be a Redis Service of the stack on the port the URL names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stack_resources import HELM_RELEASE, Resource

ENVOY_GATEWAY_CHART = "gateway-helm"


def _envoy_replicas(resources: list[Resource]) -> tuple[float, str]:
    """The most Envoy replicas any EnvoyProxy of the stack allows, and which one."""
    most, where = 1.0, "Envoy Gateway's default EnvoyProxy"
    for proxy in (r for r in resources if r.kind == "EnvoyProxy"):
        kubernetes = ((proxy.props.get("spec") or {}).get("provider") or {}).get("kubernetes") or {}
        hpa = kubernetes.get("envoyHpa")
        replicas = float((kubernetes.get("envoyDeployment") or {}).get("replicas") or 1)
        allowed = max(replicas, float(hpa.get("maxReplicas") or 2)) if hpa else replicas
        if allowed > most:
            most, where = allowed, f"EnvoyProxy {proxy.object_name}"
    return most, where


def _redis_url(resources: list[Resource]) -> str | None:
    for release in (r for r in resources if r.type == HELM_RELEASE):
        if str(release.props.get("chart") or "").rsplit("/", 1)[-1] != ENVOY_GATEWAY_CHART:
            continue
        config: Mapping[str, Any] = (release.props.get("values") or {}).get("config") or {}
        backend = ((config.get("envoyGateway") or {}).get("rateLimit") or {}).get("backend") or {}
        if backend.get("type") == "Redis" and (backend.get("redis") or {}).get("url"):
            return str(backend["redis"]["url"])
    return None


def _serves(resources: list[Resource], url: str) -> bool:
    """A Service of the stack answers at host:port (`<name>.<namespace>.svc[.<domain>]:<port>`)."""
    host, _, port = url.rpartition(":")
    name, _, rest = host.partition(".")
    namespace = rest.split(".", 1)[0]
    return any(
        r.kind == "Service"
        and (r.object_name, r.namespace) == (name, namespace)
        and port in {str(int(float(p.get("port") or 0))) for p in (r.props.get("spec") or {}).get("ports") or []}
        for r in resources
    )


def rate_limits_hold_across_replicas(resources: list[Resource]) -> list[str]:
    """Local rate limits only with one Envoy replica; global ones only with Envoy Gateway's Redis backend set and
    that Redis in the stack."""
    violations: list[str] = []
    for policy in (r for r in resources if r.kind == "BackendTrafficPolicy"):
        rate_limit = (policy.props.get("spec") or {}).get("rateLimit") or {}
        if rate_limit.get("local"):
            replicas, where = _envoy_replicas(resources)
            if replicas > 1:
                violations.append(
                    f"{policy.object_name}: local rate limits with up to {replicas:g} Envoy replicas ({where}): "
                    f"each replica counts alone, so a client gets {replicas:g} times its limit; use rateLimit.global"
                )
        if rate_limit.get("global"):
            url = _redis_url(resources)
            if url is None:
                violations.append(
                    f"{policy.object_name}: global rate limits, but the {ENVOY_GATEWAY_CHART} release sets no "
                    "config.envoyGateway.rateLimit.backend (Redis); Envoy Gateway would refuse the policy"
                )
            elif not _serves(resources, url):
                violations.append(
                    f"{policy.object_name}: global rate limits count in Redis at {url}, but no Service of the stack "
                    "answers there"
                )
    return violations
