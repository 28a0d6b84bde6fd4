"""A stand-in for Envoy as Envoy Gateway v1.9 configures it from the rendered objects, in front of the real gateways
on 127.0.0.1 (Envoy itself cannot run here), for the tests of the README's client examples.

    python -m testbed.fake_envoy --port 18443 --config FILE

FILE (JSON, from `envoy_config`) holds the rendered HTTPRoutes, SecurityPolicy, BackendTrafficPolicy and
HTTPRouteFilters, the values the test chose for the Secrets they name, and where each Service a route names answers.
It takes origin-form requests and absolute-form ones (as an HTTP proxy: clients keep the API's host name in the URL
and in Host). Per request, in the order of Envoy's filter chain:

1. route: the first HTTPRoute rule whose hostnames (port ignored: ignorePortInHostMatching) and path (Exact,
   PathPrefix) match. None: 404 with an empty body; the per-route filters below never run.
2. apiKeyAuth (envoy.filters.http.api_key_auth, source/extensions/filters/http/api_key_auth/api_key_auth.cc): the key
   from the first `extractFrom` header, "Bearer " stripped; missing or unknown: 401 `Client authentication failed.`.
   Else the client id goes in `forwardClientIDHeader`, and with `sanitize` the key's header is removed.
3. rate limits: each rule whose clientSelectors match spends a token of a bucket of `requests` per `unit` (one per
   route rule, as Envoy's per-route configuration counts, or one across the routes for a `shared` rule); spent:
   429, body `local_rate_limited` (local) or empty (global). The draft-03 x-ratelimit-limit/-remaining/-reset
   headers go on every answer of a limited client (Envoy Gateway's default, xds/translator/local_ratelimit.go and
   ratelimit.go). One stand-in process is one Envoy replica, so local and global count alike here.
4. the rule's filters: RequestHeaderModifier (remove, set, add); ExtensionRef to an HTTPRouteFilter with
   credentialInjection (envoy.filters.http.credential_injector) sets its header from the Secret's `credential`.
5. the rule's single backendRef: the request is forwarded and the answer streamed back as it arrives.

Anything else rendered (another filter, several backendRefs, a header or method match) is answered with a 500 that
names it, so no test passes through behaviour the stand-in does not have.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

AUTH_FAILED = b"Client authentication failed."
LOCAL_RATE_LIMITED = b"local_rate_limited"
UNIT_SECONDS = {"Second": 1, "Minute": 60, "Hour": 3600, "Day": 86400}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade", "trailer"}
UPSTREAM_TIMEOUT_SECONDS = 120


class Unsupported(Exception):
    """Rendered configuration the stand-in does not implement."""


def envoy_config(
    manifests: list[dict[str, Any]], secrets: dict[str, dict[str, str]], services: dict[str, str]
) -> dict[str, Any]:
    """The stand-in's configuration: the rendered objects Envoy Gateway would translate, the Secrets' test values
    (name -> key -> value) and each Service's loopback URL."""

    def of_kind(kind: str) -> list[dict[str, Any]]:
        return [o for o in manifests if o["kind"] == kind]

    (security,) = of_kind("SecurityPolicy")
    limits = of_kind("BackendTrafficPolicy")
    return {
        "routes": [o["spec"] for o in of_kind("HTTPRoute")],
        "security": security["spec"],
        "rate_limit": limits[0]["spec"]["rateLimit"] if limits else None,
        "filters": {o["metadata"]["name"]: o["spec"] for o in of_kind("HTTPRouteFilter")},
        "secrets": secrets,
        "services": services,
    }


class Bucket:
    """A limit rule's tokens: `requests` per window of `unit`, refilled whole at the window's end."""

    def __init__(self, requests: int, unit: str) -> None:
        self.requests, self.window = requests, UNIT_SECONDS[unit]
        self.tokens, self.refill_at = requests, time.monotonic() + self.window

    def take(self) -> tuple[bool, dict[str, str]]:
        now = time.monotonic()
        if now >= self.refill_at:
            self.tokens, self.refill_at = self.requests, now + self.window
        allowed = self.tokens > 0
        self.tokens -= 1 if allowed else 0
        headers = {
            "x-ratelimit-limit": f"{self.requests}, {self.requests};w={self.window}",
            "x-ratelimit-remaining": str(self.tokens),
            "x-ratelimit-reset": str(math.ceil(self.refill_at - now)),
        }
        return allowed, headers


class EnvoyStandIn:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.buckets: dict[tuple[int, tuple[int, int] | None], Bucket] = {}
        limits = config["rate_limit"] or {}
        unknown = set(limits) - {"local", "global"}
        if unknown:
            raise Unsupported(f"rateLimit.{sorted(unknown)}")
        self.limit_rules: list[tuple[str, dict[str, Any]]] = [
            (scope, rule) for scope in ("local", "global") for rule in (limits.get(scope) or {}).get("rules", [])
        ]
        keys: dict[str, str] = {}
        for ref in config["security"]["apiKeyAuth"]["credentialRefs"]:
            keys |= {key: client for client, key in config["secrets"][ref["name"]].items()}
        self.client_of_key = keys

    def route(self, host: str, path: str) -> tuple[tuple[int, int], dict[str, Any]] | None:
        """((route, rule) index, the rule) of the first rule matching the host and path."""
        for route_index, spec in enumerate(self.config["routes"]):
            names = spec.get("hostnames")
            if names and not any(host == n or (n.startswith("*.") and host.endswith(n[1:])) for n in names):
                continue
            for rule_index, rule in enumerate(spec["rules"]):
                for match in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
                    if set(match) - {"path"}:
                        raise Unsupported(f"match on {sorted(set(match) - {'path'})}")
                    kind, value = match["path"]["type"], match["path"]["value"]
                    if kind not in ("Exact", "PathPrefix"):
                        raise Unsupported(f"path match {kind}")
                    if path == value or (kind == "PathPrefix" and path.startswith(value.rstrip("/") + "/")):
                        return (route_index, rule_index), rule
        return None

    def authenticate(self, headers: dict[str, str]) -> str | None:
        """The client id of the request's key (apiKeyAuth), the key's header removed when sanitized."""
        auth = self.config["security"]["apiKeyAuth"]
        if any(set(source) != {"headers"} for source in auth["extractFrom"]):
            raise Unsupported("apiKeyAuth.extractFrom other than headers")
        sources = [h.lower() for source in auth["extractFrom"] for h in source["headers"]]
        key = next((headers[h] for h in sources if headers.get(h)), "").removeprefix("Bearer ")
        client = self.client_of_key.get(key) if key else None
        if client is not None:
            if auth.get("sanitize"):
                for header in sources:
                    headers.pop(header, None)
            if auth.get("forwardClientIDHeader"):
                headers[auth["forwardClientIDHeader"].lower()] = client
        return client

    def spend(self, route: tuple[int, int], headers: dict[str, str]) -> tuple[bytes | None, dict[str, str]]:
        """(429 body when a matching rule is spent, else None; the x-ratelimit headers). A `shared` rule counts
        across the routes the policy targets; any other counts per route rule, as Envoy's per-route config does."""
        out: dict[str, str] = {}
        for index, (scope, rule) in enumerate(self.limit_rules):
            if not all(self.selects(selector, headers) for selector in rule["clientSelectors"]):
                continue
            key = (index, None if rule.get("shared") else route)
            with self.lock:
                bucket = self.buckets.setdefault(key, Bucket(rule["limit"]["requests"], rule["limit"]["unit"]))
                allowed, out = bucket.take()
            if not allowed:
                return (LOCAL_RATE_LIMITED if scope == "local" else b""), out
        return None, out

    @staticmethod
    def selects(selector: dict[str, Any], headers: dict[str, str]) -> bool:
        if set(selector) != {"headers"}:
            raise Unsupported(f"clientSelectors {sorted(selector)}")
        for match in selector["headers"]:
            if match.get("type", "Exact") != "Exact" or match.get("invert"):
                raise Unsupported(f"header selector {match}")
            if headers.get(match["name"].lower()) != match["value"]:
                return False
        return True

    def apply_filters(self, rule: dict[str, Any], headers: dict[str, str]) -> None:
        for item in rule.get("filters") or []:
            if item["type"] == "RequestHeaderModifier":
                modifier = item["requestHeaderModifier"]
                for name in modifier.get("remove", []):
                    headers.pop(name.lower(), None)
                for entry in [*modifier.get("set", []), *modifier.get("add", [])]:
                    headers[entry["name"].lower()] = entry["value"]
            elif item["type"] == "ExtensionRef" and item["extensionRef"]["kind"] == "HTTPRouteFilter":
                injection = self.config["filters"][item["extensionRef"]["name"]]["credentialInjection"]
                secret = self.config["secrets"][injection["credential"]["valueRef"]["name"]]
                header = injection.get("header", "Authorization").lower()
                if injection.get("overwrite") or header not in headers:
                    headers[header] = secret["credential"]
            else:
                raise Unsupported(f"route filter {item['type']}")

    def backend(self, rule: dict[str, Any]) -> str:
        refs = rule.get("backendRefs") or []
        if len(refs) != 1:
            raise Unsupported(f"{len(refs)} backendRefs in one rule")
        return str(self.config["services"][refs[0]["name"]])


class EnvoyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    envoy: ClassVar[EnvoyStandIn]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.handle_request()

    def do_POST(self) -> None:
        self.handle_request()

    def handle_request(self) -> None:
        target = urlsplit(self.path)  # absolute-form when the client uses the stand-in as its HTTP proxy
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        host = (target.hostname or headers.get("host", "")).rsplit(":", 1)[0]
        path = target.path + (f"?{target.query}" if target.query else "")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", ""):
                raise Unsupported("a chunked request body")
            matched = self.envoy.route(host, target.path)
            if matched is None:
                self.reply(404, b"", {})
                return
            route, rule = matched
            if self.envoy.authenticate(headers) is None:
                self.reply(401, AUTH_FAILED, {"content-type": "text/plain"})
                return
            limited, limit_headers = self.envoy.spend(route, headers)
            if limited is not None:
                self.reply(429, limited, {"content-type": "text/plain", **limit_headers})
                return
            self.envoy.apply_filters(rule, headers)
            self.forward(self.envoy.backend(rule), path, headers, body, limit_headers)
        except Unsupported as exc:
            self.reply(500, f"stand-in Envoy does not implement {exc}".encode(), {"content-type": "text/plain"})

    def forward(self, url: str, path: str, headers: dict[str, str], body: bytes, extra: dict[str, str]) -> None:
        upstream = urlsplit(url)
        connection = http.client.HTTPConnection(
            upstream.hostname or "", upstream.port, timeout=UPSTREAM_TIMEOUT_SECONDS
        )
        try:
            connection.request(self.command, path, body=body or None, headers=headers)
            answer = connection.getresponse()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            for name, value in extra.items():
                self.send_header(name, value)
            length = answer.getheader("Content-Length")
            if length is not None:
                self.send_header("Content-Length", length)
                self.end_headers()
                self.wfile.write(answer.read())
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while chunk := answer.read1(65536):
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        finally:
            connection.close()

    def reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(port: int, config: dict[str, Any]) -> None:
    class Handler(EnvoyHandler):
        pass

    Handler.envoy = EnvoyStandIn(config)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    serve(args.port, json.loads(args.config.read_text()))


if __name__ == "__main__":
    main()
