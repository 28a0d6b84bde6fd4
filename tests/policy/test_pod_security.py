"""Pod Security Standards (Kubernetes 1.31) as policy/pod_security.py implements them: each control fails its
bad example and passes a compliant pod; pod- versus container-level precedence as the admission controller has it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

import tests.policy.rendered  # noqa: F401  (puts policy/ on sys.path)

from pod_security import baseline_violations, restricted_violations  # isort: skip

CONTAINER = {
    "name": "app",
    "image": "example/app:1",
    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
}


def restricted_pod() -> dict[str, Any]:
    """A pod that passes `restricted`: non-root and RuntimeDefault at pod level, each container drops ALL."""
    return {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [{**copy.deepcopy(CONTAINER), "name": "init"}],
        "containers": [copy.deepcopy(CONTAINER)],
        "volumes": [
            {"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "config", "configMap": {"name": "config"}},
            {"name": "token", "projected": {"sources": []}},
            {"name": "defaulted"},  # no source: the API server makes it an emptyDir
        ],
    }


def changed(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    pod = restricted_pod()
    change(pod)
    return pod


def ctx(pod: dict[str, Any], index: int = 0) -> Any:
    """The securityContext of container `index` (not a copy)."""
    return pod["containers"][index]["securityContext"]


def test_the_compliant_pod_passes_both_profiles() -> None:
    assert restricted_violations(restricted_pod()) == []
    assert baseline_violations(restricted_pod()) == []


def test_a_default_pod_passes_baseline_but_not_restricted() -> None:
    pod = {"containers": [{"name": "app", "image": "example/app:1"}]}
    assert baseline_violations(pod) == []
    assert restricted_violations(pod) == [
        'container "app" must set securityContext.allowPrivilegeEscalation=false',
        'pod or container "app" must set securityContext.runAsNonRoot=true',
        'pod or container "app" must set securityContext.seccompProfile.type to RuntimeDefault or Localhost',
        'container "app" must set securityContext.capabilities.drop=["ALL"]',
    ]


BASELINE_CASES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "hostProcess": (
        lambda p: p["securityContext"].update(windowsOptions={"hostProcess": True}),
        "pod must not set securityContext.windowsOptions.hostProcess=true",
    ),
    "host namespaces": (lambda p: p.update(hostPID=True), "pod must not set hostPID=true"),
    "privileged": (
        lambda p: ctx(p).update(privileged=True),
        'container "app" must not set securityContext.privileged=true',
    ),
    "capabilities beyond the default set": (
        lambda p: ctx(p)["capabilities"].update(add=["SYS_ADMIN"]),
        'container "app" must not add SYS_ADMIN',
    ),
    "hostPath": (lambda p: p["volumes"].append({"name": "host", "hostPath": {"path": "/"}}), 'volume "host"'),
    "hostPort": (
        lambda p: p["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 8080.0}]),
        'container "app" must not set hostPort (8080)',
    ),
    "AppArmor field": (
        lambda p: ctx(p).update(appArmorProfile={"type": "Unconfined"}),
        'container "app" must not set securityContext.appArmorProfile.type to Unconfined',
    ),
    "SELinux type": (
        lambda p: p["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
        "pod must not set securityContext.seLinuxOptions.type spc_t",
    ),
    "SELinux user": (
        lambda p: ctx(p).update(seLinuxOptions={"user": "system_u"}),
        'container "app" must not set securityContext.seLinuxOptions.user',
    ),
    "/proc mount": (
        lambda p: ctx(p).update(procMount="Unmasked"),
        'container "app" must not set securityContext.procMount Unmasked',
    ),
    "seccomp Unconfined": (
        lambda p: ctx(p).update(seccompProfile={"type": "Unconfined"}),
        'container "app" must not set securityContext.seccompProfile.type to Unconfined',
    ),
    "unsafe sysctl": (
        lambda p: p["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
        "pod must not set sysctl kernel.msgmax",
    ),
}


@pytest.mark.parametrize("case", sorted(BASELINE_CASES))
def test_each_baseline_control_fails_both_profiles(case: str) -> None:
    change, message = BASELINE_CASES[case]
    pod = changed(change)
    for found in (baseline_violations(pod), restricted_violations(pod)):
        assert any(message in v for v in found), found


RESTRICTED_CASES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "volume type": (
        lambda p: p["volumes"].append({"name": "share", "nfs": {"server": "nfs", "path": "/"}}),
        'volume "share" must not use nfs',
    ),
    "image volume (1.33+, not 1.31)": (
        lambda p: p["volumes"].append({"name": "weights", "image": {"reference": "example/weights:1"}}),
        'volume "weights" must not use image',
    ),
    "privilege escalation unset": (
        lambda p: ctx(p).pop("allowPrivilegeEscalation"),
        'container "app" must set securityContext.allowPrivilegeEscalation=false',
    ),
    "root user": (
        lambda p: p["securityContext"].update(runAsUser=0.0),
        "pod must not set securityContext.runAsUser=0",
    ),
    "no seccomp": (
        lambda p: p["securityContext"].pop("seccompProfile"),
        'pod or initContainer "init" must set securityContext.seccompProfile.type',
    ),
    "capabilities not dropped": (
        lambda p: ctx(p)["capabilities"].update(drop=["NET_RAW"]),
        'container "app" must set securityContext.capabilities.drop=["ALL"]',
    ),
    "a default capability added": (
        lambda p: ctx(p)["capabilities"].update(add=["CHOWN"]),
        'container "app" must not add CHOWN',
    ),
}


@pytest.mark.parametrize("case", sorted(RESTRICTED_CASES))
def test_each_restricted_control_fails_restricted_only(case: str) -> None:
    change, message = RESTRICTED_CASES[case]
    pod = changed(change)
    found = restricted_violations(pod)
    assert any(message in v for v in found), found
    assert not any(message in v for v in baseline_violations(pod))


def test_allowed_values_pass() -> None:
    def allowed(p: dict[str, Any]) -> None:
        ctx(p)["capabilities"].update(add=["NET_BIND_SERVICE"])
        ctx(p).update(
            seLinuxOptions={"type": "container_engine_t", "level": "s0:c1,c2"},  # container_engine_t: 1.31
            appArmorProfile={"type": "RuntimeDefault"},
            seccompProfile={"type": "Localhost", "localhostProfile": "profiles/app.json"},
            procMount="Default",
            privileged=False,
        )
        p["securityContext"].update(sysctls=[{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}])  # 1.29+
        p["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 0}]
        p.update(hostNetwork=False, hostIPC=False)

    assert restricted_violations(changed(allowed)) == []


def test_app_armor_annotations_are_checked() -> None:
    key = "container.apparmor.security.beta.kubernetes.io/app"
    assert restricted_violations(restricted_pod(), {key: "runtime/default"}) == []
    assert restricted_violations(restricted_pod(), {key: "localhost/app"}) == []
    found = restricted_violations(restricted_pod(), {key: "unconfined"})
    assert found == [f"annotation {key} must not be 'unconfined'"]


def test_every_container_list_is_checked() -> None:
    pod = changed(lambda p: p.update(ephemeralContainers=[{"name": "debug", "image": "busybox:1"}]))
    found = restricted_violations(pod)
    assert 'ephemeralContainer "debug" must set securityContext.allowPrivilegeEscalation=false' in found
    pod = changed(lambda p: p["initContainers"][0]["securityContext"].update(privileged=True))
    assert restricted_violations(pod) == ['initContainer "init" must not set securityContext.privileged=true']


def test_run_as_non_root_precedence() -> None:
    # Pod-level true covers containers that leave it unset ...
    assert restricted_violations(restricted_pod()) == []
    # ... but not one that sets false,
    pod = changed(lambda p: ctx(p).update(runAsNonRoot=False))
    assert restricted_violations(pod) == ['container "app" must not set securityContext.runAsNonRoot=false']
    # a pod-level false fails even when every container sets true,
    pod = changed(lambda p: p["securityContext"].update(runAsNonRoot=False))
    for container in pod["initContainers"] + pod["containers"]:
        container["securityContext"]["runAsNonRoot"] = True
    assert restricted_violations(pod) == ["pod must not set securityContext.runAsNonRoot=false"]
    # and without the pod-level field every container must set it.
    pod = changed(lambda p: (p["securityContext"].pop("runAsNonRoot"), ctx(p).update(runAsNonRoot=True)))
    assert restricted_violations(pod) == ['pod or initContainer "init" must set securityContext.runAsNonRoot=true']


def test_seccomp_precedence() -> None:
    # Every container may set it instead of the pod,
    def per_container(p: dict[str, Any]) -> None:
        p["securityContext"].pop("seccompProfile")
        for container in p["initContainers"] + p["containers"]:
            container["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}

    assert restricted_violations(changed(per_container)) == []
    # a container's Unconfined fails under a pod-level RuntimeDefault, and a pod-level Unconfined fails even when
    # every container sets RuntimeDefault.
    pod = changed(lambda p: ctx(p).update(seccompProfile={"type": "Unconfined"}))
    assert restricted_violations(pod) == [
        'container "app" must not set securityContext.seccompProfile.type to Unconfined'
    ]
    pod = changed(per_container)
    pod["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    assert restricted_violations(pod) == ["pod must not set securityContext.seccompProfile.type to Unconfined"]


def test_run_as_user_zero_fails_wherever_set() -> None:
    pod = changed(lambda p: ctx(p).update(runAsUser=0))
    assert restricted_violations(pod) == ['container "app" must not set securityContext.runAsUser=0']


def test_windows_pods_skip_the_linux_only_controls() -> None:
    pod = {
        "os": {"name": "windows"},
        "securityContext": {"runAsNonRoot": True},
        "containers": [{"name": "app", "image": "example/app:1"}],
    }
    assert restricted_violations(pod) == []


def test_restricted_replaces_the_baseline_checks_it_tightens() -> None:
    """hostPath, capabilities and seccomp are reported once, by the restricted check (the admission controller's
    OverrideCheckIDs)."""
    pod = changed(lambda p: p["volumes"].append({"name": "host", "hostPath": {"path": "/"}}))
    assert restricted_violations(pod) == ['volume "host" must not use hostPath']
    assert baseline_violations(pod) == ['volume "host" must not be a hostPath']
