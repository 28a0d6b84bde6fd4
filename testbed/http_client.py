"""Plain HTTP calls to the gateways and the stand-ins on 127.0.0.1, each bounded by a timeout."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def request(
    url: str,
    body: dict[str, Any] | None = None,
    key: str | None = None,
    timeout: float = 60,
    method: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body); POST when there is a body, GET otherwise, unless `method` says."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    method = method or ("POST" if data is not None else "GET")
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def served_by(body: bytes) -> str:
    """The stand-in names itself at the end of every answer: "... [a1]"."""
    content = json.loads(body)["choices"][0]["message"]["content"]
    return str(content.rsplit("[", 1)[1].rstrip("]"))


def chat(model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16, "stream": stream}
