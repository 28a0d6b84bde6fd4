"""The one stack loader and the one way to a plan, shared by the Pulumi program, the tools, the benchmarks
and the tests: stack file -> `llm-cluster:cluster` -> ClusterSpec -> ClusterPlan."""

from __future__ import annotations

from pathlib import Path

import yaml

from components.catalog import load_gpu_catalog, load_model_catalog
from components.planning.cluster import plan_cluster
from components.planning.types import ClusterPlan
from components.secret_config import gated_model_errors, plaintext_secret_errors, stack_file_keys
from components.spec import ClusterSpec, SpecError, load_cluster_spec

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
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StackFileError(f"{path}: no such stack file; stacks: {', '.join(stack_names())}") from None
    except IsADirectoryError:
        raise StackFileError(f"{path}: is a directory; give a stack file (stacks/Pulumi.<stack>.yaml)") from None
    except OSError as exc:
        raise StackFileError(f"{path}: cannot be read ({exc.strerror}); make it a readable file") from None
    return parse_stack_document(data, str(path))


def parse_stack_document(data: bytes, where: str) -> dict[str, object]:
    """A stack file's bytes as its top-level mapping; `where` names the file (or git ref:path) in messages."""
    try:
        document = yaml.safe_load(data.decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise StackFileError(f"{where}: not UTF-8 text (byte {exc.start}); save the stack file as UTF-8") from None
    except yaml.YAMLError as exc:
        raise StackFileError(f"{where}: not valid YAML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # a date like 2024-13-45, a number of thousands of digits, deep nesting
        reason = str(exc).split(";")[0]
        raise StackFileError(f"{where}: a value YAML cannot read ({reason}); quote it or correct it") from None
    if not isinstance(document, dict):
        raise StackFileError(
            f"{where}: the file is a YAML {_yaml_type(document)}; a stack file is a mapping with a `config:` key"
        )
    return document


def _yaml_type(value: object) -> str:
    return "list" if isinstance(value, list) else f"scalar ({type(value).__name__})"


def cluster_config(document: dict[str, object], where: str) -> object:
    """The `llm-cluster:cluster` object of a stack document, exactly as Pulumi passes it to the program."""
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(
            f"{where}: `config:` is a {_yaml_type(config)}, not a mapping; indent `{CONFIG_KEY}:` under `config:`"
        )
    if CONFIG_KEY not in config:
        raise StackFileError(f"{where}: no `{CONFIG_KEY}` key under `config:`; put the stack spec there")
    return config[CONFIG_KEY]


def read_stack_config(path: Path) -> object:
    """The `llm-cluster:cluster` object; a credential the file holds in plain text is refused first."""
    document = stack_document(path)
    plaintext = plaintext_secret_errors(stack_file_keys(document))
    if plaintext:
        raise StackFileError("\n".join(f"{path}: {line}" for line in plaintext))
    return cluster_config(document, str(path))


def secret_keys(path: Path) -> list[str]:
    """Config keys the stack holds as ciphertext (`secure:`), which only its secrets provider opens."""
    config = stack_document(path).get("config") or {}
    if not isinstance(config, dict):
        return []
    return [key for key, value in config.items() if isinstance(value, dict) and "secure" in value]


def load_stack(stack: str) -> ClusterSpec:
    return load_cluster_spec(read_stack_config(stack_file(stack)))


def plan_stack(stack: str) -> ClusterPlan:
    """The plan of a stack file, refused as the Pulumi program refuses it: a gated model needs llm-cluster:hfToken."""
    path = stack_file(stack)
    plan = plan_for(load_cluster_spec(read_stack_config(path)))
    errors = gated_model_errors(plan, stack_file_keys(stack_document(path)))
    if errors:
        raise SpecError(errors)
    return plan


def plan_for(spec: ClusterSpec) -> ClusterPlan:
    """The plan of a spec, with the shipped catalogs; configPath entries resolve against the project."""
    return plan_cluster(spec, load_gpu_catalog(), load_model_catalog(), PROJECT_DIR)
