"""The one stack loader and the one way to a plan, shared by the Pulumi program, the tools, the benchmarks
and the tests: stack file -> `llm-cluster:cluster` -> ClusterSpec -> ClusterPlan."""

from __future__ import annotations

from pathlib import Path

import yaml

from components.catalog import load_gpu_catalog, load_model_catalog
from components.planning.cluster import plan_cluster
from components.planning.types import ClusterPlan
from components.spec import ClusterSpec, load_cluster_spec

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACKS_DIR = PROJECT_DIR / "stacks"
CONFIG_KEY = "llm-cluster:cluster"


class StackFileError(ValueError):
    """A stack file that cannot be read; the message names the file and the fix."""


def stack_names() -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in STACKS_DIR.glob("Pulumi.*.yaml"))


def stack_file(stack: str) -> Path:
    return STACKS_DIR / f"Pulumi.{stack}.yaml"


def stack_document(path: Path) -> dict[str, object]:
    if not path.exists():
        raise StackFileError(f"{path}: no such stack file; stacks: {', '.join(stack_names())}")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise StackFileError(f"{path}: expected a mapping with a `config:` key")
    return document


def cluster_config(document: dict[str, object], where: str) -> object:
    """The `llm-cluster:cluster` object of a stack document, exactly as Pulumi passes it to the program."""
    config = document.get("config") or {}
    if not isinstance(config, dict) or CONFIG_KEY not in config:
        raise StackFileError(f"{where}: no `{CONFIG_KEY}` key under `config:`; put the stack spec there")
    return config[CONFIG_KEY]


def read_stack_config(path: Path) -> object:
    return cluster_config(stack_document(path), str(path))


def secret_keys(path: Path) -> list[str]:
    """Config keys the stack holds as ciphertext (`secure:`), which only its secrets provider opens."""
    config = stack_document(path).get("config") or {}
    if not isinstance(config, dict):
        return []
    return [key for key, value in config.items() if isinstance(value, dict) and "secure" in value]


def load_stack(stack: str) -> ClusterSpec:
    return load_cluster_spec(read_stack_config(stack_file(stack)))


def plan_for(spec: ClusterSpec) -> ClusterPlan:
    """The plan of a spec, with the shipped catalogs; configPath entries resolve against the project."""
    return plan_cluster(spec, load_gpu_catalog(), load_model_catalog(), PROJECT_DIR)
