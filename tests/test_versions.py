"""Each pinned version is written once and everything else agrees with it: the plan's vLLM version, the images,
the custom image's Dockerfile and the packages the tests run for real."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from components.images import LITELLM_IMAGE, LITELLM_VERSION, VLLM_IMAGE, VLLM_ROUTER_IMAGE, VLLM_ROUTER_VERSION
from components.planning.engine_versions import DEFAULT_VLLM_VERSION, ENGINE_VERSIONS
from components.stacks import PROJECT_DIR, load_stack, plan_for


def pins(requirements: Path) -> dict[str, str]:
    """name -> version of every `name==version` line (extras dropped)."""
    found = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s#;]+)", line)
        if match:
            found[match[1].lower().replace("_", "-")] = match[2]
    return found


def test_each_vllm_release_has_its_image_and_its_pinned_package() -> None:
    """Every row of the version table: the upstream image of that tag, a requirements file pinning that release
    for the venv tests/engine judges it with, and that venv ignored by git."""
    ignored = (PROJECT_DIR / ".gitignore").read_text().split()
    for version, row in ENGINE_VERSIONS.items():
        assert row.image == f"vllm/vllm-openai:v{version}"
        assert pins(PROJECT_DIR / row.requirements)["vllm"] == version
        assert f"{row.venv}/" in ignored


def test_new_stacks_get_the_default_release_and_staging_keeps_0_13() -> None:
    assert ENGINE_VERSIONS[DEFAULT_VLLM_VERSION].image == VLLM_IMAGE
    dockerfile = (PROJECT_DIR / "images" / "vllm" / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={VLLM_IMAGE}\n" in dockerfile
    assert plan_for(load_stack("dev")).vllm_version == DEFAULT_VLLM_VERSION
    staging = plan_for(load_stack("staging"))
    assert staging.vllm_version == "0.13.0"
    assert {m.image for m in staging.models} == {"vllm/vllm-openai:v0.13.0"}


def test_the_gateway_images_are_the_releases_the_live_tests_run() -> None:
    dev = pins(PROJECT_DIR / "requirements-dev.txt")
    assert dev["litellm"] == LITELLM_VERSION and LITELLM_IMAGE.endswith(f":v{LITELLM_VERSION}")
    assert dev["vllm-router"] == VLLM_ROUTER_VERSION and VLLM_ROUTER_IMAGE.endswith(f":v{VLLM_ROUTER_VERSION}")


def test_no_other_file_repeats_a_pinned_version() -> None:
    """A second literal copy would drift: only the files the tests above check may spell these versions."""
    allowed = {
        "components/planning/engine_versions.py",
        *(row.requirements for row in ENGINE_VERSIONS.values()),
        "requirements-dev.txt",
        "images/vllm/Dockerfile",
        "README.md",
    }
    patterns = {
        *(f"vllm-openai:v{v}" for v in ENGINE_VERSIONS),
        *(f"vllm=={v}" for v in ENGINE_VERSIONS),
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
