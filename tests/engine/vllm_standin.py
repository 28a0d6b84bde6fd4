"""Run the real vLLM over rendered model-server containers, on a stand-in GPU. Runs inside the venv of the release
the containers use (components/planning/engine_versions.py: `.venv-vllm` for 0.13.0, `.venv-vllm-0.33` for 0.33.0).

Reads a JSON list of containers on stdin. Each entry: `name`, `args` (what follows `vllm serve`), `env` and
`gpu` (`name`,
`memory_mib`, `capability` "9.0", `count` per node, `nvlink`). For each it forks a child that answers NVML
queries for that GPU, then does what `vllm serve` does before it touches a GPU: vLLM's own top-level CLI
parser, the `serve` validators, `AsyncEngineArgs.from_cli_args` and `create_engine_config`. It prints one
JSON object per container, into the file named by argv[1]: vLLM's refusal (`error`) or the facts of the
engine config it built. The caller sets HF_HOME to an offline Hugging Face cache holding the models' real
config files, HF_HUB_OFFLINE=1, and LD_LIBRARY_PATH to a stand-in libcuda (vllm._C links the driver).

Only NVML and the network are stood in for; every decision is vLLM's own code at the installed version.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import vllm.third_party.pynvml as pynvml

GPU: dict[str, Any] = {"name": "stand-in", "memory_mib": 81559, "capability": "9.0", "count": 8, "nvlink": True}
# The node's RAM, which vLLM checks its CPU swap space against; the caller passes the pod's memory limit,
# the least a node that schedules the pod has.
HOST = {"memory_bytes": 0}


def install_standin_nvml() -> None:
    """NVML answers for GPU; vLLM picks its CUDA platform from these (vllm/platforms/__init__.py)."""

    def handle(index: int) -> int:
        if index >= GPU["count"]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return index

    def memory(_: int) -> SimpleNamespace:
        total = GPU["memory_mib"] * 1024**2
        return SimpleNamespace(total=total, free=total, used=0)

    def capability(_: int) -> tuple[int, int]:
        major, minor = GPU["capability"].split(".")
        return int(major), int(minor)

    def p2p(_a: int, _b: int, _cap: int) -> int:
        return int(pynvml.NVML_P2P_STATUS_OK if GPU["nvlink"] else pynvml.NVML_P2P_STATUS_NOT_SUPPORTED)

    stand_in = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: GPU["count"],
        "nvmlDeviceGetHandleByIndex": handle,
        "nvmlDeviceGetName": lambda _: GPU["name"],
        "nvmlDeviceGetMemoryInfo": memory,
        "nvmlDeviceGetCudaComputeCapability": capability,
        "nvmlDeviceGetP2PStatus": p2p,
        "nvmlDeviceGetUUID": lambda i: f"GPU-standin-{i}",
    }
    for name, function in stand_in.items():
        setattr(pynvml, name, function)


install_standin_nvml()

import torch  # noqa: E402  (after NVML: vLLM resolves its platform on first import)

torch.cuda._device_count_nvml = lambda: int(GPU["count"])  # torch's own NVML count, which vLLM asks

import psutil  # noqa: E402

_real_virtual_memory = psutil.virtual_memory
psutil.virtual_memory = lambda: _real_virtual_memory()._replace(total=HOST["memory_bytes"])

import vllm.envs as vllm_envs  # noqa: E402
from vllm.engine.arg_utils import AsyncEngineArgs  # noqa: E402
from vllm.entrypoints.cli import main as vllm_cli_main  # noqa: E402
from vllm.usage.usage_lib import UsageContext  # noqa: E402
from vllm.utils.argparse_utils import FlexibleArgumentParser  # noqa: E402


def serve_parser() -> tuple[FlexibleArgumentParser, dict[str, Any]]:
    """vLLM's own top-level CLI parser with its `serve` subcommand (vllm/entrypoints/cli/main.py)."""
    import vllm.entrypoints.cli.serve as serve

    parser = FlexibleArgumentParser(description="vLLM CLI")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    commands = {}
    for command in serve.cmd_init():
        command.subparser_init(subparsers)
        commands[command.name] = command
    return parser, commands


def register_remote_code_standins() -> None:
    """Configs whose class lives in the model's remote code, which cannot be downloaded here.

    The stand-in has the same class name and base (GPT2Config) and holds the config.json's keys as-is; vLLM's
    own per-architecture hooks (vllm/model_executor/models/config.py) then translate them.
    """
    import transformers
    import transformers.dynamic_module_utils as dynamic

    class NomicBertConfig(transformers.GPT2Config):  # type: ignore[misc,unused-ignore]  # as the remote class is
        model_type = "nomic_bert"

    known = {"configuration_hf_nomic_bert.NomicBertConfig": NomicBertConfig}
    original = dynamic.get_class_from_dynamic_module

    def from_remote(reference: str, *args: Any, **kwargs: Any) -> Any:
        for suffix, cls in known.items():
            if reference.endswith(suffix):
                return cls
        return original(reference, *args, **kwargs)

    # setattr: the stand-in replaces a function whose signature it does not repeat
    setattr(dynamic, "get_class_from_dynamic_module", from_remote)  # noqa: B010
    setattr(transformers.models.auto.configuration_auto, "get_class_from_dynamic_module", from_remote)  # noqa: B010


def variables_read_outside_envs() -> set[str]:
    """VLLM_* names vLLM's modules read straight from os.environ (e.g. VLLM_BATCH_INVARIANT)."""
    import vllm

    pattern = re.compile(r"""os\.(?:getenv\(|environ\.get\(|environ\[)\s*["'](VLLM_\w+)["']""")
    names: set[str] = set()
    for source in Path(vllm.__file__).parent.rglob("*.py"):
        names.update(pattern.findall(source.read_text(errors="replace")))
    return names


def check_env(env: dict[str, str]) -> list[str]:
    """Every VLLM_* variable must be one vLLM reads, with a value its own parser (vllm/envs.py) accepts."""
    from vllm import __version__

    problems = []
    other_readers = variables_read_outside_envs()
    for key in sorted(k for k in env if k.startswith("VLLM_")):
        if key in vllm_envs.environment_variables:
            try:
                vllm_envs.environment_variables[key]()
            except Exception as error:  # vLLM's own parser of the variable refused the value
                problems.append(f"{key}={env[key]!r}: {error}")
        elif key not in other_readers:
            problems.append(f"{key}: not a variable vLLM {__version__} reads")
    return problems


def batch_invariant_kernels() -> str:
    """Which batch-invariant path the installed vLLM takes on this GPU, by enable_batch_invariant_mode's own tests:
    0.13 in vllm/model_executor/layers/batch_invariant.py, 0.33 in vllm/model_executor/determinism/batch_invariant.py.
    """
    from vllm import __version__
    from vllm.platforms import current_platform as platform

    if __version__.startswith("0.13."):
        if platform.is_device_capability_family(100) or any(platform.is_device_capability(c) for c in (80, 89)):
            return "triton-matmul"
        return "cublas-no-split-k" if platform.is_device_capability(90) else "none"
    if not platform.is_cuda_alike():
        return "none"
    return "triton-matmul" if platform.is_rocm() or platform.is_device_capability_family(80) else "cublas-no-split-k"


def clear_device_caches() -> None:
    """vLLM caches the device capability and count; each container has its own GPU."""
    from vllm.platforms import current_platform

    type(current_platform).get_device_capability.__func__.cache_clear()
    try:  # 0.13: vllm/utils/torch_utils.py
        from vllm.utils.torch_utils import _cuda_device_count_stateless
    except ImportError:  # 0.33: vllm/platforms/cuda.py
        from vllm.platforms.cuda import _cuda_device_count_stateless
    _cuda_device_count_stateless.cache_clear()


def pooling_type(pooler: Any) -> str | None:
    """The sequence pooling vLLM resolved: 0.33 moves `pooling_type` to `seq_pooling_type` (vllm/config/pooler.py)."""
    if pooler is None:
        return None
    return getattr(pooler, "seq_pooling_type", None) or pooler.pooling_type  # type: ignore[no-any-return]


def engine_facts(config: Any) -> dict[str, Any]:
    model, parallel, scheduler, cache = (
        config.model_config,
        config.parallel_config,
        config.scheduler_config,
        config.cache_config,
    )
    rope = getattr(model.hf_text_config, "rope_parameters", None) or {}
    return {
        "model": model.model,
        "served_model_name": model.served_model_name,
        "max_model_len": model.max_model_len,
        "rope_type": rope.get("rope_type", "none") if isinstance(rope, dict) else "per-layer",
        "quantization": model.quantization,
        "kv_cache_dtype": cache.cache_dtype,
        "dtype": str(model.dtype).removeprefix("torch."),
        "runner": model.runner_type,
        "convert": model.convert_type,
        "tensor_parallel_size": parallel.tensor_parallel_size,
        "pipeline_parallel_size": parallel.pipeline_parallel_size,
        "nnodes": parallel.nnodes,
        "max_num_seqs": scheduler.max_num_seqs,
        "max_num_batched_tokens": scheduler.max_num_batched_tokens,
        "enable_chunked_prefill": scheduler.enable_chunked_prefill,
        "pooling_type": pooling_type(model.pooler_config),
        "enable_prefix_caching": cache.enable_prefix_caching,
        "gpu_memory_utilization": cache.gpu_memory_utilization,
        "seed": model.seed,
        "batch_invariant_kernels": batch_invariant_kernels(),
    }


def check(container: dict[str, Any]) -> dict[str, Any]:
    GPU.update(container["gpu"])
    HOST["memory_bytes"] = container["host_memory_bytes"]
    clear_device_caches()
    os.environ.update(container["env"])
    problems = check_env(container["env"])
    if problems:
        return {"error": "; ".join(problems)}
    parser, commands = serve_parser()
    try:
        args = parser.parse_args(["serve", *container["args"]])
    except SystemExit:
        return {"error": "vllm serve's argument parser refused the arguments (its message is on stderr)"}
    if args.model_tag is not None:
        args.model = args.model_tag
    commands["serve"].validate(args)
    engine_args = AsyncEngineArgs.from_cli_args(args)
    config = engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER, headless=args.headless)
    return engine_facts(config)


def run_one(container: dict[str, Any], out: Any) -> None:
    try:
        register_remote_code_standins()
        out.send(check(container))
    except Exception as error:
        out.send({"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()})


def main() -> None:
    assert vllm_cli_main  # the CLI module is imported so the same modules load as under `vllm serve`
    containers = json.load(sys.stdin)  # results go to the file named by argv[1]: vLLM logs to stdout
    context = multiprocessing.get_context("fork")  # each container gets vLLM's state fresh from one import
    results = {}
    for container in containers:
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=run_one, args=(container, send))
        child.start()
        results[container["name"]] = receive.recv() if receive.poll(300) else {"error": "no answer in 300 s"}
        child.join(30)
        if child.is_alive():
            child.kill()
    with open(sys.argv[1], "w") as out:
        json.dump(results, out)


if __name__ == "__main__":
    main()
