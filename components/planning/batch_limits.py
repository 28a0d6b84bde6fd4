"""Batch limits: the max_num_seqs and max_num_batched_tokens a model server runs with.

They are plan decisions because they set the activation and sampler memory of vLLM's profiling run, and so the
room left for the KV cache: the user's value, else the engine's default for the GPU, lowered only when that is what
lets the model fit on a layout (the fewest GPUs win; a smaller batch is chosen only where the default one would not
fit those GPUs). The plan always passes both to vLLM, so the plan and the engine agree.
"""

from __future__ import annotations

from components.catalog import ModelArch
from components.planning.memory import GIB, SAMPLER_LOGIT_COPIES
from components.planning.types import GpuShape, SizingError, SizingRequest
from components.planning.vllm import MIN_LOWERED_MAX_NUM_SEQS, SMALL_GPU_DEFAULTS


def engine_batch_defaults(req: SizingRequest, shape: GpuShape) -> tuple[int, int]:
    """The model's vLLM release's defaults on this GPU (EngineVersion.batch_defaults)."""
    return req.engine.batch_defaults(shape.memory_gib, shape.gpu_name, shape.compute_capability)


def lower_batch_tiers(req: SizingRequest, shape: GpuShape) -> list[tuple[tuple[int, int], float]]:
    """(defaults, GiB threshold) of each tier below the one vLLM puts this GPU in (EngineVersion.batch_tiers): the
    defaults a card just under that threshold gets. Empty when the GPU is in the last tier already."""
    tiers = req.engine.batch_tiers
    facts = (shape.memory_gib, shape.gpu_name, shape.compute_capability)
    mine = next(
        i
        for i, t in enumerate(tiers)
        if req.engine.batch_defaults(*facts) == (t.max_num_seqs, t.max_num_batched_tokens)
    )
    return [((t.max_num_seqs, t.max_num_batched_tokens), tiers[i - 1].min_gib) for i, t in enumerate(tiers) if i > mine]


def batch_rungs(req: SizingRequest, arch: ModelArch, shape: GpuShape, max_len: int) -> list[tuple[int, int]]:
    """(max_num_seqs, max_num_batched_tokens) pairs to try, in order: the asked or default limits first, then
    max_num_seqs halved (generate models without a user value), each as vLLM would run it. The plan tries the
    halved ones on a layout only when the first does not fit it: fewer GPUs beat a larger batch, since a KV cache
    that cannot hold the default batch's requests would not run them at once anyway."""
    default_seqs, default_tokens = engine_batch_defaults(req, shape)
    steps = [(req.max_num_seqs or default_seqs, default_tokens)]
    if req.max_num_seqs is None and arch.task == "generate":
        # Only a generate model samples; its sampler's logits (max_num_seqs x vocab) shrink with max_num_seqs.
        # Lowered rungs take the small-GPU default of batched tokens too, shrinking the forward pass.
        floor = max(MIN_LOWERED_MAX_NUM_SEQS, req.min_concurrency)
        seqs = default_seqs // 2
        while seqs >= floor:
            steps.append((seqs, min(default_tokens, SMALL_GPU_DEFAULTS[1])))
            seqs //= 2
    rungs: list[tuple[int, int]] = []
    for seqs, tokens in steps:
        rung = as_vllm_runs(req, arch, max_len, seqs, tokens)
        if rung not in rungs:
            rungs.append(rung)
    return rungs


def as_vllm_runs(req: SizingRequest, arch: ModelArch, max_len: int, seqs: int, tokens: int) -> tuple[int, int]:
    """The limits vLLM 0.13 derives from these defaults and the user's values
    (EngineArgs._set_default_max_num_seqs_and_batched_tokens_args in vllm/engine/arg_utils.py)."""
    seqs = req.max_num_seqs or seqs
    if req.max_num_batched_tokens is not None:
        tokens = req.max_num_batched_tokens
    else:
        if not arch.chunked_prefill:
            tokens = max(max_len, tokens)  # without chunked prefill a batch holds a whole request
        tokens = min(seqs * max_len, tokens)
    if req.max_num_seqs is None:
        seqs = min(seqs, tokens)
    return seqs, tokens


def check_batch_limits(req: SizingRequest, arch: ModelArch, shape: GpuShape, max_len: int) -> None:
    """Refuse limits vLLM would refuse (SchedulerConfig.verify_max_model_len in vllm/config/scheduler.py)."""
    seqs, tokens = as_vllm_runs(req, arch, max_len, *engine_batch_defaults(req, shape))
    errors = []
    if req.max_num_batched_tokens is not None and not arch.chunked_prefill and tokens < max_len:
        errors.append(
            f"{req.field}.maxNumBatchedTokens: {tokens} is less than maxModelLen {max_len}; {arch.id} is a "
            f"{arch.task} model, which vLLM runs without chunked prefill, so one batch must hold a whole request: "
            f"raise it to at least {max_len} or lower maxModelLen"
        )
    if tokens < seqs:
        where = "maxNumBatchedTokens" if req.max_num_batched_tokens is not None else "maxNumSeqs"
        errors.append(
            f"{req.field}.{where}: max_num_batched_tokens {tokens} is less than max_num_seqs {seqs}, which vLLM "
            f"refuses; set maxNumBatchedTokens to at least {seqs}"
            + ("" if req.max_num_batched_tokens is not None else f" (vLLM's default on {shape.gpu_id} is {tokens})")
        )
    if errors:
        raise SizingError(errors)


def sampler_bytes(arch: ModelArch, seqs: int) -> float:
    """The sampler's dummy pass: max_num_seqs x vocab float32 logits (memory.activation_bytes)."""
    return SAMPLER_LOGIT_COPIES * seqs * arch.vocab * 4.0 if arch.task == "generate" else 0.0


def batch_reason(
    req: SizingRequest,
    arch: ModelArch,
    shape: GpuShape,
    first: tuple[int, int],
    chosen: tuple[int, int],
    activation: float,
) -> str:
    """Why the model server runs with these limits, and what they cost per GPU."""
    seqs, tokens = chosen
    head = f"max_num_seqs {seqs}, max_num_batched_tokens {tokens}"
    cost = f"activation {activation / GIB:.2f} GiB per GPU"
    if arch.task == "generate":
        cost += f" (sampler: {seqs} x {arch.vocab} fp32 logits = {sampler_bytes(arch, seqs) / GIB:.2f} GiB)"
    asked = [
        f"{name} {value}"
        for name, value in (("maxNumSeqs", req.max_num_seqs), ("maxNumBatchedTokens", req.max_num_batched_tokens))
        if value is not None
    ]
    default_seqs, default_tokens = engine_batch_defaults(req, shape)
    kind = "under 70 GiB or A100" if (default_seqs, default_tokens) == SMALL_GPU_DEFAULTS else (
        ">= 160 GiB" if shape.memory_gib >= 160 and default_tokens > 8192 else ">= 70 GiB, not A100"
    )  # fmt: skip
    defaults = f"vLLM {req.vllm_version}'s defaults on {shape.gpu_id} ({kind}: {default_seqs} / {default_tokens})"
    if chosen != first:
        return (
            f"{head}: lowered from {first[0]} / {first[1]} ({defaults}), whose sampler "
            f"({sampler_bytes(arch, first[0]) / GIB:.2f} GiB) leaves too little for the KV cache; {cost}"
        )
    rest = f", the rest {defaults}" if len(asked) == 1 else ""
    why = ", ".join(asked) + " as asked" + rest if asked else defaults
    return f"{head}: {why}; {cost}"
