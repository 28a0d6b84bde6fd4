"""The README's "Use the cluster" examples as the tests run them: its code blocks, its shell commands with the status
each promises, and the stack's objects played by the real gateway behind the stand-in Envoy (testbed/fake_envoy.py)."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.stacks import PROJECT_DIR

SECTION = "## Use the cluster"
# `# 401: ...` or `# 404 with vllm-router, 400 with LiteLLM: ...` after a command.
_STATUS = re.compile(r"#\s*(\d{3}):")
_STATUS_BY_GATEWAY = re.compile(r"(\d{3}) with (vllm-router|LiteLLM)")
COMMAND_TIMEOUT_SECONDS = 120


def section_text(readme: Path = PROJECT_DIR / "README.md") -> str:
    return readme.read_text().split(f"\n{SECTION}\n", 1)[1].split("\n## ", 1)[0]


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block, in order."""
    return [(lang, code) for lang, code in re.findall(r"```(\w+)\n(.*?)\n```", text, flags=re.DOTALL)]


def shell_commands(block: str) -> list[str]:
    """The block's commands, lines continued with a trailing backslash joined; comment-only lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def promised_status(command: str, gateway_kind: str) -> int:
    """The status a command's trailing comment promises for this gateway kind."""
    by_gateway = {kind: int(code) for code, kind in _STATUS_BY_GATEWAY.findall(command)}
    if by_gateway:
        return by_gateway["LiteLLM" if gateway_kind == "litellm" else "vllm-router"]
    found = _STATUS.search(command)
    if found is None:
        raise AssertionError(f"no promised status in: {command}")
    return int(found[1])


@dataclass(frozen=True)
class ApiUnderTest:
    """The API as a client sees it: the stack's URL (plain HTTP: the stand-in does not terminate TLS), reached
    through the stand-in Envoy as the HTTP proxy, so requests keep the API's host name."""

    gateway_kind: str
    url: str
    proxy: str
    keys: dict[str, str]  # client -> the key the test put in the client keys Secret
    rate_limit_scope: str

    def env(self, key: str) -> dict[str, str]:
        proxy = {name: self.proxy for name in ("http_proxy", "HTTP_PROXY")}
        no_proxy = {name: "" for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY")}
        return {**os.environ, **proxy, **no_proxy, "LLM_API_URL": self.url, "LLM_API_KEY": key}

    def run_shell(self, command: str, key: str) -> str:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], env=self.env(key), capture_output=True,
                              text=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False)  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
        return done.stdout

    def run_python(self, source: str, key: str) -> str:
        done = subprocess.run([sys.executable, "-c", source], env=self.env(key), capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_SECONDS, check=False)  # fmt: skip
        assert done.returncode == 0, f"{source}\n{done.stderr[-3000:]}"
        return done.stdout

    def get(self, path: str, key: str | None) -> tuple[int, dict[str, str], bytes]:
        """One request as a client would send it (Host: the API's host name), through the stand-in."""
        host = self.url.split("://", 1)[1]
        proxy = self.proxy.split("://", 1)[1]
        connection = http.client.HTTPConnection(proxy, timeout=60)
        try:
            headers = {"Host": host, **({"Authorization": f"Bearer {key}"} if key else {})}
            connection.request("GET", f"{self.url}{path}", headers=headers)
            answer = connection.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            connection.close()


def sse_events(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]


def streamed_text(events: list[str]) -> str:
    """The content of an OpenAI chat stream's chunks, in order."""
    return "".join(
        choice.get("delta", {}).get("content") or ""
        for event in events
        if event != "[DONE]"
        for choice in json.loads(event)["choices"]
    )


def rendered_services(manifests: list[dict[str, Any]]) -> set[str]:
    """The Services the rendered HTTPRoutes send requests to."""
    return {
        ref["name"]
        for route in manifests
        if route["kind"] == "HTTPRoute"
        for rule in route["spec"]["rules"]
        for ref in rule.get("backendRefs", [])
    }
