"""A stand-in for vLLM's OpenAI-compatible server, for gateway tests and benchmarks (loopback only).

    python -m testbed.fake_vllm --port 18001 --model chat-a [--model emb-a] [--name w1]
        [--tokens 16] [--itl-ms 0] [--rerank-ms 0] [--fail-every 0]

Serves what the gateways call: GET /health, /v1/models, /metrics (vllm: series); POST
/v1/chat/completions and /v1/completions (streaming ends with `data: [DONE]`), /v1/embeddings,
/v1/rerank and /rerank, /v1/score (answered after `--rerank-ms`). Streams `--tokens` tokens `--itl-ms` apart.
`--fail-every N`
answers every Nth generation request with 500. Responses carry `X-Served-By: <name>`; GET /_stats
returns the request counts and the Authorization headers seen.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


class FakeVllm:
    def __init__(
        self, name: str, models: list[str], tokens: int, itl_ms: float, fail_every: int, rerank_ms: float = 0
    ) -> None:
        self.name = name
        self.models = models
        self.tokens = tokens
        self.itl = itl_ms / 1000
        self.rerank_seconds = rerank_ms / 1000
        self.fail_every = fail_every
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.auth: list[str] = []
        self.generations = 0
        self.running = 0
        self.generated_tokens = 0

    def count(self, path: str, auth: str | None) -> None:
        with self.lock:
            self.counts[path] = self.counts.get(path, 0) + 1
            if auth:
                self.auth = [*self.auth[-49:], auth]

    def should_fail(self) -> bool:
        with self.lock:
            self.generations += 1
            return self.fail_every > 0 and self.generations % self.fail_every == 0

    def metrics(self) -> str:
        model = self.models[0]
        lines = [
            "# TYPE vllm:num_requests_running gauge",
            f'vllm:num_requests_running{{model_name="{model}",engine="0"}} {self.running}',
            "# TYPE vllm:num_requests_waiting gauge",
            f'vllm:num_requests_waiting{{model_name="{model}",engine="0"}} 0',
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f'vllm:kv_cache_usage_perc{{model_name="{model}",engine="0"}} 0.1',
            "# TYPE vllm:generation_tokens_total counter",
            f'vllm:generation_tokens_total{{model_name="{model}",engine="0"}} {self.generated_tokens}',
            "# TYPE vllm:num_preemptions_total counter",
            f'vllm:num_preemptions_total{{model_name="{model}",engine="0"}} 0',
        ]
        return "\n".join(lines) + "\n"


class StandInHandler(BaseHTTPRequestHandler):
    """One request; `make_handler` binds `state`, since the server builds handlers from a class."""

    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as vLLM's asyncio server has: without it the body (or a stream's first event) waits behind the
    # headers' segment for the peer's delayed ACK, up to 40 ms on Linux, on kept-alive connections.
    disable_nagle_algorithm = True
    state: ClassVar[FakeVllm]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Served-By", self.state.name)
        self.end_headers()
        self.wfile.write(data)

    def no_route(self) -> None:
        self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    # ---------------------------------------------------------------- GET

    def do_GET(self) -> None:
        self.state.count(self.path, self.headers.get("Authorization"))
        routes = {
            "/health": self.health,
            "/v1/models": self.list_models,
            "/metrics": self.metrics,
            "/_stats": self.stats,
        }
        routes.get(self.path, self.no_route)()

    def health(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def list_models(self) -> None:
        data = [{"id": m, "object": "model", "owned_by": "vllm", "max_model_len": 4096} for m in self.state.models]
        self.send_json(200, {"object": "list", "data": data})

    def metrics(self) -> None:
        text = self.state.metrics().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def stats(self) -> None:
        self.send_json(200, {"name": self.state.name, "counts": self.state.counts, "auth": self.state.auth})

    # ---------------------------------------------------------------- POST

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.state.count(self.path, self.headers.get("Authorization"))
        model = body.get("model")
        if model not in self.state.models:
            self.send_json(404, {"error": {"message": f"The model `{model}` does not exist.", "code": 404}})
            return
        path = self.path.removeprefix("/v1")
        if path in ("/chat/completions", "/completions"):
            self.generate(model, body, chat=path == "/chat/completions")
        elif path == "/embeddings":
            self.embeddings(model, body)
        elif path in ("/rerank", "/score"):
            self.rerank(model, body)
        else:
            self.no_route()

    def generate(self, model: str, body: dict[str, Any], chat: bool) -> None:
        if self.state.should_fail():
            self.send_json(500, {"error": {"message": "injected failure", "code": 500}})
        elif body.get("stream"):
            self.stream(model, chat)
        else:
            self.complete(model, chat)

    def embeddings(self, model: str, body: dict[str, Any]) -> None:
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3, 0.4]} for i in range(len(items))]
        self.send_json(200, {"object": "list", "model": model, "data": data, "usage": _usage(len(items), 0)})

    def rerank(self, model: str, body: dict[str, Any]) -> None:
        documents = body.get("documents") or body.get("text_2") or []
        if self.state.rerank_seconds:
            time.sleep(self.state.rerank_seconds)  # the model scoring every document
        results = [
            {"index": i, "document": {"text": str(d)}, "relevance_score": 1.0 / (i + 1)}
            for i, d in enumerate(documents)
        ]
        self.send_json(200, {"id": f"rerank-{uuid.uuid4().hex}", "model": model, "results": results,
                             "usage": {"total_tokens": 8}})  # fmt: skip

    def complete(self, model: str, chat: bool) -> None:
        state = self.state
        with state.lock:
            state.running += 1
        time.sleep(state.itl * state.tokens)
        with state.lock:
            state.running -= 1
            state.generated_tokens += state.tokens
        text = " ".join(f"tok{i}" for i in range(state.tokens)) + f" [{state.name}]"
        choice: dict[str, Any] = (
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            if chat
            else {"index": 0, "text": text, "finish_reason": "stop"}
        )
        self.send_json(
            200,
            {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": [choice],
                "usage": _usage(8, state.tokens),
            },
        )

    def stream(self, model: str, chat: bool) -> None:
        state = self.state
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Served-By", state.name)
        self.send_header("Connection", "close")
        self.end_headers()
        ident = f"cmpl-{uuid.uuid4().hex}"
        with state.lock:
            state.running += 1
        try:
            for i in range(state.tokens):
                if i and state.itl:
                    time.sleep(state.itl)
                piece = f"tok{i} " if i < state.tokens - 1 else f"[{state.name}]"
                choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
                choice["finish_reason"] = None if i < state.tokens - 1 else "stop"
                event = {"id": ident, "object": "chat.completion.chunk" if chat else "text_completion",
                         "created": int(time.time()), "model": model, "choices": [choice]}  # fmt: skip
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        finally:
            with state.lock:
                state.running -= 1
                state.generated_tokens += state.tokens
        self.close_connection = True


def make_handler(state: FakeVllm) -> type[BaseHTTPRequestHandler]:
    class Handler(StandInHandler):
        pass

    Handler.state = state
    return Handler


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class StandInServer(ThreadingHTTPServer):
    # Python's default listen backlog is 5; under 32+ concurrent connects the kernel drops SYNs and clients
    # see 1 s / 3 s retransmit stalls. vLLM (uvicorn) listens with 2048.
    request_queue_size = 2048


def serve(
    port: int, models: list[str], name: str, tokens: int = 16, itl_ms: float = 0, fail_every: int = 0,
    rerank_ms: float = 0,
) -> None:  # fmt: skip
    state = FakeVllm(name, models, tokens, itl_ms, fail_every, rerank_ms)
    server = StandInServer(("127.0.0.1", port), make_handler(state))
    server.daemon_threads = True
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--name", default="fake")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--itl-ms", type=float, default=0)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--rerank-ms", type=float, default=0)
    args = parser.parse_args()
    serve(args.port, args.model, args.name, args.tokens, args.itl_ms, args.fail_every, args.rerank_ms)


if __name__ == "__main__":
    main()
