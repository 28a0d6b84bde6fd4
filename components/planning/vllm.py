"""The flags and environment the plan owns, the same in every supported vLLM version. What differs between
versions (defaults, spellings, capability rules, image, metrics) is in engine_versions.py, one row per version."""

from __future__ import annotations

from components.planning.engine_versions import DEFAULT_VLLM_VERSION, V0_13_0
from components.planning.engine_versions import RUNTIME_HOME as RUNTIME_HOME  # re-exported for the components

# The version a new stack gets; a model's own is ModelPlan.vllm_version.
VLLM_VERSION = DEFAULT_VLLM_VERSION
# The small-GPU batch tier every supported version has (EngineVersion.batch_tiers: under 70 GiB, or an A100):
# (max_num_seqs, max_num_batched_tokens); a version's own defaults on a GPU are EngineVersion.batch_defaults.
SMALL_GPU_DEFAULTS = (256, 2048)
# When the sampler of the default max_num_seqs leaves no room for the KV cache, the plan halves max_num_seqs
# down to this, the smallest a published deployment runs (vllm-ascend Qwen3-235B: --max-num-seqs 16).
MIN_LOWERED_MAX_NUM_SEQS = 16
# Flags the plan owns, and the spec field that sets each.
PLAN_FLAGS = {
    "--model": "model",
    "--served-model-name": "name",
    "--revision": "revision",
    "--tensor-parallel-size": "tensorParallel",
    "-tp": "tensorParallel",
    "--pipeline-parallel-size": "pipelineParallel",
    "-pp": "pipelineParallel",
    "--data-parallel-size": "replicas (each replica is its own pod)",
    "-dp": "replicas (each replica is its own pod)",
    "--max-model-len": "maxModelLen",
    "--max-num-seqs": "maxNumSeqs",
    "--max-num-batched-tokens": "maxNumBatchedTokens",
    "--gpu-memory-utilization": "gpuMemoryUtilization",
    "--quantization": "quantization",
    "-q": "quantization",
    "--dtype": "quantization",
    "--kv-cache-dtype": "kvCacheDtype",
    "--hf-overrides": "ropeScaling",
    "--rope-scaling": "ropeScaling",
    "--seed": "seed",
    "--enable-prefix-caching": "prefixCaching",
    "--no-enable-prefix-caching": "prefixCaching",
    "--disable-prefix-caching": "prefixCaching",
    "--enable-auto-tool-choice": "toolCallParser",
    "--tool-call-parser": "toolCallParser",
    "--trust-remote-code": "trustRemoteCode",
    "--task": "task",
    "--runner": "task",
    "--convert": "task",
}
# Flags the components set, and which.
COMPONENT_FLAGS = {
    "--host": "the serving component sets it",
    "--port": "the serving component sets it",
    "--distributed-executor-backend": "the plan picks it for multi-node replicas",
}
# The container's runtime environment under a read-only root filesystem and a uid without a passwd entry, the
# same in every supported version (EngineVersion.runtime_env).
RUNTIME_ENV = dict(V0_13_0.runtime_env)
PLAN_ENV = (
    "NCCL_P2P_DISABLE", "VLLM_BATCH_INVARIANT", "HF_TOKEN", "HF_HOME", "HF_HUB_OFFLINE", "HF_ENDPOINT", *RUNTIME_ENV
)  # fmt: skip


def vllm_flag(arg: str) -> str:
    """The flag as vLLM's own parser reads it: `--max_model_len=8` is `--max-model-len` (FlexibleArgumentParser turns
    underscores before the first `.` into dashes), and `--hf-overrides.key v` is `--hf-overrides` (it merges dotted
    keys into one JSON value of the flag), in 0.13 and 0.33 (vllm/utils/argparse_utils.py)."""
    flag = arg.split("=", 1)[0]
    if not flag.startswith("--"):
        return flag
    return flag.partition(".")[0].replace("_", "-")
