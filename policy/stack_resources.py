"""What a rule sees of one resource, and how it reads pod templates out of a workload.

CrossGuard supplies a resource's inputs and its options (`ResourceValidationArgs.props`, `.opts`: protect,
ignore_changes, ...); the tests supply the same from an offline run (components/tools/render.py's
Registration.inputs and .options). Values may be Mapping/Sequence proxies under CrossGuard, so rules test
`Mapping`, never `dict`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# Kinds whose pods the stack defines itself, and where their pod template sits.
TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    props: Mapping[str, Any]
    # Pulumi resource options: "protect", "ignore_changes", "delete_before_replace" (CrossGuard has no
    # retainOnDelete), as the pack and the tests pass them.
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(self.props.get("kind") or self.type.rsplit(":", 1)[-1])

    @property
    def api_version(self) -> str:
        """apiVersion, else from the type token (kubernetes:core/v1:Pod -> v1)."""
        if self.props.get("apiVersion"):
            return str(self.props["apiVersion"])
        parts = self.type.split(":")
        return parts[1].removeprefix("core/") if len(parts) == 3 else ""

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.props.get("metadata") or {}

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "")

    @property
    def object_name(self) -> str:
        return str(self.metadata.get("name") or self.name)

    @property
    def labels(self) -> Mapping[str, str]:
        return self.metadata.get("labels") or {}


ResourceRule = Callable[[Resource], list[str]]
StackRule = Callable[[list[Resource]], list[str]]


def number(value: Any) -> float:
    """A rendered value as a number; NaN (which fails every comparison) when it is not one."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def flag_value(args: list[str], flag: str) -> str | None:
    """The word after `flag` in a container's args, None when absent."""
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


def pod_templates(resource: Resource) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(role, pod template) of a workload: Deployment-like templates, CronJob's job template, a bare Pod (its
    own template), LeaderWorkerSet leader/worker."""
    spec = resource.props.get("spec") or {}
    if resource.kind in TEMPLATE_KINDS and "template" in spec:
        yield "pod", spec["template"]
    elif resource.kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        if "template" in job:
            yield "pod", job["template"]
    elif resource.kind == "Pod" and resource.api_version == "v1":
        yield "pod", resource.props
    elif resource.kind == "LeaderWorkerSet":
        group = spec.get("leaderWorkerTemplate") or {}
        if "leaderTemplate" in group:
            yield "leader", group["leaderTemplate"]
        if "workerTemplate" in group:
            yield "worker", group["workerTemplate"]


def is_workload(resource: Resource) -> bool:
    return any(True for _ in pod_templates(resource))


def containers(template: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = template.get("spec") or {}
    return list(spec.get("containers") or []) + list(spec.get("initContainers") or [])


def template_labels(template: Mapping[str, Any]) -> dict[str, str]:
    return dict((template.get("metadata") or {}).get("labels") or {})


def where(resource: Resource, role: str) -> str:
    """How a message names a pod template: the workload, and the LeaderWorkerSet role when there is one."""
    return resource.object_name if role == "pod" else f"{resource.object_name} ({role})"
