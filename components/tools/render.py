"""Run the real Pulumi program offline, under mocks, and write down everything it would create.

No cluster and no Pulumi CLI: every resource registration is captured with its inputs and sorted into
  DIR/manifests.yaml     every Kubernetes object, multi-document, Secret values replaced by `<secret>`
  DIR/helm/<release>.yaml repo, chart, version, namespace and values of each Helm release
  DIR/cloud.yaml         non-Kubernetes resources (cloud node pools): type token and inputs
  DIR/plan.json          the ClusterPlan
"""

from __future__ import annotations

import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.stacks import PROJECT_DIR, read_stack_config, secret_keys, stack_file

SECRET = "<secret>"
UNKNOWN = "<unknown>"
GENERATED = "<generated>"
PUSHED_DIGEST = "<digest-after-push>"
# Markers the Pulumi SDK uses on the wire for secrets and not-yet-known values.
_SECRET_SIG = "4dabf18193072939515e22adb298388d"
_UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# Registrations that are bookkeeping, not things the cluster or a cloud would hold.
_NOT_RESOURCES = ("pulumi:", "llm-cluster:", "random:")


class RenderError(Exception):
    """The program refused the stack (its message names the field); nothing was rendered."""


class EchoMocks(pulumi.runtime.Mocks):
    """Resources echo their inputs as state, so what the program asked for can be read back."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ.startswith("random:"):
            # Generated values exist only after `pulumi up`; a placeholder keeps the objects using them whole.
            state["result"] = GENERATED
        if args.typ == "docker:index/image:Image":
            repository = str(args.inputs["imageName"]).rsplit(":", 1)[0]
            state["repoDigest"] = f"{repository}@sha256:{PUSHED_DIGEST}"
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class RecordingMonitor(MockMonitor):
    """The mock monitor, also keeping each resource's options (protect, retainOnDelete, ignoreChanges), which
    the mocks' own records drop: they are what keeps data alive across edits, so the tests check them."""

    def __init__(self, mocks: EchoMocks) -> None:
        super().__init__(mocks)
        self.options: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        self.options[response.urn] = {
            "protect": bool(request.protect),
            "retain_on_delete": bool(request.retainOnDelete),
            "ignore_changes": sorted(request.ignoreChanges),
            "delete_before_replace": bool(request.deleteBeforeReplace),
            "depends_on": sorted(request.dependencies),
            "create_timeout": request.customTimeouts.create if request.HasField("customTimeouts") else "",
        }
        return response


_MONITOR: RecordingMonitor | None = None


def _monitor() -> RecordingMonitor:
    """One set of mocks per process: the Pulumi runtime keeps them globally."""
    global _MONITOR
    if _MONITOR is None:
        mocks = EchoMocks()
        _MONITOR = RecordingMonitor(mocks)
        pulumi.runtime.set_mocks(mocks, project="llm-cluster", stack="offline", preview=False, monitor=_MONITOR)
    return _MONITOR


@dataclass(frozen=True)
class Registration:
    type: str
    name: str
    inputs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)  # protect, retain_on_delete, ignore_changes, ...


@dataclass
class ProgramRun:
    """What one offline run of the program registered and exported."""

    registrations: list[Registration] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_token]

    @property
    def manifests(self) -> list[dict[str, Any]]:
        """Kubernetes objects (custom resources and node patches included), secrets masked."""
        objects = []
        for r in self.registrations:
            if not r.type.startswith("kubernetes:") or r.type == HELM_RELEASE:
                continue
            inputs = clean(r.inputs)
            obj = {k: inputs[k] for k in ("apiVersion", "kind", "metadata") if k in inputs}
            obj.update({k: v for k, v in inputs.items() if k not in obj})
            if obj.get("kind") == "Secret":
                for key in ("data", "stringData"):
                    if isinstance(obj.get(key), dict):
                        obj[key] = dict.fromkeys(obj[key], SECRET)
            objects.append(obj)
        return sorted(objects, key=_apply_order)

    @property
    def helm_releases(self) -> dict[str, dict[str, Any]]:
        releases = {}
        for r in self.of_type(HELM_RELEASE):
            inputs = clean(r.inputs)
            releases[inputs.get("name", r.name)] = {
                "repo": (inputs.get("repositoryOpts") or {}).get("repo"),
                "chart": inputs["chart"],
                "version": inputs.get("version"),
                "namespace": inputs.get("namespace"),
                "values": inputs.get("values") or {},
            }
        return releases

    @property
    def cloud_resources(self) -> list[dict[str, Any]]:
        return [
            {"type": r.type, "name": r.name, "inputs": clean(r.inputs)}
            for r in self.registrations
            if not r.type.startswith(("kubernetes:", *_NOT_RESOURCES))
        ]


# Cluster-scoped and referenced objects first, as `kubectl apply` of the file would need them.
_KIND_ORDER = (
    "Namespace",
    "Node",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "Service",
    "Deployment",
    "LeaderWorkerSet",
    "PodDisruptionBudget",
)


def _apply_order(obj: dict[str, Any]) -> tuple[int, str, str]:
    kind = obj.get("kind", "")
    rank = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    meta = obj.get("metadata") or {}
    return rank, meta.get("namespace", ""), meta.get("name", "")


def clean(value: Any) -> Any:
    """Wire values -> plain YAML: secrets masked, unknowns marked, integral floats back to ints."""
    if isinstance(value, dict):
        if _SECRET_SIG in value:
            inner = value.get("value")
            return dict.fromkeys(sorted(inner), SECRET) if isinstance(inner, dict) else SECRET
        return {k: clean(v) for k, v in sorted(value.items()) if not k.startswith("__")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == _UNKNOWN_VALUE:
        return UNKNOWN
    return value


def run_program(
    cluster: object,
    hf_token: str | None = None,
    secrets: dict[str, str] | None = None,
    plain: dict[str, str] | None = None,
) -> ProgramRun:
    """Run __main__.py with `llm-cluster:cluster`, optionally an HF token, other secret keys and plain-text keys,
    under mocks."""
    monitor = _monitor()
    monitor.resources.clear()
    monitor.options.clear()
    config = {"llm-cluster:cluster": json.dumps(cluster)}
    secret_keys = []
    for key, value in {
        **({"llm-cluster:hfToken": hf_token} if hf_token is not None else {}),
        **(secrets or {}),
    }.items():
        config[key] = value
        secret_keys.append(key)
    config.update(plain or {})
    pulumi.runtime.set_all_config(config, secret_keys)
    run = ProgramRun()

    def program() -> None:
        runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")

    with patch("pulumi.export", side_effect=run.exports.__setitem__):
        try:
            _sync_await(run_pulumi_func(program))
        except pulumi.RunError as exc:
            monitor.resources.clear()
            raise RenderError(str(exc)) from None
    for registration in monitor.resources.values():
        kind = registration.urn.split("::")[2].split("$")[-1]
        name = registration.urn.split("::")[3]
        options = monitor.options.get(registration.urn, {})
        run.registrations.append(Registration(kind, name, dict(registration.state), options))
    return run


def write_render(run: ProgramRun, plan: dict[str, Any], out: Path) -> list[Path]:
    """Write the four render outputs; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    helm_dir = out / "helm"
    helm_dir.mkdir(exist_ok=True)
    for stale in helm_dir.glob("*.yaml"):
        stale.unlink()
    written = [out / "manifests.yaml", out / "cloud.yaml", out / "plan.json"]
    written[0].write_text(yaml.safe_dump_all(run.manifests, sort_keys=False))
    written[1].write_text(yaml.safe_dump(run.cloud_resources, sort_keys=False))
    written[2].write_text(json.dumps(plan, indent=2) + "\n")
    for name, release in run.helm_releases.items():
        path = helm_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(release, sort_keys=False))
        written.append(path)
    return written


def render_stack(stack: str, plan: Any, out: Path) -> list[Path]:
    """Run the program for a stack file offline and write its render (DESIGN.md contract)."""
    path = stack_file(stack)
    # Secret keys are ciphertext only the stack's secrets provider opens; placeholders keep their objects whole.
    secrets = dict.fromkeys(secret_keys(path), SECRET)
    run = run_program(read_stack_config(path), secrets=secrets)
    try:
        return write_render(run, plan.model_dump(mode="json"), out)
    except OSError as exc:  # a read-only or special file system: said as the CLI's --render problem
        raise RenderError(f"--render: cannot write {out} ({exc.strerror}); use another directory") from None
