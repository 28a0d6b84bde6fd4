"""The download Job of a model's shared weights cache: the only pod of a model that reaches outside the cluster.

It runs the model-server image's own huggingface_hub, fills the claim the model servers mount, and completes;
the servers start after it (Pulumi waits for the Job) with HF_HUB_OFFLINE=1 and no internet egress.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi

from components.labels import COMPONENT_LABEL, GPU_TOLERATION, POOL_LABEL, WEIGHTS_DOWNLOAD_COMPONENT
from components.planning.types import ModelPlan, NetworkPlan, PoolPlan

# Which model a download pod fills; not the model label, which the model's Service and PDB select.
WEIGHTS_OF_LABEL = "llm-cluster.io/weights-of"
# Retries of a failed download (a dropped connection): huggingface_hub resumes from the files already complete.
BACKOFF_LIMIT = 4
# Only the checkpoint vLLM loads: no framework duplicates (TF, Flax, ONNX, OpenVINO, GGUF, Meta's originals).
SKIPPED = ["*.h5", "*.msgpack", "*.onnx", "*.onnx_data", "*.gguf", "*.pth", "onnx/*", "openvino/*", "original/*"]

# Runs in the vLLM image (python3, huggingface_hub). A folder with safetensors skips its *.bin and *.pt, as vLLM
# prefers safetensors folder by folder (the root checkpoint; a Sentence-Transformers Dense layer in its own folder);
# code repositories named in auto_map (trust_remote_code) are fetched too, because the servers run offline.
SCRIPT = """
import glob, json, os, posixpath
from huggingface_hub import HfApi, snapshot_download
SKIPPED = json.loads(os.environ["SKIPPED"])
def fetch(repo, revision, patterns=None):
    files = HfApi().list_repo_files(repo, revision=revision)
    safe = {posixpath.dirname(f) for f in files if f.endswith(".safetensors")}
    skip = SKIPPED + [glob.escape(f) for f in files if f.endswith((".bin", ".pt")) and posixpath.dirname(f) in safe]
    return snapshot_download(repo, revision=revision, allow_patterns=patterns, ignore_patterns=skip)
path = fetch(os.environ["MODEL_ID"], os.environ.get("MODEL_REVISION") or None)
refs = []
for name in ("config.json", "tokenizer_config.json"):
    if os.path.exists(os.path.join(path, name)):
        for v in json.load(open(os.path.join(path, name))).get("auto_map", {}).values():
            refs += [r for r in (v if isinstance(v, list) else [v]) if r and "--" in r]
for repo in sorted({r.split("--")[0] for r in refs}):
    fetch(repo, None, ["*.py", "*.json"])
print("weights of", os.environ["MODEL_ID"], "in", path)
""".strip()


def job_spec(
    model: ModelPlan,
    pool: PoolPlan,
    network: NetworkPlan,
    image: pulumi.Input[str],
    server_pod: dict[str, Any],
    server_container: dict[str, Any],
) -> dict[str, Any]:
    """The Job: the server pod's security context, volumes and runtime env, on the pool the claim binds to."""
    env: list[dict[str, Any]] = [
        e for e in server_container["env"] if e["name"] != "HF_HUB_OFFLINE" and not e["name"].startswith("VLLM_")
    ]
    env += [
        {"name": "MODEL_ID", "value": model.model},
        {"name": "MODEL_REVISION", "value": model.revision or ""},
        {"name": "SKIPPED", "value": json.dumps(SKIPPED)},
    ]
    if network.weights_endpoint:
        env.append({"name": "HF_ENDPOINT", "value": network.weights_endpoint})
    mounts = [m for m in server_container["volumeMounts"] if m["name"] != "dshm"]
    pod: dict[str, Any] = {
        "restartPolicy": "OnFailure",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": server_pod["securityContext"],
        "volumes": [v for v in server_pod["volumes"] if v["name"] != "dshm"],
        "containers": [
            {
                "name": "download",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-c", SCRIPT],
                "env": env,
                "securityContext": server_container["securityContext"],
                "volumeMounts": mounts,
                "resources": {
                    "requests": {"cpu": "1", "memory": "2Gi"},
                    "limits": {"cpu": "4", "memory": "4Gi"},
                },
            }
        ],
    }
    if model.cache.access_mode == "ReadWriteOnce":
        # The claim binds to the node of its first pod and mounts nowhere else: the pool's node, where the servers
        # run. A ReadWriteMany claim mounts anywhere, so the download stays off the GPU nodes.
        pod["nodeSelector"] = {POOL_LABEL: pool.name}
        if pool.taint:
            pod["tolerations"] = [GPU_TOLERATION]
    return {
        "backoffLimit": BACKOFF_LIMIT,
        # The same budget the servers' startup probe allows for download and load.
        "activeDeadlineSeconds": model.pod.startup_seconds,
        "template": {
            "metadata": {"labels": {COMPONENT_LABEL: WEIGHTS_DOWNLOAD_COMPONENT, WEIGHTS_OF_LABEL: model.name}},
            "spec": pod,
        },
    }
