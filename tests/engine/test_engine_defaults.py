"""The version table against each release's real package: the batch limits vLLM picks on a GPU when the arguments
leave them out (EngineArgs.get_batch_defaults), gpu_memory_utilization's default, the batch-invariant kernels per
compute capability (EngineVersion.invariant_kernels), and the spellings the row names (flags, convert values,
tokenizer modes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from components.catalog import load_gpu_catalog
from components.planning.engine_versions import ENGINE_VERSIONS
from tests.engine.engine_run import STANDIN, VllmContainer, run_engine, standin_libcuda, vllm_python

# One GPU of each tier and batch-invariance family the catalog has: Blackwell >= 160 GiB, Hopper, A100 (excluded
# from the large tier), Ada with 24 GiB.
GPUS = ("B200-SXM-180GB", "H100-SXM-80GB", "A100-SXM-80GB", "L4-24GB")
# A long context, so vLLM's derived limits are its defaults themselves (chunked prefill: tokens = the default).
ARGS = ["Qwen/Qwen3-32B", "--max-model-len", "40960"]


@pytest.mark.parametrize("version", ENGINE_VERSIONS)
def test_the_rows_defaults_are_what_the_release_picks(version: str, tmp_path: Path) -> None:
    row = ENGINE_VERSIONS[version]
    gpus = load_gpu_catalog()
    containers = [VllmContainer(g, ARGS, {}, gpus[g], 8, True, 256 * 2**30) for g in GPUS]
    answers = run_engine(containers, tmp_path, version)
    for name in GPUS:
        answer, gpu = answers[name], gpus[name]
        assert "error" not in answer, f"{name}: {answer['error']}"
        planned = row.batch_defaults(gpu.memory_mib / 1024, gpu.name, gpu.compute_capability)
        assert (answer["max_num_seqs"], answer["max_num_batched_tokens"]) == planned, name
        assert answer["gpu_memory_utilization"] == row.default_gpu_memory_utilization
        assert answer["batch_invariant_kernels"] == row.invariant_kernels(gpu.compute_capability), name


# Run inside a release's venv on the stand-in GPU (vllm_standin.py: serve's parser needs a device to build).
SPELLINGS = """
import json, sys, typing
sys.path.insert(0, sys.argv[1])
import vllm_standin
from vllm.config import model as model_config
parser, _ = vllm_standin.serve_parser()
serve = next(a for a in parser._actions if getattr(a, "choices", None) and "serve" in a.choices).choices["serve"]
print(json.dumps({
    "converts": list(typing.get_args(model_config.ConvertType)),
    "tokenizer_modes": list(typing.get_args(model_config.TokenizerMode)),
    "options": sorted({o for action in serve._actions for o in action.option_strings}),
}))
"""


@pytest.mark.parametrize("version", ENGINE_VERSIONS)
def test_the_rows_spellings_are_the_releases(version: str, tmp_path: Path) -> None:
    """Convert values, tokenizer modes and every flag the row names, as the release's own parser defines them."""
    row = ENGINE_VERSIONS[version]
    env = {"PATH": "/usr/bin:/bin", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
    env["LD_LIBRARY_PATH"] = str(standin_libcuda(tmp_path, version))
    done = subprocess.run(
        [str(vllm_python(version)), "-c", SPELLINGS, str(STANDIN.parent)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert (tuple(found["converts"]), tuple(found["tokenizer_modes"])) == (row.converts, row.tokenizer_modes)
    flags = [*row.pooling_runner_flags[:1], row.convert_flag, *row.prefix_caching_flags, *row.multinode_flags]
    assert not [f for f in flags if f not in found["options"]], found["options"]
