"""A stand-in for the Hugging Face Hub, for the weights-download tests (loopback only).

    python -m testbed.fake_hub --port 18080 --repos DIR --requests FILE

Serves what huggingface_hub 0.36 calls for `HfApi().list_repo_files` and `snapshot_download`:
GET /api/models/{repo}[/revision/{rev}] (model_info: sha, siblings), GET /api/models/{repo}/tree/{rev}[/{path}]
(list_repo_tree, `recursive`), HEAD and GET /{repo}/resolve/{rev}/{path} (X-Repo-Commit, ETag, Content-Length;
X-Linked-Etag / X-Linked-Size for LFS files). No X-Xet-* header is ever sent, so the client downloads over plain
HTTP and never switches to Xet. Errors carry the hub's X-Error-Code (RepoNotFound, GatedRepo, RevisionNotFound,
EntryNotFound), which huggingface_hub turns into its typed errors.

Each repository is a directory written by `write_repo`: DIR/<org>/<name>/hub.json ({"commit", "gated"}) and its
files under DIR/<org>/<name>/files/. One commit per repository: `main` and the commit's sha resolve to it. Every
request is appended to FILE as a JSON line before it is answered, so `HubRequest.read` sees all a client did.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from testbed.processes import free_port, running, start, wait_http

DEFAULT_BRANCH = "main"
# Stored in Git LFS on the Hub (the .gitattributes every model repository starts with).
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".onnx_data", ".h5", ".msgpack", ".gguf")
STARTUP_SECONDS = 30


@dataclass(frozen=True)
class HubRequest:
    """One request the hub answered, as logged."""

    method: str
    path: str  # unquoted, without the query
    query: str
    status: int
    authorization: str | None

    @staticmethod
    def read(log: Path) -> list[HubRequest]:
        if not log.exists():
            return []
        return [HubRequest(**json.loads(line)) for line in log.read_text().splitlines() if line]


def downloads(requests: list[HubRequest], repo: str) -> set[str]:
    """Paths of the files of `repo` whose content was served (a GET on resolve answered 200)."""
    prefix = f"/{repo}/resolve/"
    return {
        r.path[len(prefix) :].split("/", 1)[1]
        for r in requests
        if r.method == "GET" and r.status == 200 and r.path.startswith(prefix)
    }


def write_repo(root: Path, repo: str, commit: str, files: dict[str, bytes], gated: bool = False) -> None:
    """A repository the hub serves: `files` (path in repo -> content) at `commit`."""
    if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
        raise ValueError(f"{repo}: a commit is 40 lowercase hex digits, not {commit!r}")
    base = root / repo
    for path, content in files.items():
        (base / "files" / path).parent.mkdir(parents=True, exist_ok=True)
        (base / "files" / path).write_bytes(content)
    (base / "hub.json").write_text(json.dumps({"commit": commit, "gated": gated}))


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class RepoFile:
    path: str
    data: bytes

    @property
    def lfs(self) -> bool:
        return self.path.endswith(LFS_SUFFIXES)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_oid(self) -> str:
        """The blob git stores: the file itself, or its LFS pointer."""
        return git_blob_sha1(lfs_pointer(self.sha256, len(self.data)) if self.lfs else self.data)

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": self.git_oid, "size": len(self.data), "path": self.path}
        if self.lfs:
            pointer = lfs_pointer(self.sha256, len(self.data))
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": len(pointer)}
        return entry


class Repo:
    def __init__(self, repo_id: str, base: Path) -> None:
        meta = json.loads((base / "hub.json").read_text())
        self.id = repo_id
        self.commit: str = meta["commit"]
        self.gated: bool = meta["gated"]
        self.files_dir = base / "files"

    def files(self) -> list[RepoFile]:
        return [
            RepoFile(p.relative_to(self.files_dir).as_posix(), p.read_bytes())
            for p in sorted(self.files_dir.rglob("*"))
            if p.is_file()
        ]

    def file(self, path: str) -> RepoFile | None:
        target = (self.files_dir / path).resolve()
        if not target.is_file() or not target.is_relative_to(self.files_dir.resolve()):
            return None
        return RepoFile(path, target.read_bytes())

    def resolve(self, revision: str) -> str | None:
        return self.commit if revision in (DEFAULT_BRANCH, self.commit) else None


class HubError(Exception):
    """An answer of the hub's error form: status, X-Error-Code, message."""

    def __init__(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.commit = commit


class HubHandler(BaseHTTPRequestHandler):
    """One request; `make_handler` binds the repositories' root and the request log."""

    protocol_version = "HTTP/1.1"
    root: ClassVar[Path]
    log_file: ClassVar[Path]
    log_lock: ClassVar[threading.Lock]

    def log_message(self, format: str, *args: Any) -> None:  # the JSON log is the record
        pass

    def do_GET(self) -> None:
        self.handle_request(body=True)

    def do_HEAD(self) -> None:
        self.handle_request(body=False)

    def handle_request(self, body: bool) -> None:
        url = urlsplit(self.path)
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        try:
            if segments[:2] == ["api", "models"] and len(segments) >= 4:
                self.api(segments[2:], parse_qs(url.query), body)
            elif len(segments) >= 5 and segments[2] == "resolve":
                self.resolve(segments, body)
            elif url.path == "/":
                self.reply(200, {"Content-Type": "text/plain"}, b"fake hub\n", body)
            else:
                raise HubError(404, "", f"no route {url.path}")
        except HubError as error:
            headers = {"Content-Type": "application/json", "X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            if error.commit:
                headers["X-Repo-Commit"] = error.commit
            self.reply(error.status, headers, json.dumps({"error": error.message}).encode(), body)

    def repo(self, repo_id: str) -> Repo:
        base = (self.root / repo_id).resolve()
        if not (base / "hub.json").is_file() or not base.is_relative_to(self.root.resolve()):
            raise HubError(401, "RepoNotFound", "Repository not found")
        repo = Repo(repo_id, base)
        if repo.gated:  # what the Hub answers a client without an accepted access request
            message = (
                f"Access to model {repo_id} is restricted. You must have access to it and be authenticated to "
                "access it. Please log in."
            )
            raise HubError(401, "GatedRepo", message)
        return repo

    def commit_of(self, repo: Repo, revision: str) -> str:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def api(self, segments: list[str], query: dict[str, list[str]], body: bool) -> None:
        repo = self.repo("/".join(segments[:2]))
        rest = segments[2:]
        if not rest or (rest[0] == "revision" and len(rest) == 2):
            commit = self.commit_of(repo, rest[1] if rest else DEFAULT_BRANCH)
            info = {
                "_id": repo.id,
                "id": repo.id,
                "modelId": repo.id,
                "sha": commit,
                "private": False,
                "gated": False,
                "disabled": False,
                "siblings": [{"rfilename": f.path} for f in repo.files()],
            }
            self.reply_json(info, body)
        elif rest[0] == "tree" and len(rest) >= 2:
            self.commit_of(repo, rest[1])
            folder = "/".join(rest[2:]).strip("/")
            recursive = query.get("recursive", ["False"])[0].lower() == "true"
            self.reply_json(tree(repo.files(), folder, recursive), body)
        else:
            raise HubError(404, "", f"no route /api/models/{'/'.join(segments)}")

    def resolve(self, segments: list[str], body: bool) -> None:
        repo = self.repo("/".join(segments[:2]))
        commit = self.commit_of(repo, segments[3])
        path = "/".join(segments[4:])
        found = repo.file(path)
        if found is None:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {commit}", commit=commit)
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit,
            "ETag": f'"{found.git_oid}"',
            "Accept-Ranges": "bytes",
        }
        if found.lfs:
            headers["X-Linked-Etag"] = f'"{found.sha256}"'
            headers["X-Linked-Size"] = str(len(found.data))
        self.reply(200, headers, found.data, body)

    def reply_json(self, value: Any, body: bool) -> None:
        self.reply(200, {"Content-Type": "application/json"}, json.dumps(value).encode(), body)

    def reply(self, status: int, headers: dict[str, str], data: bytes, body: bool) -> None:
        url = urlsplit(self.path)
        entry = {
            "method": self.command,
            "path": unquote(url.path),
            "query": url.query,
            "status": status,
            "authorization": self.headers.get("Authorization"),
        }
        with self.log_lock, self.log_file.open("a") as log:
            log.write(json.dumps(entry) + "\n")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


def tree(files: list[RepoFile], folder: str, recursive: bool) -> list[dict[str, Any]]:
    """The tree API's entries under `folder`: files and folders, all levels or the first."""
    prefix = f"{folder}/" if folder else ""
    entries: dict[str, dict[str, Any]] = {}
    for f in files:
        if not f.path.startswith(prefix):
            continue
        parts = f.path[len(prefix) :].split("/")
        for depth in range(1, len(parts)):
            if depth > 1 and not recursive:
                break
            sub = prefix + "/".join(parts[:depth])
            entries.setdefault(sub, {"type": "directory", "oid": git_blob_sha1(sub.encode()), "path": sub})
        if recursive or len(parts) == 1:
            entries[f.path] = f.tree_entry()
    return sorted(entries.values(), key=lambda e: str(e["path"]))


def make_handler(root: Path, log_file: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(HubHandler):
        pass

    Handler.root = root
    Handler.log_file = log_file
    Handler.log_lock = threading.Lock()
    return Handler


def serve(port: int, root: Path, log_file: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(root, log_file))
    server.daemon_threads = True
    server.serve_forever()


@dataclass(frozen=True)
class FakeHub:
    url: str
    requests_log: Path

    def requests(self) -> list[HubRequest]:
        return HubRequest.read(self.requests_log)


@contextlib.contextmanager
def fake_hub(repos: Path, work: Path) -> Iterator[FakeHub]:
    """The hub in its own process on a free loopback port, stopped on the way out."""
    port = free_port()
    requests_log, log = work / "hub-requests.jsonl", work / "hub.log"
    args = ["-m", "testbed.fake_hub", "--port", str(port), "--repos", str(repos), "--requests", str(requests_log)]
    process = start([sys.executable, *args], log)
    with running([process]):
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/", STARTUP_SECONDS, process, log)
        yield FakeHub(url, requests_log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--repos", type=Path, required=True)
    parser.add_argument("--requests", type=Path, required=True)
    args = parser.parse_args()
    serve(args.port, args.repos, args.requests)


if __name__ == "__main__":
    main()
