"""What depends on the vLLM version the model servers run: its defaults, the flags and environment the plan
owns, and its capability rules. Each row cites the vLLM source it follows."""

from __future__ import annotations

VLLM_VERSION = "0.13.0"
# vLLM's own batch limits for the OpenAI server (UsageContext.OPENAI_API_SERVER): GPUs with >= 70 GiB, A100
# excepted, get larger batches (EngineArgs.get_batch_defaults, default_max_num_seqs and
# default_max_num_batched_tokens in vllm/engine/arg_utils.py).
LARGE_GPU_THRESHOLD_GIB = 70.0
LARGE_GPU_DEFAULTS = (1024, 8192)  # (max_num_seqs, max_num_batched_tokens)
SMALL_GPU_DEFAULTS = (256, 2048)
# When the sampler of the default max_num_seqs leaves no room for the KV cache, the plan halves max_num_seqs
# down to this, the smallest a published deployment runs (vllm-ascend Qwen3-235B: --max-num-seqs 16).
MIN_LOWERED_MAX_NUM_SEQS = 16
# Compute capabilities vLLM 0.13's batch-invariant mode has kernels for: its own matmuls on 8.0, 8.9 and
# the 10.x family, cuBLAS without split-K on 9.0 (enable_batch_invariant_mode in
# vllm/model_executor/layers/batch_invariant.py). Other GPUs get no invariant matmul.
BATCH_INVARIANT_CAPABILITIES = ("8.0", "8.9", "9.0")
BATCH_INVARIANT_FAMILIES = ("10",)
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
# The container's runtime environment under a read-only root filesystem and a uid without a passwd entry.
RUNTIME_HOME = "/home/vllm"
RUNTIME_ENV = {
    "HOME": RUNTIME_HOME,
    # torch inductor names its cache dir after getpass.getuser(), which fails for a uid without a passwd
    # entry unless USER is set (torch/_inductor/runtime/cache_dir_utils.py).
    "USER": "vllm",
    # Usage reports would go to stats.vllm.ai, which the NetworkPolicies block anyway (vllm/envs.py).
    "VLLM_NO_USAGE_STATS": "1",
}
PLAN_ENV = (
    "NCCL_P2P_DISABLE", "VLLM_BATCH_INVARIANT", "HF_TOKEN", "HF_HOME", "HF_HUB_OFFLINE", "HF_ENDPOINT", *RUNTIME_ENV
)  # fmt: skip


def vllm_flag(arg: str) -> str:
    """The flag as vLLM's own parser reads it: `--max_model_len=8` is `--max-model-len` (FlexibleArgumentParser turns
    underscores before the first `.` into dashes, vllm/utils/argparse_utils.py)."""
    flag = arg.split("=", 1)[0]
    if not flag.startswith("--"):
        return flag
    head, dot, tail = flag.partition(".")
    return head.replace("_", "-") + dot + tail
