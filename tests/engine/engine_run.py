"""Hand the vLLM containers we render to the real vLLM package of their release (each release's own venv, named in
components/planning/engine_versions.py) on a stand-in GPU.

Three stand-ins, each for something this machine lacks, and nothing else:
- an offline Hugging Face cache built from the catalog's real config files (no network);
- a libcuda.so.1 whose functions all answer "no device", so vllm._C loads (no driver); its symbol list is
  read from the installed vLLM binaries with `nm`;
- NVML answers for the pool's GPU, inside `vllm_standin.py` (no GPU).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.catalog import CATALOG_DIR, GpuType, load_model_catalog
from components.planning.engine_versions import DEFAULT_VLLM_VERSION, ENGINE_VERSIONS, engine_version
from components.stacks import PROJECT_DIR
from tests.engine.synthesized import synthesized_config

STANDIN = Path(__file__).with_name("vllm_standin.py")
CONFIG_FILES = (
    "config.json",
    "sentence_bert_config.json",
    "modules.json",
    "tokenizer_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)
# What the LWS webhook puts into a group's pods; the kubelet expands $(VAR) in args from it.
LWS_ENV = {"LWS_WORKER_INDEX": "1", "LWS_LEADER_ADDRESS": "127.0.0.1"}
NO_DEVICE = 100  # CUDA_ERROR_NO_DEVICE
CHECKED = ("real", "synthesized")


@dataclass(frozen=True)
class VllmContainer:
    """One `vllm serve` container of a rendered workload, with the GPU its pool has."""

    name: str  # <object>/<role>
    args: list[str]
    env: dict[str, str]
    gpu: GpuType
    gpus_per_node: int
    nvlink: bool
    host_memory_bytes: int  # the pod's memory limit: the least RAM its node has


def vllm_venv(version: str = DEFAULT_VLLM_VERSION) -> Path:
    return PROJECT_DIR / engine_version(version).venv


def vllm_python(version: str = DEFAULT_VLLM_VERSION) -> Path:
    python = vllm_venv(version) / "bin" / "python"
    if not python.exists():
        row = engine_version(version)
        raise AssertionError(
            f"{python} is missing: install vLLM {version} with the README's test command ({row.requirements})"
        )
    return python


def containers_of(manifests: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, pod spec, container) for every vLLM container of every Deployment and LeaderWorkerSet."""
    found = []
    for obj in manifests:
        name = obj["metadata"]["name"]
        if obj["kind"] == "Deployment":
            templates = {"single": obj["spec"]["template"]}
        elif obj["kind"] == "LeaderWorkerSet":
            group = obj["spec"]["leaderWorkerTemplate"]
            templates = {"leader": group["leaderTemplate"], "worker": group["workerTemplate"]}
        else:
            continue
        for role, template in templates.items():
            for container in template["spec"]["containers"]:
                if container.get("command", [])[:2] == ["vllm", "serve"]:
                    found.append((f"{name}/{role}", template["spec"], container))
    return found


def expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion of container args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def container_env(container: dict[str, Any]) -> dict[str, str]:
    env = dict(LWS_ENV)
    for item in container.get("env", []):
        # Values from Secrets (HF_TOKEN) are credentials vLLM does not parse; a placeholder stands in.
        env[item["name"]] = item.get("value", "stand-in")
    return env


def hf_cache(root: Path, models: dict[str, str | None]) -> dict[str, str]:
    """An offline HF cache: each model's config files at the revision its args pin (else `main`).

    Returns where each model's config came from: `real` (components/catalog/configs), `synthesized` (from an
    unverified catalog row, tests/engine/synthesized.py) or why there is none.
    """
    origin = {}
    for model_id, revision in models.items():
        snapshot = root / "hub" / f"models--{model_id.replace('/', '--')}" / "snapshots" / (revision or "0" * 40)
        source = CATALOG_DIR / "configs" / model_id
        if (source / "config.json").exists():
            origin[model_id] = "real"
            for name in CONFIG_FILES:
                if (source / name).exists():
                    (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
                    (snapshot / name).write_bytes((source / name).read_bytes())
        else:
            stand_in = synthesized_config(load_model_catalog()[model_id])
            origin[model_id] = "synthesized" if stand_in else "no real config.json and no known layout"
            if stand_in:
                snapshot.mkdir(parents=True, exist_ok=True)
                (snapshot / "config.json").write_text(json.dumps(stand_in, indent=2))
        if revision is None and snapshot.exists():
            (snapshot.parents[1] / "refs").mkdir(parents=True, exist_ok=True)
            (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    return origin


def version_of_image(image: str) -> str:
    """The release of a rendered container's upstream image (the table's), for the venv that judges it."""
    found = [v for v, row in ENGINE_VERSIONS.items() if row.image == image]
    assert found, f"{image}: not the image of a supported vLLM release"
    return found[0]


def vllm_package(version: str) -> Path:
    """The installed `vllm` package directory of a release's venv."""
    return next((vllm_venv(version) / "lib").glob("python3*/site-packages/vllm"))


def standin_libcuda(root: Path, version: str) -> Path:
    """libcuda.so.1 defining every driver symbol the installed vLLM binaries import, each failing."""
    package = vllm_package(version)
    symbols: set[str] = set()
    for binary in package.glob("*.so"):
        listing = subprocess.run(
            ["nm", "-D", "--undefined-only", str(binary)], capture_output=True, text=True, check=True
        )
        symbols.update(s for s in re.findall(r"\bU (cu[A-Z]\w*)", listing.stdout))
    source = root / "libcuda.c"
    source.write_text("".join(f"int {s}(void) {{ return {NO_DEVICE}; }}\n" for s in sorted(symbols)))
    library = root / "libcuda.so.1"
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(library), str(source)], check=True)
    return root


UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "": 1}


def memory_limit(container: dict[str, Any]) -> int:
    quantity = str(container["resources"]["limits"]["memory"])
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * UNITS[unit]


def nvml_name(gpu: GpuType) -> str:
    """The catalog's name without its descriptive parenthesis, as nvidia-smi prints it."""
    return gpu.name.split(" (")[0]


def run_engine(
    containers: list[VllmContainer], workdir: Path, version: str = DEFAULT_VLLM_VERSION
) -> dict[str, dict[str, Any]]:
    """vLLM `version`'s verdict on each container: its refusal (`error`) or the facts of its engine config."""
    models = {}
    for c in containers:
        revision = c.args[c.args.index("--revision") + 1] if "--revision" in c.args else None
        models[c.args[0]] = revision
    origin = hf_cache(workdir / "hf", models)
    unchecked = {c.name: {"unchecked": origin[c.args[0]]} for c in containers if origin[c.args[0]] not in CHECKED}
    libcuda = standin_libcuda(workdir, version)
    payload = [
        {
            "name": c.name,
            "args": [expand(a, c.env) for a in c.args],
            "env": c.env,
            "gpu": {
                "name": nvml_name(c.gpu),
                "memory_mib": c.gpu.memory_mib,
                "capability": c.gpu.compute_capability,
                "count": c.gpus_per_node,
                "nvlink": c.nvlink,
            },
            "host_memory_bytes": c.host_memory_bytes,
        }
        for c in containers
        if c.name not in unchecked
    ]
    results = workdir / "results.json"
    env = {**os.environ, "HF_HOME": str(workdir / "hf"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "LD_LIBRARY_PATH": str(libcuda), "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}  # fmt: skip
    log = workdir / "vllm.log"
    with log.open("wb") as out:
        done = subprocess.run(
            [str(vllm_python(version)), str(STANDIN), str(results)],
            input=json.dumps(payload).encode(),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=60 + 120 * len(containers),
        )
    if done.returncode != 0 or not results.exists():
        raise AssertionError(f"the vLLM stand-in run failed ({done.returncode}):\n{log.read_text()[-4000:]}")
    answer: dict[str, dict[str, Any]] = json.loads(results.read_text())
    for c in containers:
        answer.setdefault(c.name, {}).update(unchecked.get(c.name, {"config": origin[c.args[0]]}))
    return answer
