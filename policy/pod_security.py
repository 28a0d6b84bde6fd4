"""Pod Security Standards: the `baseline` and `restricted` profiles as Kubernetes 1.31 defines them.

Source: https://kubernetes.io/docs/concepts/security/pod-security-standards/ (v1.31). Where the page leaves
pod-level versus container-level precedence open, this follows the checks of the Pod Security Admission
controller that enforces the page, at the 1.31 release (github.com/kubernetes/pod-security-admission, tag
v0.31.0, policy/check_*.go):
- Containers are `initContainers`, `containers` and `ephemeralContainers`.
- runAsNonRoot: the pod sets true, or every container does; an explicit false anywhere fails, even under a
  pod-level true.
- seccompProfile.type (restricted): RuntimeDefault or Localhost at pod level, or on every container; an explicit
  other value anywhere fails (baseline fails only explicit Unconfined-like values).
- runAsUser: 0 fails wherever it is set explicitly (pod or container).
- The restricted capabilities, seccomp and volume checks replace the baseline capabilities, seccomp and
  hostPath checks; allowPrivilegeEscalation, seccomp and capabilities skip pods with `spec.os.name: windows`.
- Not in 1.31: probe/lifecycle `host` (1.34), image volumes in restricted (1.33), the user-namespace relaxation
  of runAsNonRoot/runAsUser (behind an alpha gate in 1.31).

Functions take a PodSpec as the API writes it (camelCase keys), plain dicts or CrossGuard's Mapping proxies, and
return one message per violated control, naming the pod or container and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Spec = Mapping[str, Any]
Check = Callable[[Spec, Mapping[str, str]], list[str]]

# Capabilities: baseline may add only the container runtime's default set; restricted drops ALL and may add back
# only NET_BIND_SERVICE.
BASELINE_CAPABILITIES = frozenset(
    {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
     "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
)  # fmt: skip
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
# The "safe" sysctls of 1.31 (the 1.0 set, ip_local_reserved_ports from 1.27, the TCP keepalive ones from 1.29).
SAFE_SYSCTLS = frozenset(
    {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
     "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
     "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
     "net.ipv4.tcp_keepalive_probes"}
)  # fmt: skip
# SELinux types a container may set (container_engine_t from 1.31); user and role may not be set at all.
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
# seccomp and AppArmor profile types that keep the runtime's confinement.
CONFINED_PROFILES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
# Volume sources restricted allows (1.31); any other source, hostPath included, fails.
RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
CONTAINER_LISTS = {
    "initContainers": "initContainer",
    "containers": "container",
    "ephemeralContainers": "ephemeralContainer",
}


def _containers(spec: Spec) -> list[tuple[str, Spec]]:
    """(`container "name"`, its securityContext) of every container of the pod."""
    found = []
    for field, label in CONTAINER_LISTS.items():
        for container in spec.get(field) or []:
            found.append((f'{label} "{container.get("name")}"', container.get("securityContext") or {}))
    return found


def _pod_context(spec: Spec) -> Spec:
    return spec.get("securityContext") or {}


def _windows(spec: Spec) -> bool:
    return str((spec.get("os") or {}).get("name") or "") == "windows"


def _setters(spec: Spec) -> list[tuple[str, Spec]]:
    """The pod's own securityContext, then each container's: the places a pod-or-container field is set."""
    return [("pod", _pod_context(spec)), *_containers(spec)]


# ---------------------------------------------------------------- baseline


def host_process(spec: Spec, _: Mapping[str, str]) -> list[str]:
    return [
        f"{who} must not set securityContext.windowsOptions.hostProcess=true"
        for who, context in _setters(spec)
        if (context.get("windowsOptions") or {}).get("hostProcess")
    ]


def host_namespaces(spec: Spec, _: Mapping[str, str]) -> list[str]:
    return [f"pod must not set {field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]


def privileged(spec: Spec, _: Mapping[str, str]) -> list[str]:
    return [
        f"{who} must not set securityContext.privileged=true" for who, c in _containers(spec) if c.get("privileged")
    ]


def _added(context: Spec) -> list[str]:
    return [str(c) for c in (context.get("capabilities") or {}).get("add") or []]


def capabilities_baseline(spec: Spec, _: Mapping[str, str]) -> list[str]:
    violations = []
    for who, context in _containers(spec):
        extra = sorted(set(_added(context)) - BASELINE_CAPABILITIES)
        if extra:
            violations.append(f"{who} must not add {', '.join(extra)} in securityContext.capabilities.add")
    return violations


def host_path_volumes(spec: Spec, _: Mapping[str, str]) -> list[str]:
    return [f'volume "{v.get("name")}" must not be a hostPath' for v in spec.get("volumes") or [] if "hostPath" in v]


def host_ports(spec: Spec, _: Mapping[str, str]) -> list[str]:
    violations = []
    for field, label in CONTAINER_LISTS.items():
        for container in spec.get(field) or []:
            ports = sorted({int(p["hostPort"]) for p in container.get("ports") or [] if p.get("hostPort")})
            if ports:
                name = container.get("name")
                violations.append(f'{label} "{name}" must not set hostPort ({", ".join(map(str, ports))})')
    return violations


def app_armor(spec: Spec, annotations: Mapping[str, str]) -> list[str]:
    violations = [
        f"{who} must not set securityContext.appArmorProfile.type to {profile}"
        for who, context in _setters(spec)
        if "appArmorProfile" in context
        and (profile := str((context.get("appArmorProfile") or {}).get("type"))) not in CONFINED_PROFILES
    ]
    for key, value in sorted(annotations.items()):
        allowed = not value or value == "runtime/default" or str(value).startswith("localhost/")
        if key.startswith(APPARMOR_ANNOTATION) and not allowed:
            violations.append(f"annotation {key} must not be {value!r}")
    return violations


def se_linux(spec: Spec, _: Mapping[str, str]) -> list[str]:
    violations = []
    for who, context in _setters(spec):
        options = context.get("seLinuxOptions")
        if options is None:
            continue
        kind = str(options.get("type") or "")
        if kind not in SELINUX_TYPES:
            violations.append(f"{who} must not set securityContext.seLinuxOptions.type {kind}")
        violations.extend(
            f"{who} must not set securityContext.seLinuxOptions.{part}"
            for part in ("user", "role")
            if options.get(part)
        )
    return violations


def proc_mount(spec: Spec, _: Mapping[str, str]) -> list[str]:
    return [
        f"{who} must not set securityContext.procMount {c.get('procMount')}"
        for who, c in _containers(spec)
        if c.get("procMount") not in (None, "Default")
    ]


def _seccomp(context: Spec) -> str | None:
    """The seccomp profile type set here, or None when this context does not set one."""
    profile = context.get("seccompProfile")
    return None if profile is None else str(profile.get("type"))


def seccomp_baseline(spec: Spec, _: Mapping[str, str]) -> list[str]:
    return [
        f"{who} must not set securityContext.seccompProfile.type to {kind}"
        for who, context in _setters(spec)
        if (kind := _seccomp(context)) is not None and kind not in CONFINED_PROFILES
    ]


def sysctls(spec: Spec, _: Mapping[str, str]) -> list[str]:
    names = [str(s.get("name")) for s in _pod_context(spec).get("sysctls") or []]
    return [f"pod must not set sysctl {name} (not in the safe set)" for name in names if name not in SAFE_SYSCTLS]


# ---------------------------------------------------------------- restricted


def volume_types(spec: Spec, _: Mapping[str, str]) -> list[str]:
    violations = []
    for volume in spec.get("volumes") or []:
        # A volume without a source is defaulted to emptyDir by the API server.
        sources = sorted(set(volume) - {"name"})
        if any(s not in RESTRICTED_VOLUMES for s in sources):
            violations.append(f'volume "{volume.get("name")}" must not use {", ".join(sources)}')
    return violations


def privilege_escalation(spec: Spec, _: Mapping[str, str]) -> list[str]:
    if _windows(spec):
        return []
    return [
        f"{who} must set securityContext.allowPrivilegeEscalation=false"
        for who, context in _containers(spec)
        if context.get("allowPrivilegeEscalation") is not False
    ]


def run_as_non_root(spec: Spec, _: Mapping[str, str]) -> list[str]:
    pod = _pod_context(spec).get("runAsNonRoot")
    violations = ["pod must not set securityContext.runAsNonRoot=false"] if pod is False else []
    for who, context in _containers(spec):
        own = context.get("runAsNonRoot")
        if own is False:
            violations.append(f"{who} must not set securityContext.runAsNonRoot=false")
        elif own is None and pod is not True:
            violations.append(f"pod or {who} must set securityContext.runAsNonRoot=true")
    return violations


def _is_zero(value: Any) -> bool:
    try:
        return float(value) == 0
    except (TypeError, ValueError):
        return False


def run_as_user(spec: Spec, _: Mapping[str, str]) -> list[str]:
    return [
        f"{who} must not set securityContext.runAsUser=0"
        for who, context in _setters(spec)
        if context.get("runAsUser") is not None and _is_zero(context["runAsUser"])
    ]


def seccomp_restricted(spec: Spec, annotations: Mapping[str, str]) -> list[str]:
    if _windows(spec):
        return []
    violations = seccomp_baseline(spec, annotations)
    pod_confined = _seccomp(_pod_context(spec)) in CONFINED_PROFILES
    for who, context in _containers(spec):
        if _seccomp(context) is None and not pod_confined:
            violations.append(
                f"pod or {who} must set securityContext.seccompProfile.type to RuntimeDefault or Localhost"
            )
    return violations


def capabilities_restricted(spec: Spec, _: Mapping[str, str]) -> list[str]:
    if _windows(spec):
        return []
    violations = []
    for who, context in _containers(spec):
        dropped = (context.get("capabilities") or {}).get("drop") or []
        if "ALL" not in [str(d) for d in dropped]:
            violations.append(f'{who} must set securityContext.capabilities.drop=["ALL"]')
        extra = sorted(set(_added(context)) - RESTRICTED_CAPABILITIES)
        if extra:
            violations.append(f"{who} must not add {', '.join(extra)} in securityContext.capabilities.add")
    return violations


BASELINE: tuple[Check, ...] = (
    host_process, host_namespaces, privileged, capabilities_baseline, host_path_volumes, host_ports, app_armor,
    se_linux, proc_mount, seccomp_baseline, sysctls,
)  # fmt: skip
# What the restricted profile adds, and the baseline checks each one replaces (as the admission controller does).
RESTRICTED: tuple[Check, ...] = (
    volume_types, privilege_escalation, run_as_non_root, run_as_user, seccomp_restricted, capabilities_restricted,
)  # fmt: skip
REPLACED_BY_RESTRICTED = frozenset({capabilities_baseline, seccomp_baseline, host_path_volumes})


def baseline_violations(pod_spec: Spec, annotations: Mapping[str, str] | None = None) -> list[str]:
    """Why a pod with this spec (and pod annotations) fails Pod Security `baseline`; [] when it passes."""
    return [v for check in BASELINE for v in check(pod_spec, annotations or {})]


def restricted_violations(pod_spec: Spec, annotations: Mapping[str, str] | None = None) -> list[str]:
    """Why a pod with this spec (and pod annotations) fails Pod Security `restricted`; [] when it passes."""
    checks = [c for c in BASELINE if c not in REPLACED_BY_RESTRICTED] + list(RESTRICTED)
    return [v for check in checks for v in check(pod_spec, annotations or {})]
