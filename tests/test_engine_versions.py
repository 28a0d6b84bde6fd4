"""The vLLM version table (components/planning/engine_versions.py): a stack and a model choose their release, an
unsupported one is refused naming the field and the supported ones, every row cites files its release ships, and
moving a stack between releases shows in the capacity diff what changes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.catalog import load_gpu_catalog, load_model_catalog
from components.planning.engine_versions import DEFAULT_VLLM_VERSION, ENGINE_VERSIONS, engine_version
from components.planning.sizing import size_model
from components.planning.types import ClusterPlan, GpuShape, SizingError, SizingRequest
from components.spec import SpecError, load_cluster_spec
from components.stacks import plan_for
from components.tools.capacity_diff import diff_data, format_diff
from testbed.stacks import one_pool_spec, stack_config
from tests.engine.engine_run import vllm_package

QWEN = {"name": "qwen", "model": "Qwen/Qwen3-32B", "pool": "h100", "revision": "0" * 40}


def plan_of(config: dict[str, Any]) -> ClusterPlan:
    return plan_for(load_cluster_spec(config))


def under(stack: str, version: str) -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(stack_config(stack))
    config["vllmVersion"] = version
    return config


def test_a_new_stack_gets_the_current_release_and_each_model_its_image() -> None:
    plan = plan_of(one_pool_spec([QWEN]))
    assert plan.vllm_version == DEFAULT_VLLM_VERSION == "0.33.0"
    assert [(m.vllm_version, m.image) for m in plan.models] == [("0.33.0", "vllm/vllm-openai:v0.33.0")]


def test_a_model_may_run_another_release_than_its_stack() -> None:
    config = one_pool_spec([QWEN, {**QWEN, "name": "old", "vllmVersion": "0.13.0"}])
    models = {m.name: m for m in plan_of(config).models}
    assert (models["qwen"].image, models["old"].image) == ("vllm/vllm-openai:v0.33.0", "vllm/vllm-openai:v0.13.0")


@pytest.mark.parametrize(
    ("where", "field"),
    [(lambda c: c.update(vllmVersion="0.14.0"), "vllmVersion"),
     (lambda c: c["models"][0].update(vllmVersion="0.14.0"), "models[0].vllmVersion")],
)  # fmt: skip
def test_an_unsupported_release_is_refused_with_the_supported_ones(where: Any, field: str) -> None:
    config = one_pool_spec([QWEN])
    where(config)
    with pytest.raises(SizingError) as caught:
        plan_of(config)
    assert caught.value.errors == [
        f"{field}: vLLM '0.14.0' is not supported; use one of 0.13.0, 0.33.0 (components/planning/engine_versions.py "
        "lists what each sets)"
    ]


def test_a_model_cannot_leave_the_release_the_custom_image_is_built_from() -> None:
    config = one_pool_spec([{**QWEN, "vllmVersion": "0.13.0"}])
    config["images"] = {"vllm": {"repository": "registry.example.com/llm/vllm"}}
    with pytest.raises(SpecError) as caught:
        plan_of(config)
    assert caught.value.errors[0].startswith("models[0].vllmVersion: 0.13.0 differs from the stack's 0.33.0")


def test_engine_version_names_the_field_it_was_given() -> None:
    with pytest.raises(SpecError, match=r"^--vllm-version: vLLM '1.0' is not supported"):
        engine_version("1.0", "--vllm-version")


@pytest.mark.parametrize("version", ENGINE_VERSIONS)
def test_every_row_cites_files_its_release_ships(version: str) -> None:
    """Each cited `vllm/...` path exists in the release's installed package; docker/ is the repository's."""
    row = ENGINE_VERSIONS[version]
    package = vllm_package(version)
    assert set(row.sources) >= {"image", "batch_tiers", "batch_invariant", "metrics", "cudagraph_memory_in_budget"}
    for fact, source in row.sources.items():
        for path in (w.rstrip(",") for w in source.split() if w.startswith("vllm/") and w.rstrip(",").endswith(".py")):
            assert (package.parent / path).is_file(), f"{version} {fact}: {path} is not in the installed vLLM"


def test_batch_defaults_follow_each_releases_tiers() -> None:
    gpus = load_gpu_catalog()
    b200, h100, a100 = gpus["B200-SXM-180GB"], gpus["H100-SXM-80GB"], gpus["A100-SXM-80GB"]
    for gpu, old, new in ((b200, (1024, 8192), (1024, 16384)), (h100, (1024, 8192), (1024, 8192)),
                          (a100, (256, 2048), (256, 2048))):  # fmt: skip
        shape = GpuShape.of(gpu, 8)
        facts = (shape.memory_gib, shape.gpu_name, shape.compute_capability)
        assert ENGINE_VERSIONS["0.13.0"].batch_defaults(*facts) == old
        assert ENGINE_VERSIONS["0.33.0"].batch_defaults(*facts) == new


def test_the_yarn_override_follows_the_release() -> None:
    arch = load_model_catalog()["Qwen/Qwen3-32B"]
    shape = GpuShape.of(load_gpu_catalog()["H100-SXM-80GB"], 8)
    overrides = {}
    for version in ENGINE_VERSIONS:
        req = SizingRequest(arch=arch, max_model_len=131072, rope_factor=4.0, vllm_version=version)
        args = size_model(req, shape, 1).vllm_args
        overrides[version] = [(w, args[i + 1]) for i, w in enumerate(args) if w.startswith("--hf-overrides")]
    ((flag, value),) = overrides["0.13.0"]
    assert flag == "--hf-overrides" and '"max_position_embeddings"' not in value
    rope, longer = overrides["0.33.0"]
    assert rope[0] == "--hf-overrides.rope_parameters" and '"rope_type":"yarn"' in rope[1]
    assert longer == ("--hf-overrides.max_position_embeddings", "131072")


def test_moving_staging_to_0_33_shows_what_changes() -> None:
    before, after = plan_of(stack_config("staging")), plan_of(under("staging", "0.33.0"))
    assert (before.vllm_version, after.vllm_version) == ("0.13.0", "0.33.0")
    diff = diff_data(before, after, "staging", "main")
    (model,) = diff["models"]
    assert (model["before"]["vllm"], model["after"]["vllm"]) == ("0.13.0", "0.33.0")
    (change,) = diff["engine"]
    assert change["image"] == {"before": "vllm/vllm-openai:v0.13.0", "after": "vllm/vllm-openai:v0.33.0"}
    assert change["kv_cache_tokens"]["after"] == after.models[0].kv_cache_tokens
    text = format_diff(diff, markdown=True)
    assert "### vLLM release changes" in text and "vLLM 0.13.0 → 0.33.0" in text


def test_moving_prod_to_0_13_lists_the_yarn_argument_it_changes() -> None:
    before, after = plan_of(stack_config("prod")), plan_of(under("prod", "0.13.0"))
    changes = {c["name"]: c for c in diff_data(before, after, "prod", "main")["engine"]}
    assert set(changes) == {m.name for m in after.models}
    yarn = changes["qwen2-5-32b-instruct"]
    assert "--hf-overrides.max_position_embeddings 131072" in yarn["args_removed"]
    assert any(a.startswith("--hf-overrides {") for a in yarn["args_added"])
    assert not any(c["metrics_removed"] or c["metrics_added"] for c in changes.values())
