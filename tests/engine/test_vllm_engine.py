"""Every vLLM container of every stack, judged by the real vLLM package of the release that container runs
(components/planning/engine_versions.py), plus prod rendered under every other supported release (the matrix).

vLLM's own `vllm serve` parser and validators, `from_cli_args`, its VLLM_* variable parsers and
`create_engine_config` run over the rendered args and env, with the model's real config files and a stand-in
for the pool's GPU. A refusal fails with vLLM's own message; an accepted config must match the plan.
"""

from __future__ import annotations

import copy
import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.catalog import load_gpu_catalog, load_model_catalog
from components.labels import POOL_LABEL
from components.planning.engine_versions import ENGINE_VERSIONS
from components.planning.memory import UNQUANTIZED
from components.planning.sizing import size_model
from components.planning.types import GpuShape, ModelPlan, SizingRequest
from components.spec import ClusterSpec, load_cluster_spec
from components.stacks import load_stack, plan_for
from components.tools.render import ProgramRun, run_program
from testbed.stacks import STACKS, rendered, stack_config
from tests.engine.engine_run import VllmContainer, container_env, containers_of, memory_limit, run_engine

TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


@dataclass(frozen=True)
class Verdicts:
    owners: dict[str, ModelPlan]  # container name -> the model it serves
    answers: dict[str, dict[str, Any]]  # container name -> vLLM's answer
    deterministic: set[str]  # models the stack asks to be deterministic


# Each stack as it is, then prod moved to every release it does not already run (`prod@<version>`).
MATRIX = [*STACKS, *(f"prod@{v}" for v in ENGINE_VERSIONS if v != plan_for(load_stack("prod")).vllm_version)]


@functools.cache
def stack_under(case: str) -> tuple[ClusterSpec, ProgramRun]:
    """`stack` as its file says, or `stack@version` with the stack's vllmVersion set to that release."""
    stack, _, version = case.partition("@")
    if not version:
        return load_stack(stack), rendered(stack)
    config = copy.deepcopy(stack_config(stack))
    config["vllmVersion"] = version
    return load_cluster_spec(config), run_program(config)


@pytest.fixture(scope="module", params=MATRIX)
def verdicts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Verdicts:
    case = str(request.param)
    spec, program = stack_under(case)
    plan = plan_for(spec)
    gpus = load_gpu_catalog()
    pools = {p.name: p for p in plan.pools}
    models = {m.name: m for m in plan.models}
    containers, owners = [], {}
    for name, pod, container in containers_of(program.manifests):
        pool = pools[pod["nodeSelector"][POOL_LABEL]]
        gpu = gpus[pool.gpu]
        nvlink = pool.nvlink_domain > 1
        containers.append(
            VllmContainer(
                name,
                container["args"],
                container_env(container),
                gpu,
                pool.gpus_per_node,
                nvlink,
                memory_limit(container),
            )
        )
        owners[name] = models[name.split("/")[0]]
    assert containers, f"{case}: no vLLM container rendered"
    deterministic = {m.name for m in spec.models if m.deterministic}
    answers: dict[str, dict[str, Any]] = {}
    for version in sorted({owners[c.name].vllm_version for c in containers}):  # each on its release's package
        mine = [c for c in containers if owners[c.name].vllm_version == version]
        answers |= run_engine(mine, tmp_path_factory.mktemp(f"vllm-{case}-{version}"), version)
    weaker = {name: a.get("config") or a["unchecked"] for name, a in answers.items() if a.get("config") != "real"}
    if weaker:  # said in every run's summary, so nobody mistakes these verdicts for ones on the real file
        warnings.warn(EngineCoverageWarning(f"{case}: not on the model's real config.json: {weaker}"), stacklevel=1)
    return Verdicts(owners, answers, deterministic)


class EngineCoverageWarning(UserWarning):
    """A container judged on a synthesized config, or not judged at all, for want of the real config.json."""


def test_only_unverified_catalog_models_lack_a_real_config(verdicts: Verdicts) -> None:
    """A synthesized or unchecked verdict is allowed only where the catalog says the real file was not found."""
    catalog = load_model_catalog()
    wrong = [
        name
        for name, answer in verdicts.answers.items()
        if answer.get("config") != "real" and catalog[verdicts.owners[name].model].config_verified
    ]
    assert not wrong, f"real config.json expected for {wrong}"


def test_vllm_accepts_every_container(verdicts: Verdicts) -> None:
    owners, answers = verdicts.owners, verdicts.answers
    refused = {name: answers[name]["error"] for name in owners if "error" in answers[name]}
    assert not refused, "vLLM refuses:\n" + "\n".join(f"{name}: {error}" for name, error in refused.items())


def expected_facts(model: ModelPlan) -> dict[str, Any]:
    return {
        "max_model_len": model.max_model_len,
        "kv_cache_dtype": model.kv_cache_dtype,
        "runner": "generate" if model.task == "generate" else "pooling",
        "tensor_parallel_size": model.tp,
        "pipeline_parallel_size": model.pp,
        "nnodes": model.nodes_per_replica,
        "max_num_seqs": model.max_num_seqs,
        "max_num_batched_tokens": model.max_num_batched_tokens,
        "rope_type": model.rope_type,
        "quantized": model.weight_dtype not in UNQUANTIZED,
    }


def engine_facts(answer: dict[str, Any]) -> dict[str, Any]:
    facts = {key: answer[key] for key in ("max_model_len", "kv_cache_dtype", "runner", "tensor_parallel_size",
                                          "pipeline_parallel_size", "nnodes", "max_num_seqs",
                                          "max_num_batched_tokens")}  # fmt: skip
    if facts["kv_cache_dtype"] == "auto":  # the KV cache takes the model's dtype
        facts["kv_cache_dtype"] = TORCH_DTYPES.get(answer["dtype"], answer["dtype"])
    facts["rope_type"] = answer["rope_type"]
    facts["quantized"] = answer["quantization"] is not None
    return facts


def test_engine_config_matches_the_plan(verdicts: Verdicts) -> None:
    owners, answers = verdicts.owners, verdicts.answers
    mismatches = []
    for name, model in owners.items():
        answer = answers[name]
        if "error" in answer or "unchecked" in answer:
            continue  # reported by test_vllm_accepts_every_container and the coverage warning
        want, got = expected_facts(model), engine_facts(answer)
        mismatches += [f"{name}.{key}: plan {want[key]!r}, vLLM {got[key]!r}" for key in want if want[key] != got[key]]
        if "--quantization" in model.vllm_args:
            asked = model.vllm_args[model.vllm_args.index("--quantization") + 1]
            if answer["quantization"] != asked:
                mismatches.append(f"{name}.quantization: plan {asked}, vLLM {answer['quantization']}")
    assert not mismatches, "\n".join(mismatches)


def test_vllm_takes_each_shared_engines_fraction_of_the_whole_gpu(verdicts: Verdicts) -> None:
    """A model on a slice of a shared GPU (components/planning/sharing.py): vLLM accepts the plan's fraction, which
    it applies to the whole GPU's memory."""
    for name, model in verdicts.owners.items():
        answer = verdicts.answers[name]
        if model.sharing is None or "error" in answer or "unchecked" in answer:
            continue
        assert answer["gpu_memory_utilization"] == model.sharing.gpu_memory_utilization, name


def test_batch_invariance_follows_vllms_own_capability_rule(verdicts: Verdicts) -> None:
    """VLLM_BATCH_INVARIANT is set exactly for deterministic models on GPUs vLLM has invariant kernels for."""
    wrong = []
    for name, model in verdicts.owners.items():
        answer = verdicts.answers[name]
        if "error" in answer or "unchecked" in answer or model.name not in verdicts.deterministic:
            continue
        supported = answer["batch_invariant_kernels"] != "none"
        enabled = model.env.get("VLLM_BATCH_INVARIANT") == "1"
        if supported != enabled:
            wrong.append(f"{name}: vLLM kernels {answer['batch_invariant_kernels']}, plan sets it {enabled}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("version", ENGINE_VERSIONS)
def test_vllm_applies_yarn_only_in_the_form_the_plan_renders(version: str, tmp_path: Path) -> None:
    """Both releases apply a dict override after turning rope_scaling into rope_parameters: the legacy form is
    refused at 131072 (as measured on main) and the plan's form for the release is accepted with rope type yarn.
    0.33 no longer scales max_position_embeddings by the factor, so it refuses the form planned for 0.13."""
    gpu = load_gpu_catalog()["H100-SXM-80GB"]
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    base = ["Qwen/Qwen3-32B", "--max-model-len", "131072", "--tensor-parallel-size", "2"]
    legacy = [*base, "--hf-overrides", json.dumps({"rope_scaling": yarn})]
    arch = load_model_catalog()["Qwen/Qwen3-32B"]
    planned = {
        v: size_model(
            SizingRequest(arch=arch, max_model_len=131072, rope_factor=4.0, vllm_version=v), GpuShape.of(gpu, 8), 1
        ).vllm_args
        for v in ENGINE_VERSIONS
    }
    containers = [
        VllmContainer("legacy", legacy, {}, gpu, 8, True, 64 * 2**30),
        *(VllmContainer(f"planned-{v}", args, {}, gpu, 8, True, 64 * 2**30) for v, args in planned.items()),
    ]
    answers = run_engine(containers, tmp_path, version)
    assert "greater than the derived max_model_len" in answers["legacy"]["error"]
    mine = answers[f"planned-{version}"]
    assert "error" not in mine, mine["error"]
    assert (mine["max_model_len"], mine["rope_type"]) == (131072, "yarn")
    if version == "0.33.0":  # the 0.13 form leaves the derived length at 40960 there
        assert "greater than the derived max_model_len" in answers["planned-0.13.0"]["error"]


@pytest.mark.parametrize("verdicts", [c for c in MATRIX if c.split("@")[0] == "prod"], indirect=True)
def test_prods_yarn_model_and_embedders_start_at_the_planned_lengths_on_their_real_configs(verdicts: Verdicts) -> None:
    """The three refusals measured on main, and the embedders, judged on the real files: the lengths the plan shows."""
    expected = {
        "qwen2-5-32b-instruct/single": (131072, "yarn"),
        "multilingual-e5-large/single": (512, "none"),
        "bge-m3/single": (8192, "none"),
        "bge-reranker-v2-m3/single": (8192, "none"),
    }
    for name, (length, rope) in expected.items():
        answer = verdicts.answers[name]
        assert answer.get("config") == "real", f"{name}: {answer}"
        assert (
            (answer["max_model_len"], answer["rope_type"])
            == (length, rope)
            == (
                verdicts.owners[name].max_model_len,
                verdicts.owners[name].rope_type,
            )
        )
