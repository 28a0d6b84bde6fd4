"""The vLLM arguments and environment of a sized model."""

from __future__ import annotations

import json
from typing import Any

from components.catalog import ModelArch
from components.planning.memory import (
    CUDA_GRAPH_RESERVE_GIB,
)
from components.planning.parallelism import (
    Candidate,
    Resolved,
)
from components.planning.rerankers import pooling_flags, score_overrides
from components.planning.types import (
    GpuShape,
    SizingError,
    SizingRequest,
)
from components.planning.vllm import (
    COMPONENT_FLAGS,
    PLAN_ENV,
    PLAN_FLAGS,
    vllm_flag,
)


def check_extra_args(req: SizingRequest) -> None:
    errors = []
    for arg in req.extra_args:
        flag = vllm_flag(arg)
        if arg.startswith("-") and any(c.isspace() for c in arg.split("=", 1)[0].strip()):
            errors.append(
                f"{req.field}.extraArgs: {arg!r} holds a flag and its value in one item; vLLM would refuse it as "
                f"one unknown flag: write them as two items, {arg.split()[0]!r} then {' '.join(arg.split()[1:])!r}"
            )
            flag = vllm_flag(arg.split()[0])
        if flag in PLAN_FLAGS:
            errors.append(
                f"{req.field}.extraArgs: {flag} contradicts the plan, which sets it; set {PLAN_FLAGS[flag]} instead"
            )
        elif flag in COMPONENT_FLAGS:
            errors.append(f"{req.field}.extraArgs: {flag} is set by the plan; remove it ({COMPONENT_FLAGS[flag]})")
    for key, _ in req.env:
        if key in PLAN_ENV:
            errors.append(f"{req.field}.env.{key}: set by the plan from the GPU and the spec; remove it")
    for key in req.secret_env:
        if key in PLAN_ENV:
            token = " (the Hugging Face token comes from the secret llm-cluster:hfToken)" if key == "HF_TOKEN" else ""
            errors.append(f"{req.field}.secretEnv.{key}: set by the plan; remove it{token}")
    if errors:
        raise SizingError(errors)


def yarn_overrides(a: ModelArch, req: SizingRequest, r: Resolved) -> dict[str, Any]:
    """YaRN as the model's vLLM release applies it (EngineVersion): in 0.13 and 0.33 a dict override replaces the
    config attribute after vLLM has already turned `rope_scaling` into `rope_parameters`
    (ModelConfig._apply_dict_overrides, patch_rope_parameters), so the override must be `rope_parameters` itself,
    with the model's rope_theta, which it replaces too. 0.33 also takes a YaRN config's max_position_embeddings as
    the extended length (_get_and_verify_max_len), so it is raised to original x factor."""
    engine = req.engine
    rope: dict[str, Any] = {
        "rope_type": "yarn",
        "factor": req.rope_factor,
        "original_max_position_embeddings": r.rope_original,
    }
    if engine.rope_theta_in_override:
        rope["rope_theta"] = a.rope_theta
    overrides: dict[str, Any] = {engine.rope_override_key: rope}
    if engine.yarn_scaled_max_position and r.rope_original and req.rope_factor:
        overrides["max_position_embeddings"] = int(r.rope_original * req.rope_factor)
    return overrides


def serving_config(
    req: SizingRequest, r: Resolved, shape: GpuShape, c: Candidate
) -> tuple[list[str], dict[str, str], list[str]]:
    """vLLM arguments (for `vllm serve`, model first), environment and warnings."""
    env, warnings = engine_env(req, shape)
    return vllm_args(req, r, shape, c), env, warnings + layout_warnings(req, r, shape, c)


def vllm_args(req: SizingRequest, r: Resolved, shape: GpuShape, c: Candidate) -> list[str]:
    a = r.arch
    args = [a.id]
    if req.served_name:
        args += ["--served-model-name", req.served_name]
    if req.revision:
        args += ["--revision", req.revision]
    args += [
        "--tensor-parallel-size",
        str(c.tp),
        "--pipeline-parallel-size",
        str(c.pp),
        "--max-model-len",
        str(r.max_model_len),
        "--gpu-memory-utilization",
        f"{req.gpu_memory_utilization:g}",
    ]
    args += list(r.quant_flags)
    if r.kv_dtype != "auto":
        args += ["--kv-cache-dtype", r.kv_dtype]
    # Always passed: vLLM's own defaults depend on the device it sees, the plan's on the GPU it sized for.
    args += ["--max-num-seqs", str(c.max_num_seqs), "--max-num-batched-tokens", str(c.batched_tokens)]
    engine = req.engine
    # One override for YaRN and a reranker's classifier: vLLM takes one --hf-overrides value (or merges dotted keys).
    overrides = {**(yarn_overrides(a, req, r) if r.rope_original else {}), **score_overrides(a, engine, req.field)}
    if overrides and engine.hf_overrides_dotted:  # one `--hf-overrides.<key> <json>` per key, each word short
        for key, value in overrides.items():
            args += [f"--hf-overrides.{key}", json.dumps(value, separators=(",", ":"))]
    elif overrides:
        args += ["--hf-overrides", json.dumps(overrides, separators=(",", ":"))]
    if a.task != "generate":  # a text-generation architecture pools through vLLM's embedding or classify adapter
        args += pooling_flags(a, engine, req.field)
    elif a.pooling_type:  # its sentence-transformers files would make vLLM pick the pooling runner
        args += [engine.pooling_runner_flags[0], "generate"]
    if req.trust_remote_code if req.trust_remote_code is not None else a.trust_remote_code:
        args += ["--trust-remote-code"]
    args += list(a.vllm_args)
    prefix_on, prefix_off = engine.prefix_caching_flags
    if req.deterministic:
        args += ["--seed", str(req.seed), prefix_off]
    elif req.prefix_caching is True:
        args += [prefix_on]
    elif req.prefix_caching is False:
        args += [prefix_off]
    if req.tool_call_parser:
        args += ["--enable-auto-tool-choice", "--tool-call-parser", req.tool_call_parser]
    return args + list(req.extra_args)


def engine_env(req: SizingRequest, shape: GpuShape) -> tuple[dict[str, str], list[str]]:
    env: dict[str, str] = {}
    warnings: list[str] = []
    if not shape.peer_to_peer:
        env["NCCL_P2P_DISABLE"] = "1"
    if req.deterministic:
        if req.engine.invariant_kernels(shape.compute_capability) != "none":
            env[req.engine.batch_invariant_env] = "1"
        else:
            warnings.append(
                f"deterministic: {shape.gpu_id} (compute {shape.compute_capability}) has no batch-invariant "
                "kernels in vLLM " + req.vllm_version + "; answers can differ across replicas and under load"
            )
    env.update(dict(req.env))
    if req.revision is None:
        warnings.append("no revision pin: the weights follow the repository's main branch; set revision to a commit")
    return env, warnings


def layout_warnings(req: SizingRequest, r: Resolved, shape: GpuShape, c: Candidate) -> list[str]:
    a = r.arch
    warnings = []
    if c.tp > shape.nvlink_domain:
        warnings.append(
            f"TP {c.tp} spans {c.tp // shape.nvlink_domain} NVLink domains of {shape.gpu_id}: every all-reduce "
            "crosses PCIe" + (" host-staged (13x slower measured at 16 MiB)" if not shape.peer_to_peer else "")
        )
    if a.attention not in ("mla", "encoder") and c.tp > a.kv_heads:
        warnings.append(f"TP {c.tp} > {a.kv_heads} KV heads: KV heads are replicated, wasting KV memory")
    if (c.max_num_seqs, c.batched_tokens) != r.rungs[0][:2]:
        warnings.append(
            f"max_num_seqs {c.max_num_seqs} / max_num_batched_tokens {c.batched_tokens} instead of "
            f"{r.rungs[0][0]} / {r.rungs[0][1]}: the sampler of the larger batch would not leave room for the KV "
            "cache; set maxNumSeqs to choose"
        )
    outside = shape.memory_gib * (1 - req.gpu_memory_utilization)
    # Only where vLLM captures the graphs outside its budget (EngineVersion.cudagraph_memory_in_budget).
    if not req.engine.cudagraph_memory_in_budget and outside < CUDA_GRAPH_RESERVE_GIB:
        warnings.append(
            f"gpu_memory_utilization {req.gpu_memory_utilization:g} leaves {outside:.2f} GiB outside vLLM's budget; "
            f"CUDA graphs can take up to {CUDA_GRAPH_RESERVE_GIB} GiB there"
        )
    if r.weight_dtype == "fp8" and not shape.native_fp8:
        warnings.append(
            f"{shape.gpu_id} has no FP8 tensor cores: FP8 weights run weight-only (Marlin), saving memory, not compute"
        )
    if a.params_estimated:
        warnings.append(
            f"parameter count estimated from the config ({a.params_b:g}B); pass paramsB for the published one"
        )
    return warnings
