"""A stack rendered offline by `plan --render` (DESIGN.md contract), and what the tests read from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.tools.cli import main

# API groups the core schemas (kubernetes_validate) cover; the rest are custom resources, checked against CRDs.
CORE_GROUPS = ("v1", "apps/v1", "policy/v1", "batch/v1", "networking.k8s.io/v1", "autoscaling/v2",
               "rbac.authorization.k8s.io/v1")  # fmt: skip


def render_to(stack: str, out: Path) -> Path:
    if main(["plan", "--stack", stack, "--format", "json", "--render", str(out)]) != 0:
        raise AssertionError(f"plan --stack {stack} --render failed")
    return out


def manifests(out: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((out / "manifests.yaml").read_text()) if d]


def custom_resources(out: Path) -> list[dict[str, Any]]:
    return [o for o in manifests(out) if o["apiVersion"] not in CORE_GROUPS]


def helm_releases(out: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted((out / "helm").glob("*.yaml"))}
