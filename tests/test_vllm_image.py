"""`images.vllm`: the stack's own model-server image, built with pulumi-docker and run by digest."""

from __future__ import annotations

from typing import Any

import pytest

from components.images import VLLM_IMAGE
from components.spec import SpecError, load_cluster_spec
from components.tools.render import PUSHED_DIGEST, SECRET, RenderError, run_program
from testbed.stacks import stack_config

REPOSITORY = "registry.example.com/llm/vllm-openai"
CREDENTIALS = {"llm-cluster:registryUsername": "ci-bot", "llm-cluster:registryPassword": "hunter2-registry-password"}


def with_image(extras: list[str]) -> dict[str, Any]:
    config = stack_config("dev")
    config["images"] = {"vllm": {"repository": REPOSITORY, "extras": extras}}
    return dict(config)


def test_the_image_is_built_pushed_and_run_by_digest() -> None:
    run = run_program(with_image(["flashinfer-python==0.2.5"]), secrets=CREDENTIALS)
    (image,) = [r for r in run.cloud_resources if r["type"] == "docker:index/image:Image"]
    inputs = image["inputs"]
    assert inputs["imageName"].startswith(f"{REPOSITORY}:{VLLM_IMAGE.rpartition(':')[2]}-")
    build = inputs["build"]
    assert build["context"].endswith("images/vllm") and build["dockerfile"].endswith("images/vllm/Dockerfile")
    assert build["args"] == {"BASE_IMAGE": VLLM_IMAGE, "EXTRA_PIP_PACKAGES": "flashinfer-python==0.2.5"}
    assert build["platform"] == "linux/amd64"
    # The registry block carries the password, so the whole block is a secret; its server comes from the repository.
    assert inputs["registry"] == {"password": SECRET, "server": SECRET, "username": SECRET}
    raw = run.of_type("docker:index/image:Image")[0].inputs["registry"]["value"]
    assert (raw["server"], raw["username"]) == ("registry.example.com", "ci-bot")
    servers = [o for o in run.manifests if o["kind"] == "Deployment" and o["metadata"]["name"] != "llm-gateway"]
    for deployment in servers:
        image_ref = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image_ref == f"{REPOSITORY}@sha256:{PUSHED_DIGEST}"
    assert "hunter2-registry-password" not in str(run.manifests) + str(run.cloud_resources)


def test_same_extras_same_tag_other_extras_other_tag() -> None:
    def tag(extras: list[str]) -> str:
        run = run_program(with_image(extras), secrets=CREDENTIALS)
        return str(run.of_type("docker:index/image:Image")[0].inputs["imageName"])

    assert tag(["a==1", "b==2"]) == tag(["b==2", "a==1"]) != tag(["a==1"])


def test_pushing_without_credentials_is_refused() -> None:
    with pytest.raises(RenderError, match=r"images\.vllm: pushing needs llm-cluster:registryUsername"):
        run_program(with_image([]))


def test_bad_image_input_names_the_field() -> None:
    config = with_image(["not a requirement"])
    config["images"]["vllm"]["repository"] = "no-registry"
    with pytest.raises(SpecError) as caught:
        load_cluster_spec(config)
    assert any(line.startswith("images.vllm.repository: 'no-registry' must match") for line in caught.value.errors)
    assert any(line.startswith("images.vllm.extras[0]: 'not a requirement' must match") for line in caught.value.errors)
