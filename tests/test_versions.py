"""Each pinned version is written once and everything else agrees with it: the plan's vLLM version, the images,
the custom image's Dockerfile and the packages the tests run for real."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from components.images import LITELLM_IMAGE, LITELLM_VERSION, VLLM_IMAGE, VLLM_ROUTER_IMAGE, VLLM_ROUTER_VERSION
from components.planning.vllm import VLLM_VERSION
from components.stacks import PROJECT_DIR, load_stack, plan_for


def pins(requirements: Path) -> dict[str, str]:
    """name -> version of every `name==version` line (extras dropped)."""
    found = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s#;]+)", line)
        if match:
            found[match[1].lower().replace("_", "-")] = match[2]
    return found


def test_the_vllm_image_the_package_and_the_dockerfile_follow_the_plans_version() -> None:
    assert f"vllm/vllm-openai:v{VLLM_VERSION}" == VLLM_IMAGE
    assert pins(PROJECT_DIR / "requirements-vllm.txt")["vllm"] == VLLM_VERSION
    dockerfile = (PROJECT_DIR / "images" / "vllm" / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={VLLM_IMAGE}\n" in dockerfile
    assert plan_for(load_stack("dev")).vllm_version == VLLM_VERSION


def test_the_gateway_images_are_the_releases_the_live_tests_run() -> None:
    dev = pins(PROJECT_DIR / "requirements-dev.txt")
    assert dev["litellm"] == LITELLM_VERSION and LITELLM_IMAGE.endswith(f":v{LITELLM_VERSION}")
    assert dev["vllm-router"] == VLLM_ROUTER_VERSION and VLLM_ROUTER_IMAGE.endswith(f":v{VLLM_ROUTER_VERSION}")


def test_no_other_file_repeats_a_pinned_version() -> None:
    """A second literal copy would drift: only the files the tests above check may spell these versions."""
    allowed = {"requirements-vllm.txt", "requirements-dev.txt", "images/vllm/Dockerfile", "README.md"}
    patterns = {
        f"vllm-openai:v{VLLM_VERSION}",
        f"vllm=={VLLM_VERSION}",
        f"vllm-router:v{VLLM_ROUTER_VERSION}",
        f"vllm-router=={VLLM_ROUTER_VERSION}",
    }
    tracked = subprocess.run(["git", "ls-files"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    offenders = []
    for relative in tracked.stdout.splitlines():
        if relative in allowed or relative.startswith(("tests/", "bench/results/", "docs/")):
            continue
        text = (PROJECT_DIR / relative).read_text(errors="ignore")
        offenders += [f"{relative}: {p}" for p in patterns if p in text]
    assert not offenders
