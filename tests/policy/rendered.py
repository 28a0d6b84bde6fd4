"""Every stack's resources as the policy pack sees them, and the edits the tests make to them.

Inputs go through pulumi_policy's own deserializer (secrets unwrapped, as CrossGuard hands them to a policy), and
options are the offline run's (components/tools/render.py RecordingMonitor: protect, retain_on_delete, ...).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pulumi_policy.deserialize import deserialize_properties

from testbed.stacks import rendered

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
# The pack imports its modules by their bare names (policy/__main__.py runs from policy/); so do the tests.
sys.path.insert(0, str(POLICY_DIR))
from stack_resources import Resource  # noqa: E402


def resources(stack: str) -> list[Resource]:
    return [
        Resource(r.type, r.name, deserialize_properties(copy.deepcopy(r.inputs)), dict(r.options))
        for r in rendered(stack).registrations
    ]


def first(stack: str, kind: str, name: str | None = None) -> Resource:
    return next(r for r in resources(stack) if r.kind == kind and (name is None or r.object_name == name))


def mutate(resource: Resource, change: Callable[[dict[str, Any]], Any]) -> Resource:
    """A copy of the resource with its inputs changed in place by `change` (options kept)."""
    props = copy.deepcopy(dict(resource.props))
    change(props)
    return Resource(resource.type, resource.name, props, resource.options)


def with_options(resource: Resource, **options: Any) -> Resource:
    return Resource(resource.type, resource.name, resource.props, {**resource.options, **options})


def pod_spec(props: dict[str, Any]) -> Any:
    """A Deployment's pod spec itself (not a copy), for mutating."""
    return props["spec"]["template"]["spec"]


def container(props: dict[str, Any]) -> Any:
    """The first container itself (not a copy), for mutating."""
    return pod_spec(props)["containers"][0]


def vllm(stack: str = "prod") -> Resource:
    return first(stack, "Deployment", "qwen2-5-32b-instruct")


def gateway(stack: str = "prod") -> Resource:
    return first(stack, "Deployment", "llm-gateway")
