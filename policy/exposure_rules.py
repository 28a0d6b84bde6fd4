"""Exposure rules: NetworkPolicies admit pods by pod selector, never a whole namespace or address space, and the
API gateway's routes reach exactly the inference paths, never a gateway's admin API."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from itertools import chain
from typing import Any

from stack_resources import Resource

from components.planning.defaults import INFERENCE_ROUTES, MODELS_ROUTE

# Every path the plan's route table can expose (components/planning/defaults.py: inference_routes).
INFERENCE_PATHS = frozenset({MODELS_ROUTE, *chain.from_iterable(INFERENCE_ROUTES.values())})
GATEWAY_API = "gateway.networking.k8s.io/"
# Gateway API routes that forward whole streams or methods, with no HTTP path to restrict.
PATHLESS_ROUTES = ("GRPCRoute", "TCPRoute", "TLSRoute", "UDPRoute")


def _selects_everything(selector: Mapping[str, Any] | None) -> bool:
    """An empty label selector ({} or no labels and no expressions) selects every pod or namespace; an absent one
    (None) selects nothing by itself."""
    return selector is not None and not selector.get("matchLabels") and not selector.get("matchExpressions")


def _peer_problems(peer: Mapping[str, Any]) -> list[str]:
    if "ipBlock" in peer:
        cidr = str((peer.get("ipBlock") or {}).get("cidr"))
        try:
            everything = ipaddress.ip_network(cidr, strict=False).prefixlen == 0
        except ValueError:
            return [f"ipBlock {cidr} is not a CIDR"]
        return [f"ipBlock {cidr} admits every address"] if everything else []
    namespaces, pods = peer.get("namespaceSelector"), peer.get("podSelector")
    if namespaces is None:
        return ["an empty podSelector admits every pod of the policy's namespace"] if _selects_everything(pods) else []
    if pods is None:
        return ["a namespaceSelector without a podSelector admits every pod of the selected namespace(s)"]
    if _selects_everything(pods):
        return ["an empty podSelector with a namespaceSelector admits every pod of the selected namespace(s)"]
    if _selects_everything(namespaces):
        return ["an empty namespaceSelector admits the selected pods of every namespace"]
    return []


def no_namespace_wide_ingress(resource: Resource) -> list[str]:
    """NetworkPolicy ingress peers name pods by label: no whole namespace (namespaceSelector without, or with an
    empty, podSelector), no every-namespace selector, no 0.0.0.0/0, no rule without `from`."""
    if resource.kind != "NetworkPolicy":
        return []
    violations = []
    for index, rule in enumerate((resource.props.get("spec") or {}).get("ingress") or []):
        peers = rule.get("from") or []
        if not peers:
            violations.append(f"{resource.object_name}: ingress rule {index} has no `from`, so it admits every source")
        for peer in peers:
            violations.extend(f"{resource.object_name}: ingress rule {index}: {p}" for p in _peer_problems(peer))
    return violations


def _match_problems(match: Mapping[str, Any]) -> list[str]:
    path = match.get("path")
    if path is None:
        return ["a match without a path matches every path (PathPrefix /)"]
    # Gateway API defaults: type PathPrefix, value "/".
    kind, value = str(path.get("type") or "PathPrefix"), str(path.get("value") or "/")
    if kind != "Exact":
        return [f"{kind} {value} matches more than one path; match Exact inference paths"]
    if value not in INFERENCE_PATHS:
        return [f"Exact {value} is not an inference path ({', '.join(sorted(INFERENCE_PATHS))})"]
    return []


def _rewrites(rule: Mapping[str, Any]) -> bool:
    """A URLRewrite path filter on the rule or a backend could turn an inference path into an admin path."""
    filters = chain(rule.get("filters") or [], *((b.get("filters") or []) for b in rule.get("backendRefs") or []))
    return any(f.get("type") == "URLRewrite" and (f.get("urlRewrite") or {}).get("path") for f in filters)


def routes_expose_only_inference_paths(resource: Resource) -> list[str]:
    """HTTPRoutes match only Exact paths of the inference route table (components/planning/defaults.py): no
    PathPrefix or RegularExpression, no admin or management path, no path rewrite; no path-less routes."""
    if not resource.api_version.startswith(GATEWAY_API):
        return []
    if resource.kind in PATHLESS_ROUTES:
        return [f"{resource.object_name}: a {resource.kind} forwards without matching a path; use an HTTPRoute"]
    if resource.kind != "HTTPRoute":
        return []
    violations: list[str] = []
    for index, rule in enumerate((resource.props.get("spec") or {}).get("rules") or []):
        matches = rule.get("matches") or []
        problems = [p for m in matches for p in _match_problems(m)] if matches else ["no matches: every path"]
        if _rewrites(rule):
            problems.append("a URLRewrite filter changes the path after matching")
        violations.extend(f"{resource.object_name}: rule {index}: {p}" for p in problems)
    return violations
