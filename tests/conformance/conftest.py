"""Each stack rendered once (`plan --render`) for both conformance modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.tools.cli import main
from testbed.stacks import STACKS

# API groups the core schemas (kubernetes_validate in tests/test_render.py) cover; the rest are custom resources.
CORE_GROUPS = ("v1", "apps/v1", "policy/v1", "batch/v1", "networking.k8s.io/v1", "autoscaling/v2",
               "rbac.authorization.k8s.io/v1")  # fmt: skip


@pytest.fixture(scope="session", params=STACKS)
def render(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp(f"conformance-{request.param}")
    assert main(["plan", "--stack", request.param, "--format", "json", "--render", str(out)]) == 0
    return str(request.param), out


def manifests(out: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((out / "manifests.yaml").read_text()) if d]


def custom_resources(out: Path) -> list[dict[str, Any]]:
    return [o for o in manifests(out) if o["apiVersion"] not in CORE_GROUPS]


def helm_releases(out: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted((out / "helm").glob("*.yaml"))}
