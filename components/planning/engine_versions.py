"""The vLLM versions the plan can target, as one table: every fact that depends on the version, each row citing the
file of vLLM's source at that tag it was read from (the installed wheel, `vllm/...`).

A stack picks its version with `vllmVersion` (a model may override it); anything else is refused with this list.
tests/engine runs each row's real package over the containers of the stacks that use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from components.spec import ClusterSpec, SpecError

# Which batch-invariant matmul path vLLM takes on a GPU: its own Triton kernels, cuBLAS without split-K, or none.
InvariantKernels = Literal["triton-matmul", "cublas-no-split-k", "none"]


@dataclass(frozen=True)
class BatchTier:
    """One tier of vLLM's batch defaults for the OpenAI server (UsageContext.OPENAI_API_SERVER)."""

    min_gib: float  # the GPU's total memory is at least this
    max_num_seqs: int
    max_num_batched_tokens: int
    excluded_names: tuple[str, ...] = ()  # substrings of the device name the tier skips (lower case)
    excluded_capabilities: tuple[str, ...] = ()  # compute capabilities the tier skips


@dataclass(frozen=True)
class MetricNames:
    """The Prometheus series our dashboards, alerts, recording rules, HPA adapter rules and preStop drain read."""

    running: str = "vllm:num_requests_running"
    waiting: str = "vllm:num_requests_waiting"
    kv_cache_usage: str = "vllm:kv_cache_usage_perc"
    preemptions: str = "vllm:num_preemptions"  # counter: exposed with _total
    prompt_tokens: str = "vllm:prompt_tokens"  # counter
    generation_tokens: str = "vllm:generation_tokens"  # counter
    request_success: str = "vllm:request_success"  # counter
    prefix_cache_queries: str = "vllm:prefix_cache_queries"  # counter
    prefix_cache_hits: str = "vllm:prefix_cache_hits"  # counter
    time_to_first_token: str = "vllm:time_to_first_token_seconds"  # histogram
    inter_token_latency: str = "vllm:inter_token_latency_seconds"  # histogram
    e2e_request_latency: str = "vllm:e2e_request_latency_seconds"  # histogram
    request_queue_time: str = "vllm:request_queue_time_seconds"  # histogram

    def names(self) -> dict[str, str]:
        return dict(vars(self))


@dataclass(frozen=True)
class KvCacheRules:
    """Where the release's KV-cache allocator differs from 0.13.0's, which components/planning/kv_cache.py ports;
    tests/engine/test_kv_cache_layout.py runs each release's own allocator against it."""

    # Sliding-window and chunked layers hold their window plus every in-flight step's tokens: (PP + 1) batches with
    # async scheduling (on by default for generative models), PP without (pooling), not one batch.
    in_flight_batches: bool = False
    # The hybrid allocator stays on for chunked local attention (sized per group, not as full attention).
    hybrid_chunked_local: bool = False
    # The start-up check leaves out the null block the pool holds back: one block more than a request.
    null_block_reserved: bool = False
    # The logged "KV cache size" is int(concurrency x max_model_len), not blocks // groups x block size.
    tokens_from_concurrency: bool = False
    # Prefix caching is on for hybrid models, so Mamba runs in `align` mode: each request holds this many states
    # as big as an attention block in every Mamba layer (0: 0.13's one max_model_len state, prefix caching off).
    mamba_align_states: int = 0
    # In align mode, gated delta nets (FlashInfer GDN prefill, the default on Hopper) keep one prefill checkpoint
    # state more per request and put the attention block on this token grid (0: no checkpoints).
    gdn_checkpoint_tokens: int = 0


@dataclass(frozen=True)
class EngineVersion:
    """Everything the plan and the components take from one vLLM release."""

    version: str
    image: str  # the upstream OpenAI-server image of the release
    venv: str  # the environment tests/engine runs this release from (gitignored) ...
    requirements: str  # ... installed from this pinned file
    # The image: `vllm serve` as its entrypoint, root unless the pod says otherwise, no passwd entry for our uid.
    entrypoint: tuple[str, ...]
    image_user: str
    # YaRN: the `--hf-overrides` key vLLM applies after normalising the config's rope fields, and whether the
    # override must carry rope_theta (a dict override replaces the whole attribute).
    rope_override_key: str
    rope_theta_in_override: bool
    # Whether the override must also raise max_position_embeddings to the extended length: 0.33 takes a YaRN config's
    # max_position_embeddings as already scaled and no longer multiplies it by the factor.
    yarn_scaled_max_position: bool
    # Whether the plan writes the override as one `--hf-overrides.<key> <json>` per key (merged by vLLM's parser)
    # instead of one JSON: 0.33's two keys would make one shell word wider than the plan's 120 columns.
    hf_overrides_dotted: bool
    # Pooling: a pooling model runs on `--runner pooling`; a generative architecture also needs `--convert <task>`.
    pooling_runner_flags: tuple[str, ...]
    convert_flag: str
    converts: tuple[str, ...]  # the --convert values the release accepts
    # The *ForSequenceClassification architectures whose config hook turns `is_original_qwen3_reranker` into the
    # from_2_way_softmax score head (MODELS_CONFIG_MAP): other Qwen3 reranker overrides would load no score head.
    original_qwen3_reranker_architectures: tuple[str, ...]
    prefix_caching_flags: tuple[str, str]  # (on, off)
    # Multi-node replicas with vLLM's own launcher (no Ray): backend, node count and rank, rendezvous, headless.
    multinode_flags: tuple[str, ...]
    tokenizer_modes: tuple[str, ...]  # --tokenizer-mode values (catalog rows pass e.g. mistral)
    batch_tiers: tuple[BatchTier, ...]  # largest first; the last is the fallback
    default_gpu_memory_utilization: float  # vLLM's own default: the plan passes it when the stack sets none
    # Memory model: whether vLLM takes its CUDA-graph estimate out of the gpu_memory_utilization budget before the
    # KV cache (True), or captures the graphs after the KV cache is allocated, outside the budget (False).
    cudagraph_memory_in_budget: bool
    batch_invariant_env: str
    triton_invariant_families: tuple[str, ...]  # compute-capability majors on vLLM's own Triton matmuls
    triton_invariant_capabilities: tuple[str, ...]  # exact capabilities on them
    cublas_invariant_families: tuple[str, ...]  # majors on cuBLAS without split-K ("*": every other CUDA GPU)
    cublas_invariant_capabilities: tuple[str, ...]
    runtime_env: MappingProxyType[str, str]
    metrics: MetricNames
    # Metric names the release no longer exports that an older supported one could (informational; none is read).
    removed_metrics: tuple[str, ...]
    sources: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    kv_cache: KvCacheRules = field(default_factory=KvCacheRules)  # 0.13.0's allocator unless the row says

    def batch_defaults(self, memory_gib: float, gpu_name: str, compute_capability: str) -> tuple[int, int]:
        """(max_num_seqs, max_num_batched_tokens) vLLM picks on this GPU for the OpenAI server."""
        for tier in self.batch_tiers:
            if (
                memory_gib >= tier.min_gib
                and not any(n in gpu_name.lower() for n in tier.excluded_names)
                and compute_capability not in tier.excluded_capabilities
            ):
                return tier.max_num_seqs, tier.max_num_batched_tokens
        raise AssertionError("the last batch tier has min_gib 0")  # pragma: no cover

    def cudagraph_budget_gib(self, cuda_graph_gib: float) -> float:
        """GiB the memory model must take out of the gpu_memory_utilization budget, before the KV cache, for CUDA
        graphs of `cuda_graph_gib`: all of it where vLLM profiles them inside the budget (0.33), none where it
        captures them outside (0.13). memory.cuda_graph_bytes takes it out of the plan's budget."""
        return cuda_graph_gib if self.cudagraph_memory_in_budget else 0.0

    def invariant_kernels(self, compute_capability: str) -> InvariantKernels:
        family = compute_capability.split(".")[0]
        if compute_capability in self.triton_invariant_capabilities or family in self.triton_invariant_families:
            return "triton-matmul"
        if (
            compute_capability in self.cublas_invariant_capabilities
            or family in self.cublas_invariant_families
            or "*" in self.cublas_invariant_families
        ):
            return "cublas-no-split-k"
        return "none"


def _frozen(mapping: dict[str, str]) -> MappingProxyType[str, str]:
    return MappingProxyType(mapping)


# The container's runtime environment under a read-only root filesystem and a uid without a passwd entry, the same
# in both releases: torch inductor names its cache dir after getpass.getuser(), which fails for a uid without a
# passwd entry unless USER is set (torch/_inductor/runtime/cache_dir_utils.py); usage reports would go to
# stats.vllm.ai, which the NetworkPolicies block anyway (vllm/envs.py VLLM_NO_USAGE_STATS).
RUNTIME_HOME = "/home/vllm"
_RUNTIME_ENV = _frozen({"HOME": RUNTIME_HOME, "USER": "vllm", "VLLM_NO_USAGE_STATS": "1"})
_MULTINODE = (
    "--distributed-executor-backend",
    "--nnodes",
    "--node-rank",
    "--master-addr",
    "--master-port",
    "--headless",
)

V0_13_0 = EngineVersion(
    version="0.13.0",
    image="vllm/vllm-openai:v0.13.0",
    venv=".venv-vllm",
    requirements="requirements-vllm.txt",
    entrypoint=("vllm", "serve"),
    image_user="root",
    rope_override_key="rope_parameters",
    rope_theta_in_override=True,
    yarn_scaled_max_position=False,
    hf_overrides_dotted=False,
    pooling_runner_flags=("--runner", "pooling"),
    convert_flag="--convert",
    converts=("none", "embed", "classify", "reward"),
    original_qwen3_reranker_architectures=("Qwen3ForSequenceClassification",),
    prefix_caching_flags=("--enable-prefix-caching", "--no-enable-prefix-caching"),
    multinode_flags=_MULTINODE,
    tokenizer_modes=("auto", "hf", "slow", "mistral", "deepseek_v32"),
    batch_tiers=(
        BatchTier(70.0, 1024, 8192, excluded_names=("a100",)),
        BatchTier(0.0, 256, 2048),
    ),
    default_gpu_memory_utilization=0.9,
    cudagraph_memory_in_budget=False,
    batch_invariant_env="VLLM_BATCH_INVARIANT",
    triton_invariant_families=("10",),
    triton_invariant_capabilities=("8.0", "8.9"),
    cublas_invariant_families=(),
    cublas_invariant_capabilities=("9.0",),
    runtime_env=_RUNTIME_ENV,
    metrics=MetricNames(),
    removed_metrics=(),
    sources=_frozen(
        {
            "image": "docker/Dockerfile at v0.13.0 (vllm-openai target: ENTRYPOINT vllm serve, no USER)",
            "rope_override_key": "vllm/config/model.py (ModelConfig._apply_dict_overrides), "
            "vllm/transformers_utils/config.py (patch_rope_parameters)",
            "yarn_scaled_max_position": "vllm/config/model.py (_get_and_verify_max_len multiplies the derived "
            "length by the rope factor)",
            "pooling_runner_flags": "vllm/config/model.py (RunnerOption, ConvertType, _RUNNER_CONVERTS)",
            "original_qwen3_reranker_architectures": "vllm/model_executor/models/config.py "
            "(MODELS_CONFIG_MAP: Qwen3ForSequenceClassificationConfig only)",
            "prefix_caching_flags": "vllm/engine/arg_utils.py (--enable-prefix-caching, BooleanOptionalAction)",
            "multinode_flags": "vllm/engine/arg_utils.py (--nnodes, --node-rank, --master-addr, --master-port, "
            "--headless via vllm/entrypoints/cli/serve.py)",
            "tokenizer_modes": "vllm/config/model.py (TokenizerMode)",
            "batch_tiers": "vllm/engine/arg_utils.py (EngineArgs.get_batch_defaults)",
            "default_gpu_memory_utilization": "vllm/config/cache.py (CacheConfig.gpu_memory_utilization)",
            "cudagraph_memory_in_budget": "vllm/v1/worker/gpu_worker.py (determine_available_memory, then "
            "compile_or_warm_up_model captures the graphs)",
            "batch_invariant": "vllm/model_executor/layers/batch_invariant.py (enable_batch_invariant_mode), "
            "vllm/envs.py (VLLM_BATCH_INVARIANT)",
            "runtime_env": "vllm/envs.py (VLLM_NO_USAGE_STATS)",
            "metrics": "vllm/v1/metrics/loggers.py (PrometheusStatLogger)",
        }
    ),
)

V0_33_0 = EngineVersion(
    version="0.33.0",
    image="vllm/vllm-openai:v0.33.0",
    venv=".venv-vllm-0.33",
    requirements="requirements-vllm-0.33.txt",
    entrypoint=("vllm", "serve"),
    image_user="root",
    rope_override_key="rope_parameters",
    rope_theta_in_override=True,
    yarn_scaled_max_position=True,
    hf_overrides_dotted=True,
    pooling_runner_flags=("--runner", "pooling"),
    convert_flag="--convert",
    converts=("none", "embed", "classify"),  # `reward` is gone
    original_qwen3_reranker_architectures=("Qwen3ForSequenceClassification", "Qwen3VLForSequenceClassification"),
    prefix_caching_flags=("--enable-prefix-caching", "--disable-prefix-caching"),  # --no-enable-...: hidden, legacy
    multinode_flags=_MULTINODE,
    tokenizer_modes=(
        "auto",
        "hf",
        "alpamayo2_super",
        "mistral",
        "deepseek_v32",
        "deepseek_v4",
        "inkling",
        "kimi_k3",
        "cohere",
    ),
    batch_tiers=(
        BatchTier(160.0, 1024, 16384),  # B200/B300 class
        BatchTier(70.0, 1024, 8192, excluded_names=("a100",), excluded_capabilities=("12.1",)),  # not A100, GB10
        BatchTier(0.0, 256, 2048),
    ),
    default_gpu_memory_utilization=0.92,
    cudagraph_memory_in_budget=True,  # VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS defaults to 1 since 0.21.0
    batch_invariant_env="VLLM_BATCH_INVARIANT",
    triton_invariant_families=("8",),  # SM8x: cuBLASLt cannot be made invariant
    triton_invariant_capabilities=(),
    cublas_invariant_families=("*",),  # Hopper, Blackwell and the rest: split-K off
    cublas_invariant_capabilities=(),
    runtime_env=_RUNTIME_ENV,
    metrics=MetricNames(),
    # Deprecated and hidden in 0.13 (only with --show-hidden-metrics-for-version), gone in 0.33; nothing reads it.
    removed_metrics=("vllm:time_per_output_token_seconds",),
    kv_cache=KvCacheRules(
        in_flight_batches=True,
        hybrid_chunked_local=True,
        null_block_reserved=True,
        tokens_from_concurrency=True,
        mamba_align_states=2,
        gdn_checkpoint_tokens=64,
    ),
    sources=_frozen(
        {
            "image": "docker/Dockerfile at v0.33.0 (not in the wheel; tag by the project's v<version> convention)",
            "rope_override_key": "vllm/config/model.py (ModelConfig._apply_dict_overrides), "
            "vllm/transformers_utils/config.py (patch_rope_parameters)",
            "yarn_scaled_max_position": "vllm/config/model.py (_get_and_verify_max_len: YaRN variants leave "
            "max_position_embeddings already scaled; `factor` is not applied)",
            "hf_overrides_dotted": "vllm/utils/argparse_utils.py (FlexibleArgumentParser.parse_args merges "
            "`--hf-overrides.<key>` values into one dict)",
            "pooling_runner_flags": "vllm/config/model.py (RunnerOption, ConvertType)",
            "original_qwen3_reranker_architectures": "vllm/model_executor/models/config.py (MODELS_CONFIG_MAP: "
            "Qwen3ForSequenceClassificationConfig and its subclass Qwen3VLForSequenceClassificationConfig)",
            "prefix_caching_flags": "vllm/utils/argparse_utils.py (EnableDisableAction: --enable-x pairs with "
            "--disable-x; --no-enable-x is kept hidden for compatibility)",
            "multinode_flags": "vllm/engine/arg_utils.py (--nnodes, --node-rank, --master-addr, --master-port; "
            "--headless via vllm/entrypoints/cli/serve.py)",
            "tokenizer_modes": "vllm/config/model.py (TokenizerMode)",
            "batch_tiers": "vllm/engine/arg_utils.py (EngineArgs.get_batch_defaults: >= 160 GiB tier, GB10 cc 12.1)",
            "default_gpu_memory_utilization": "vllm/config/cache.py (CacheConfig.gpu_memory_utilization = 0.92)",
            "cudagraph_memory_in_budget": "vllm/v1/worker/gpu_worker.py (determine_available_memory: "
            "cudagraph_memory_estimate_applied), vllm/envs.py (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS)",
            "batch_invariant": "vllm/model_executor/determinism/batch_invariant.py (enable_batch_invariant_mode), "
            "vllm/envs.py (VLLM_BATCH_INVARIANT)",
            "runtime_env": "vllm/envs.py (VLLM_NO_USAGE_STATS)",
            "metrics": "vllm/v1/metrics/loggers.py (PrometheusStatLogger)",
            "kv_cache.in_flight_batches": "vllm/v1/kv_cache_interface.py (SlidingWindowSpec, "
            "ChunkedLocalAttentionSpec max_admission_blocks_per_request), vllm/config/vllm.py "
            "(VllmConfig.max_in_flight_tokens, max_concurrent_batches, async scheduling default)",
            "kv_cache.hybrid_chunked_local": "vllm/envs.py (VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE "
            "defaults to 1), vllm/config/vllm.py (VllmConfig.__post_init__)",
            "kv_cache.null_block_reserved": "vllm/v1/core/kv_cache_planning.py (get_kv_cache_configs: check_memory)",
            "kv_cache.tokens_from_concurrency": "vllm/v1/core/kv_cache_utils.py (get_kv_cache_capacity)",
            "kv_cache.mamba_align_states": "vllm/config/model.py (ModelConfig.is_prefix_caching_supported: hybrid), "
            "vllm/model_executor/models/config.py (MambaModelConfig: align mode), vllm/platforms/interface.py "
            "(Platform._align_hybrid_block_size), vllm/v1/kv_cache_interface.py (MambaSpec.max_memory_usage_bytes)",
            "kv_cache.gdn_checkpoint_tokens": "vllm/v1/attention/backends/gdn_attn.py "
            "(FLASHINFER_GDN_CHECKPOINT_ALIGNMENT), vllm/model_executor/layers/mamba/gdn/qwen_gdn_linear_attn.py "
            "(_resolve_gdn_prefill_backend, get_kv_cache_spec: num_prefill_checkpoint_blocks=1)",
        }
    ),
)

ENGINE_VERSIONS: dict[str, EngineVersion] = {v.version: v for v in (V0_13_0, V0_33_0)}
# A new stack gets the current release: 0.33.0 is the newest 0.33 on PyPI (no 0.33.x patch release yet).
DEFAULT_VLLM_VERSION = "0.33.0"


def unsupported(version: str, field_path: str) -> str:
    return (
        f"{field_path}: vLLM {version!r} is not supported; use one of {', '.join(ENGINE_VERSIONS)} "
        "(components/planning/engine_versions.py lists what each sets)"
    )


def engine_version(version: str | None, field_path: str = "vllmVersion") -> EngineVersion:
    """The table row of a version (None: the default); a clear error naming the field otherwise."""
    row = ENGINE_VERSIONS.get(version or DEFAULT_VLLM_VERSION)
    if row is None:
        raise SpecError([unsupported(str(version), field_path)])
    return row


def version_errors(spec: ClusterSpec) -> list[str]:
    """The stack's and each model's vllmVersion outside the table; a model on another release than the stack
    while images.vllm builds the one model-server image from the stack's release."""
    errors = (
        [] if spec.vllm_version in (None, *ENGINE_VERSIONS) else [unsupported(str(spec.vllm_version), "vllmVersion")]
    )
    stack = spec.vllm_version or DEFAULT_VLLM_VERSION
    for i, model in enumerate(spec.models):
        if model.vllm_version is None:
            continue
        if model.vllm_version not in ENGINE_VERSIONS:
            errors.append(unsupported(model.vllm_version, f"models[{i}].vllmVersion"))
        elif model.vllm_version != stack and spec.images.vllm is not None:
            errors.append(
                f"models[{i}].vllmVersion: {model.vllm_version} differs from the stack's {stack}, but images.vllm "
                "builds one image from the stack's release; remove it or set the stack's vllmVersion"
            )
    return errors


def metric_changes(before: EngineVersion, after: EngineVersion) -> tuple[list[str], list[str]]:
    """(gone, new): names our monitoring reads under `before` and not under `after`, and the reverse."""
    old, new = set(before.metrics.names().values()), set(after.metrics.names().values())
    return sorted(old - new), sorted(new - old)
