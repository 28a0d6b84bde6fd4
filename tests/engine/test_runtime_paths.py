"""Model servers run as a uid without a passwd entry on a read-only root filesystem (Pod Security `restricted`):
every directory the real vLLM stack writes to must lie on one of the pod's writable volumes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.planning.engine_versions import ENGINE_VERSIONS
from testbed.stacks import STACKS, rendered
from tests.engine.engine_run import containers_of, vllm_python

SCRIPT = Path(__file__).with_name("runtime_paths.py")
WRITABLE_VOLUMES = ("emptyDir", "persistentVolumeClaim", "ephemeral")
# Variables that differ between models and move no writer's directory.
WRITER_NEUTRAL = ("VLLM_BATCH", "NCCL_", "HF_HUB_OFFLINE", "HF_ENDPOINT")


def writable_mounts(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    kinds = {v["name"]: next(k for k in v if k != "name") for v in pod["volumes"]}
    return [
        m["mountPath"]
        for m in container["volumeMounts"]
        if kinds[m["name"]] in WRITABLE_VOLUMES and not m.get("readOnly", False)
    ]


def literal_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def runtime_writers(env: dict[str, str], version: str) -> dict[str, str]:
    done = subprocess.run(
        [str(vllm_python(version)), str(SCRIPT)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    answer: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])  # vLLM logs to stdout first
    return answer


def under(path: str, mounts: list[str]) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)


@pytest.fixture(scope="module")
def server() -> tuple[str, list[str], dict[str, str]]:
    """(name, writable mounts, literal env) of the model servers: the same in every container of every stack."""
    seen = {}
    for stack in STACKS:
        for name, pod, container in containers_of(rendered(stack).manifests):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            env = {k: v for k, v in literal_env(container).items() if not k.startswith(WRITER_NEUTRAL)}
            seen[f"{stack}:{name}"] = (writable_mounts(pod, container), env)
    assert seen, "no vLLM container rendered"
    first = next(iter(seen))
    for name, found in seen.items():
        assert found == seen[first], f"{name} differs from {first}: {found} vs {seen[first]}"
    return first, *seen[first]


@pytest.mark.parametrize("version", ENGINE_VERSIONS)
def test_every_runtime_writer_lands_on_a_writable_volume(
    version: str, server: tuple[str, list[str], dict[str, str]]
) -> None:
    name, mounts, env = server
    writers = runtime_writers(env, version)
    assert "error" not in writers, f"{name}: {writers}"
    assert writers["getpass.getuser"] == env["USER"]
    outside = {what: path for what, path in writers.items() if what != "getpass.getuser" and not under(path, mounts)}
    assert not outside, f"{name}: written outside the writable volumes {mounts}: {outside}"


@pytest.mark.parametrize("version", ENGINE_VERSIONS)
def test_without_user_torch_cannot_name_its_cache(version: str, server: tuple[str, list[str], dict[str, str]]) -> None:
    """Why USER is set: for a uid without a passwd entry, getpass.getuser() has nothing else to go on."""
    _, _, env = server
    writers = runtime_writers({k: v for k, v in env.items() if k != "USER"}, version)
    assert writers.get("error", "").startswith("KeyError: 'getpwuid(): uid not found"), writers
