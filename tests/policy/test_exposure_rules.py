"""Exposure rules (policy/exposure_rules.py): ingress peers by pod selector only, HTTPRoutes to Exact inference
paths only; each fails its bad examples and passes the shipped objects."""

from __future__ import annotations

from typing import Any

import pytest

from tests.policy.rendered import first, mutate

from rules import RESOURCE_RULES  # isort: skip (policy/ on sys.path, set by rendered)

INGRESS = RESOURCE_RULES["no-namespace-wide-ingress"]
ROUTES = RESOURCE_RULES["routes-expose-only-inference-paths"]
MONITORING = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
PROMETHEUS = {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}


def model_servers_admitting(*peers: dict[str, Any], **rule: Any) -> Any:
    """The prod model-servers NetworkPolicy with one more ingress rule (index 2) from these peers."""
    extra = {"ports": [{"protocol": "TCP", "port": 8000}], **({"from": list(peers)} if peers else {}), **rule}
    return mutate(first("prod", "NetworkPolicy", "model-servers"), lambda p: p["spec"]["ingress"].append(extra))


def test_the_shipped_policies_admit_pods_by_selector() -> None:
    policy = first("prod", "NetworkPolicy", "model-servers")
    peers = [peer for rule in policy.props["spec"]["ingress"] for peer in rule["from"]]
    assert all(peer.get("podSelector", {}).get("matchLabels") for peer in peers)
    assert INGRESS(policy) == []
    assert INGRESS(model_servers_admitting({"namespaceSelector": MONITORING, "podSelector": PROMETHEUS})) == []


BAD_PEERS: dict[str, tuple[dict[str, Any], str]] = {
    "a whole namespace": (
        {"namespaceSelector": MONITORING},
        "a namespaceSelector without a podSelector admits every pod of the selected namespace(s)",
    ),
    "every pod of a namespace": (
        {"namespaceSelector": MONITORING, "podSelector": {}},
        "an empty podSelector with a namespaceSelector admits every pod of the selected namespace(s)",
    ),
    "labelled pods of every namespace": (
        {"namespaceSelector": {}, "podSelector": PROMETHEUS},
        "an empty namespaceSelector admits the selected pods of every namespace",
    ),
    "every pod of its own namespace": (
        {"podSelector": {"matchLabels": {}, "matchExpressions": []}},
        "an empty podSelector admits every pod of the policy's namespace",
    ),
    "every IPv4 address": ({"ipBlock": {"cidr": "0.0.0.0/0"}}, "ipBlock 0.0.0.0/0 admits every address"),
    "every IPv6 address": (
        {"ipBlock": {"cidr": "::/0", "except": ["10.0.0.0/8"]}},
        "ipBlock ::/0 admits every address",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PEERS))
def test_ingress_by_namespace_or_address_fails(case: str) -> None:
    peer, message = BAD_PEERS[case]
    assert INGRESS(model_servers_admitting(peer)) == [f"model-servers: ingress rule 2: {message}"]


def test_an_ingress_rule_without_from_admits_everything() -> None:
    assert INGRESS(model_servers_admitting()) == [
        "model-servers: ingress rule 2 has no `from`, so it admits every source"
    ]


def test_a_narrow_ip_block_passes() -> None:
    assert INGRESS(model_servers_admitting({"ipBlock": {"cidr": "10.0.0.0/8"}})) == []


def route(stack: str = "prod") -> Any:
    return first(stack, "HTTPRoute")


def with_matches(*matches: dict[str, Any]) -> Any:
    return mutate(route(), lambda p: p["spec"]["rules"][0].update(matches=list(matches)))


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_the_shipped_routes_match_exact_inference_paths(stack: str) -> None:
    matches = route(stack).props["spec"]["rules"][0]["matches"]
    assert {m["path"]["type"] for m in matches} == {"Exact"}
    assert ROUTES(route(stack)) == []


BAD_MATCHES: dict[str, tuple[dict[str, Any], str]] = {
    "a prefix": ({"path": {"type": "PathPrefix", "value": "/v1"}}, "PathPrefix /v1 matches more than one path"),
    "the default type (PathPrefix)": ({"path": {"value": "/v1/models"}}, "PathPrefix /v1/models matches more"),
    "a regular expression": (
        {"path": {"type": "RegularExpression", "value": "/v1/(chat/)?completions"}},
        "RegularExpression /v1/(chat/)?completions matches more than one path",
    ),
    "an admin path": ({"path": {"type": "Exact", "value": "/v1/model/info"}}, "Exact /v1/model/info is not an"),
    "a management path": ({"path": {"type": "Exact", "value": "/key/generate"}}, "Exact /key/generate is not an"),
    "no path (every path)": ({"headers": [{"name": "x-llm-client", "value": "a"}]}, "a match without a path"),
}


@pytest.mark.parametrize("case", sorted(BAD_MATCHES))
def test_routes_beyond_exact_inference_paths_fail(case: str) -> None:
    match, message = BAD_MATCHES[case]
    found = ROUTES(with_matches({"path": {"type": "Exact", "value": "/v1/models"}}, match))
    assert len(found) == 1 and found[0].startswith(f"llm-api: rule 0: {message}"), found


def test_a_rule_without_matches_routes_every_path() -> None:
    assert ROUTES(with_matches()) == ["llm-api: rule 0: no matches: every path"]


def test_a_path_rewrite_fails() -> None:
    rewrite = {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/x"}}}
    on_backend = mutate(route(), lambda p: p["spec"]["rules"][0]["backendRefs"][0].update(filters=[rewrite]))
    assert ROUTES(on_backend) == ["llm-api: rule 0: a URLRewrite filter changes the path after matching"]


def test_path_less_gateway_routes_fail() -> None:
    tcp = mutate(route(), lambda p: p.update(kind="TCPRoute", apiVersion="gateway.networking.k8s.io/v1alpha2"))
    assert ROUTES(tcp) == ["llm-api: a TCPRoute forwards without matching a path; use an HTTPRoute"]
