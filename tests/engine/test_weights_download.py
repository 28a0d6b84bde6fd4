"""The weights-download Job's real command, run by the vLLM image's huggingface_hub against a fake Hub on loopback,
then the model server's offline start read from the cache it filled.

The Job's container is taken from a rendered stack as is: its `command` (with `.venv-vllm`'s python for the
image's `python3`) and its env. Only what the kubelet would provide changes: paths on the pod's volumes become
directories under tmp (the weights claim is the same directory for the Job and the server, as in the cluster),
a Secret's value comes from the test, and HF_ENDPOINT names the fake hub.
"""

from __future__ import annotations

import json
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.catalog import CATALOG_DIR
from components.weights_download import WEIGHTS_OF_LABEL
from testbed.fake_hub import FakeHub, HubRequest, downloads, fake_hub, write_repo
from testbed.stacks import rendered
from tests.engine.engine_run import containers_of, version_of_image, vllm_python

JOB_SECONDS = 180
OFFLINE_SECONDS = 300
TOKEN_SECRET = ("hf-token", "token")  # the optional Secret the Job and the servers read HF_TOKEN from
DENSE = "sentence_transformers.models.Dense"  # a modules.json entry vLLM's embedding pooler loads weights for

# What a model server needs from the claim before it loads a tensor, asked offline with the server's env of the
# real stack: huggingface_hub's cached snapshot, transformers' config (remote code included), with "weights" the
# files vLLM's default loader picks (DefaultModelLoader._prepare_weights, as `vllm serve` calls it) and with
# "projector" the Sentence-Transformers Dense layers vLLM's embedding pooler loads (_load_st_projector).
OFFLINE_START = """
import json, os, sys
args = json.loads(sys.argv[1])
from huggingface_hub import snapshot_download
from transformers import AutoConfig
from vllm import __version__
# The snapshot folder as the release's get_model_path finds it (vllm/transformers_utils/repo_utils.py): 0.33 passes
# ignore_patterns="*", as its huggingface_hub 1.x refuses a bare offline lookup of a cache the Job left partial.
PATTERNS = {} if __version__.startswith("0.13.") else {"ignore_patterns": "*"}
answer = {"snapshot": snapshot_download(args["repo"], revision=args["revision"], local_files_only=True, **PATTERNS)}
config = AutoConfig.from_pretrained(args["repo"], revision=args["revision"], trust_remote_code=args["remote_code"])
answer["config"] = {"class": type(config).__name__, "model_type": config.model_type}
if args["weights"]:
    from vllm.config.load import LoadConfig
    from vllm.model_executor.model_loader.default_loader import DefaultModelLoader
    loader = DefaultModelLoader(LoadConfig())
    # keywords: 0.33 adds `subfolder` and returns the index file too (download_model in default_loader.py)
    where = {"model_name_or_path": args["repo"], "revision": args["revision"], "fall_back_to_pt": True,
             "allow_patterns_overrides": None, **({} if __version__.startswith("0.13.") else {"subfolder": None})}
    folder, files, safetensors = loader._prepare_weights(**where)[:3]
    answer["weights"] = {"files": sorted(os.path.relpath(f, folder) for f in files), "safetensors": safetensors}
if args["projector"]:
    import torch
    from types import SimpleNamespace
    from vllm.model_executor.models.adapters import _load_st_projector
    model_config = SimpleNamespace(model=args["repo"], revision=args["revision"], head_dtype=torch.float32)
    projector = _load_st_projector(model_config) or []
    answer["projector"] = [[type(m).__name__, *getattr(m, "weight", torch.empty(0)).shape] for m in projector]
print(json.dumps(answer))
""".strip()


@dataclass(frozen=True)
class Pod:
    """One container of a rendered pod, with the pod's volumes."""

    container: dict[str, Any]
    volumes: list[dict[str, Any]]

    def env(self, volumes: Path, secrets: dict[tuple[str, str], str], extra: dict[str, str]) -> dict[str, str]:
        """The environment the kubelet gives the container, its volumes under `volumes`, plus `extra`."""
        env = {"PATH": "/usr/bin:/bin"}
        for item in self.container["env"]:
            if "value" in item:
                env[item["name"]] = self.on_volumes(item["value"], volumes)
                continue
            ref = item["valueFrom"]["secretKeyRef"]
            value = secrets.get((ref["name"], ref["key"]))
            if value is not None:
                env[item["name"]] = value
            else:  # an optional Secret that does not exist leaves the variable unset
                assert ref.get("optional") is True, f"{item['name']}: the Secret {ref['name']} is required"
        return {**env, **extra}

    def on_volumes(self, value: str, volumes: Path) -> str:
        """A path on one of the container's mounts, moved to that volume's directory under `volumes`."""
        kinds = {v["name"]: v for v in self.volumes}
        for mount in self.container["volumeMounts"]:
            mount_path = mount["mountPath"].rstrip("/")
            if value == mount_path or value.startswith(mount_path + "/"):
                volume = kinds[mount["name"]]
                # Claims outlive pods and are shared by the Job and the servers; emptyDirs are each pod's own.
                if "persistentVolumeClaim" in volume:
                    where = volumes / "claims" / volume["persistentVolumeClaim"]["claimName"]
                else:
                    where = volumes / "pods" / self.container["name"] / mount["name"]
                where.mkdir(parents=True, exist_ok=True)
                return str(where) + value[len(mount_path) :]
        return value


@dataclass(frozen=True)
class ModelDownload:
    """A model's rendered download Job and its server container."""

    job: Pod
    server: Pod
    server_args: list[str]

    @property
    def job_env(self) -> dict[str, str]:
        return {e["name"]: e["value"] for e in self.job.container["env"] if "value" in e}

    @property
    def version(self) -> str:
        """The vLLM release whose image the Job runs: its huggingface_hub and the servers' vLLM judge the run."""
        return version_of_image(self.job.container["image"])

    @property
    def repo(self) -> str:
        return self.job_env["MODEL_ID"]

    @property
    def revision(self) -> str:
        """The commit the Job pins: the model servers' `--revision`."""
        return self.job_env["MODEL_REVISION"]

    def run(self, hub: FakeHub, volumes: Path, secrets: dict[tuple[str, str], str]) -> subprocess.CompletedProcess[str]:
        command = list(self.job.container["command"])
        assert command[0] == "python3", command
        return subprocess.run(
            [str(vllm_python(self.version)), *command[1:]],
            env=self.job.env(volumes, secrets, {"HF_ENDPOINT": hub.url}),
            cwd=volumes,
            capture_output=True,
            text=True,
            timeout=JOB_SECONDS,
        )

    def start_offline(
        self, volumes: Path, stopped_hub: str, weights: bool = False, projector: bool = False
    ) -> dict[str, Any]:
        """What the server, started with its container's env on the claim the Job filled, reads."""
        args = self.server_args
        revision = args[args.index("--revision") + 1] if "--revision" in args else None
        assert (args[0], revision or "") == (self.repo, self.revision), "the server pins what the Job fetched"
        request = {"repo": args[0], "revision": revision, "remote_code": "--trust-remote-code" in args}
        # HF_ENDPOINT is the stopped hub's, so a lookup HF_HUB_OFFLINE failed to stop would be refused, not sent out.
        env = self.server.env(volumes, {}, {"HF_ENDPOINT": stopped_hub})
        assert env.get("HF_HUB_OFFLINE") == "1", "the model servers are meant to run offline"
        assert env["HF_HOME"] == self.job.env(volumes, {}, {})["HF_HOME"], "the Job fills another cache"
        done = subprocess.run(
            [
                str(vllm_python(self.version)),
                "-c",
                OFFLINE_START,
                json.dumps({**request, "weights": weights, "projector": projector}),
            ],
            env=env,
            cwd=volumes,
            capture_output=True,
            text=True,
            timeout=OFFLINE_SECONDS,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])  # vLLM logs to stdout first
        return answer


def model_download(stack: str, model_id: str) -> ModelDownload:
    manifests = rendered(stack).manifests
    jobs = [
        o
        for o in manifests
        if o["kind"] == "Job"
        and {"name": "MODEL_ID", "value": model_id} in o["spec"]["template"]["spec"]["containers"][0]["env"]
    ]
    assert len(jobs) == 1, f"{stack}: {len(jobs)} download Jobs of {model_id}"
    template = jobs[0]["spec"]["template"]
    (container,) = template["spec"]["containers"]
    served = template["metadata"]["labels"][WEIGHTS_OF_LABEL]
    servers = [(p, c) for name, p, c in containers_of(manifests) if name.split("/")[0] == served]
    assert servers, f"{stack}: no server of {served}"
    server_pod, server = servers[0]
    return ModelDownload(
        Pod(container, template["spec"]["volumes"]), Pod(server, server_pod["volumes"]), list(server["args"])
    )


def snapshot(volumes: Path, download: ModelDownload, repo: str, commit: str) -> Path:
    hf_home = Path(download.job.env(volumes, {}, {})["HF_HOME"])
    return hf_home / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / commit


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def catalog_configs(model_id: str) -> dict[str, bytes]:
    folder = CATALOG_DIR / "configs" / model_id
    return {path: (folder / path).read_bytes() for path in files_under(folder)}


def safetensors_file() -> bytes:
    """A real (one-tensor) safetensors file: 8-byte header length, JSON header, data."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + struct.pack("<f", 1.0)


# Checkpoints in the other formats a repository ships; no loader reads them here, only their names matter.
BAIT = {
    "pytorch_model.bin": b"a torch pickle the safetensors duplicate",
    "onnx/model.onnx": b"an ONNX export",
    "original/consolidated.pth": b"Meta's original checkpoint",
}


def model_requests(requests: list[HubRequest], repo: str) -> list[HubRequest]:
    return [r for r in requests if r.path.startswith((f"/api/models/{repo}/", f"/{repo}/"))]


@dataclass(frozen=True)
class JobRun:
    """One run of the Job against the repos under tmp_path/repos; the Hub is stopped afterwards."""

    volumes: Path
    done: subprocess.CompletedProcess[str]
    requests: list[HubRequest]
    hub_url: str


def run_job(download: ModelDownload, tmp_path: Path, secrets: dict[tuple[str, str], str] | None = None) -> JobRun:
    volumes = tmp_path / "volumes"
    with fake_hub(tmp_path / "repos", tmp_path) as hub:
        done = download.run(hub, volumes, secrets or {})
        return JobRun(volumes, done, hub.requests(), hub.url)


def test_job_fetches_the_pinned_config_and_safetensors_only(tmp_path: Path) -> None:
    """(a) At the commit the Job pins: the config and the safetensors, nothing vLLM would not load; the server
    then finds the snapshot, its config and vLLM's weight files with the hub gone."""
    download = model_download("dev", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    repo, commit = download.repo, download.revision
    configs = catalog_configs(repo)
    write_repo(tmp_path / "repos", repo, commit, {**configs, "model.safetensors": safetensors_file(), **BAIT})
    run = run_job(download, tmp_path, {TOKEN_SECRET: "hf_job_token"})
    assert run.done.returncode == 0, run.done.stderr[-4000:]

    cached = snapshot(run.volumes, download, repo, commit)
    assert files_under(cached) == {*configs, "model.safetensors"}
    assert (cached / "config.json").read_bytes() == configs["config.json"]
    assert (cached / "model.safetensors").read_bytes() == safetensors_file()
    assert downloads(run.requests, repo) == {*configs, "model.safetensors"}, "no .bin, ONNX or original checkpoint"
    seen = model_requests(run.requests, repo)
    assert seen and all(commit in r.path for r in seen), "every lookup at the pinned commit, none at main"
    assert {r.authorization for r in seen} == {"Bearer hf_job_token"}, "the Secret's token reaches the hub"

    answer = download.start_offline(run.volumes, run.hub_url, weights=True)
    assert answer["snapshot"] == str(cached)
    assert answer["config"] == {"class": "Qwen2Config", "model_type": "qwen2"}
    assert answer["weights"] == {"files": ["model.safetensors"], "safetensors": True}


def test_job_fetches_the_remote_code_repository_of_auto_map(tmp_path: Path) -> None:
    """(b) A trust_remote_code model whose config.json points into another repository: that repository's code
    and config come too (not its weights), so transformers builds the config offline."""
    download = model_download("prod", "nomic-ai/nomic-embed-text-v1")
    repo, commit = download.repo, download.revision
    code_repo, code_commit = "nomic-ai/nomic-bert-2048", "e5042dce39060cc34bc223455f25cf1d26db4655"
    # The real config's auto_map and model_type; the numbers are the catalog's.
    config = {
        "architectures": ["NomicBertModel"],
        "auto_map": {
            "AutoConfig": f"{code_repo}--configuration_hf_nomic_bert.NomicBertConfig",
            "AutoModel": f"{code_repo}--modeling_hf_nomic_bert.NomicBertModel",
            "AutoModelForMaskedLM": f"{code_repo}--modeling_hf_nomic_bert.NomicBertForPreTraining",
        },
        "model_type": "nomic_bert",
        "n_embd": 768,
        "n_head": 12,
        "n_layer": 12,
        "n_positions": 8192,
        "vocab_size": 30528,
    }
    configuration = (
        "from transformers import PretrainedConfig\n\n\n"
        "class NomicBertConfig(PretrainedConfig):\n"
        '    model_type = "nomic_bert"\n'
    )
    code = {
        "configuration_hf_nomic_bert.py": configuration.encode(),
        "modeling_hf_nomic_bert.py": b"from .configuration_hf_nomic_bert import NomicBertConfig\n",
        "config.json": json.dumps({**config, "auto_map": {}}).encode(),
        "model.safetensors": safetensors_file(),
        "pytorch_model.bin": BAIT["pytorch_model.bin"],
    }
    model = {"config.json": json.dumps(config).encode(), "model.safetensors": safetensors_file()}
    write_repo(tmp_path / "repos", repo, commit, model)
    write_repo(tmp_path / "repos", code_repo, code_commit, code)
    run = run_job(download, tmp_path)
    assert run.done.returncode == 0, run.done.stderr[-4000:]

    assert files_under(snapshot(run.volumes, download, repo, commit)) == set(model)
    code_files = {"configuration_hf_nomic_bert.py", "modeling_hf_nomic_bert.py", "config.json"}
    assert downloads(run.requests, code_repo) == code_files, "the code repository's *.py and *.json, not its weights"
    assert files_under(snapshot(run.volumes, download, code_repo, code_commit)) == code_files

    answer = download.start_offline(run.volumes, run.hub_url)
    assert answer["config"] == {"class": "NomicBertConfig", "model_type": "nomic_bert"}


def test_job_fetches_a_pytorch_bin_checkpoint_without_safetensors(tmp_path: Path) -> None:
    """(c) Without safetensors the .bin is the checkpoint: it comes (the ONNX export does not), and vLLM's
    loader picks it offline."""
    download = model_download("prod", "intfloat/multilingual-e5-large")
    repo, commit = download.repo, download.revision
    configs = catalog_configs(repo)
    files = {**configs, "pytorch_model.bin": BAIT["pytorch_model.bin"], "onnx/model.onnx": BAIT["onnx/model.onnx"]}
    write_repo(tmp_path / "repos", repo, commit, files)
    run = run_job(download, tmp_path)
    assert run.done.returncode == 0, run.done.stderr[-4000:]

    assert downloads(run.requests, repo) == {*configs, "pytorch_model.bin"}
    assert files_under(snapshot(run.volumes, download, repo, commit)) == {*configs, "pytorch_model.bin"}
    assert {r.authorization for r in model_requests(run.requests, repo)} == {None}, "no Secret, no token"

    answer = download.start_offline(run.volumes, run.hub_url, weights=True)
    assert answer["config"] == {"class": "XLMRobertaConfig", "model_type": "xlm-roberta"}
    assert answer["weights"] == {"files": ["pytorch_model.bin"], "safetensors": False}


def torch_pickle(tensors: dict[str, list[list[float]]]) -> bytes:
    """A pytorch_model.bin as torch.save writes it (torch lives in .venv-vllm only)."""
    save = "import io, json, sys, torch; b = io.BytesIO(); "
    save += "torch.save({k: torch.tensor(v) for k, v in json.loads(sys.argv[1]).items()}, b); "
    save += "sys.stdout.buffer.write(b.getvalue())"
    done = subprocess.run(
        [str(vllm_python()), "-c", save, json.dumps(tensors)], capture_output=True, timeout=120, check=True
    )
    return done.stdout


def test_job_fetches_a_dense_layer_checkpoint_that_has_no_safetensors(tmp_path: Path) -> None:
    """A Sentence-Transformers Dense layer whose folder has only pytorch_model.bin, beside root safetensors:
    vLLM's embedding pooler reads <folder>/model.safetensors, else <folder>/pytorch_model.bin, and offline drops
    a layer it cannot find (a log line, then embeddings of the wrong size). bge-m3 has no Dense layer; the repo
    here adds one, as LaBSE-style models ship it."""
    download = model_download("prod", "BAAI/bge-m3")
    repo, commit = download.repo, download.revision
    configs = catalog_configs(repo)
    modules = [*json.loads(configs["modules.json"]), {"idx": 3, "name": "3", "path": "2_Dense", "type": DENSE}]
    dense = {
        "2_Dense/config.json": json.dumps({"in_features": 4, "out_features": 2, "bias": False}).encode(),
        "2_Dense/pytorch_model.bin": torch_pickle({"linear.weight": [[1.0] * 4] * 2}),
    }
    files = {**configs, "modules.json": json.dumps(modules).encode(), "model.safetensors": safetensors_file(), **dense}
    write_repo(tmp_path / "repos", repo, commit, files)
    run = run_job(download, tmp_path)
    assert run.done.returncode == 0, run.done.stderr[-4000:]

    answer = download.start_offline(run.volumes, run.hub_url, projector=True)
    assert answer["projector"] == [["Linear", 2, 4]], "the Dense layer vLLM's pooler would load"
    assert "2_Dense/pytorch_model.bin" in downloads(run.requests, repo)


def test_job_fails_with_the_hubs_message_on_a_gated_repository(tmp_path: Path) -> None:
    """A gated repository the token cannot open: the command exits non-zero (the Job fails, Pulumi reports it)
    with huggingface_hub's explanation, and nothing is downloaded."""
    download = model_download("dev", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    repo, commit = download.repo, download.revision
    write_repo(tmp_path / "repos", repo, commit, {**catalog_configs(repo), "model.safetensors": b"x"}, gated=True)
    run = run_job(download, tmp_path)

    assert run.done.returncode != 0
    assert "huggingface_hub.errors.GatedRepoError: 401 Client Error." in run.done.stderr
    assert f"Cannot access gated repo for url {run.hub_url}/api/models/{repo}/tree/{commit}" in run.done.stderr
    assert f"Access to model {repo} is restricted" in run.done.stderr
    assert downloads(run.requests, repo) == set()
    assert not snapshot(run.volumes, download, repo, commit).exists()


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_job_runs_the_command_tested_here(stack: str) -> None:
    """The command above is each Job's: python3 -c with the script, and the env names the script reads."""
    manifests = rendered(stack).manifests
    jobs = [o for o in manifests if o["kind"] == "Job"]
    assert jobs, f"{stack}: no download Job"
    tested = model_download("dev", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B").job.container["command"]
    for job in jobs:
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == tested, job["metadata"]["name"]
        assert {"MODEL_ID", "MODEL_REVISION", "SKIPPED", "HF_HOME"} <= {e["name"] for e in container["env"]}
