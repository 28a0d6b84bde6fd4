"""The Kubernetes API's own rules for values of the stack that end up in objects, checked when the spec loads, so
that a bad value is refused naming its field and the fix instead of failing halfway through `pulumi up`.

- Names of objects the stack refers to: StorageClass (a PVC's storageClassName), Secret and Node names are
  RFC 1123 subdomains (ValidateNodeName and NameIsDNSSubdomain -> IsDNS1123Subdomain in
  k8s.io/apimachinery/pkg/util/validation): at most 253 characters, lowercase letters, digits, '-' and '.', each
  dot-separated part starting and ending with a letter or digit. The names the stack gives its own objects
  (namespace, pools, models, clients) are RFC 1035 labels, checked by their pattern (models.DNS_LABEL).
- A host name (the Gateway listener's hostname) is at most 253 characters, 63 per label (RFC 1123).
- Resource quantities (k8s.io/apimachinery/pkg/api/resource): a PVC must request more than zero storage
  (ValidatePersistentVolumeClaimSpec), and a quantity past 2^63-1 is silently capped.
- Prometheus durations (prometheus-operator's Duration; Prometheus holds them as int64 nanoseconds, ~292 years):
  a retention or a scrape interval of zero means "the default", so only durations above zero are taken.
- Counts the API bounds per cluster, not per object (kubernetes.io/docs/setup/best-practices/cluster-large: at
  most 5,000 nodes and 150,000 pods): a pool's nodes and a workload's replicas past them are typos, and the
  planner would place every one of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

from components.spec.models import ClusterSpec, ExistingBackendSpec

SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_WORD = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
MAX_SUBDOMAIN = 253
MAX_LABEL = 63
MAX_QUANTITY = 2**63 - 1
MAX_DURATION_SECONDS = (2**63 - 1) // 10**9
MAX_NODES = 5000
MAX_PODS = 150_000
CLUSTER_LIMITS = "kubernetes.io/docs/setup/best-practices/cluster-large"
_BYTES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
# Where each kind of object the stack refers to can be looked up.
_LOOK_UP = {
    "StorageClass": "use a name `kubectl get storageclass` lists",
    "Secret": "use the name of the Secret as `kubectl get secret -n <namespace>` lists it",
    "Node": "use the name `kubectl get nodes` shows",
}


def api_rule_checks(spec: ClusterSpec) -> list[str]:
    """Every violation of the rules above, as `<field path>: <what and the fix>`."""
    errors = [_subdomain(path, name, kind) for path, name, kind in _object_names(spec)]
    errors.append(_hostname(spec.auth.hostname))
    monitoring = spec.monitoring
    for part, volume in (("prometheus", monitoring.prometheus), ("grafana", monitoring.grafana),
                         ("alertmanager", monitoring.alertmanager)):  # fmt: skip
        errors.append(_storage_size(f"monitoring.{part}.size", volume.size))
    errors.append(_duration("monitoring.retention", monitoring.retention))
    errors.append(_duration("monitoring.scrapeInterval", monitoring.scrape_interval))
    errors += _counts(spec)
    errors += [_label("dns.podLabels", key, value) for key, value in spec.dns.pod_labels.items()]
    return [error for error in errors if error]


def _label(path: str, key: str, value: str) -> str:
    """A label selector's key (an optional subdomain prefix and '/', then a name) and value (IsQualifiedName and
    IsValidLabelValue in k8s.io/apimachinery/pkg/util/validation)."""
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > MAX_SUBDOMAIN or not SUBDOMAIN.fullmatch(prefix))) or not _label_word(name, False):
        return f"{path}: {_shown(key)} is not a label key; write name or prefix/name, e.g. k8s-app"
    if not _label_word(value, True):
        return f"{path}.{key}: {_shown(value)} is not a label value; use up to 63 letters, digits, '-', '_', '.'"
    return ""


def _label_word(word: str, empty_ok: bool) -> bool:
    return (empty_ok and word == "") or (len(word) <= MAX_LABEL and LABEL_WORD.fullmatch(word) is not None)


def _object_names(spec: ClusterSpec) -> Iterator[tuple[str, str, str]]:
    """(field path, name, kind) of every existing object the stack names."""
    for path, name in (("storageClass", spec.storage_class), ("weightsStorageClass", spec.weights_storage_class)):
        if name is not None:
            yield path, name, "StorageClass"
    if spec.auth.tls_secret_name is not None:
        yield "auth.tlsSecretName", spec.auth.tls_secret_name, "Secret"
    for i, client in enumerate(spec.auth.clients):
        if client.key_secret is not None:
            yield f"auth.clients[{i}].keySecret", client.key_secret, "Secret"
    if spec.monitoring.alertmanager_config_secret is not None:
        yield "monitoring.alertmanagerConfigSecret", spec.monitoring.alertmanager_config_secret, "Secret"
    for i, pool in enumerate(spec.pools):
        if isinstance(pool.backend, ExistingBackendSpec):
            for j, node in enumerate(pool.backend.node_names):
                yield f"pools[{i}].backend.nodeNames[{j}]", node, "Node"


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 60 else repr(value[:57]) + "..."


def _subdomain(path: str, name: str, kind: str) -> str:
    if len(name) <= MAX_SUBDOMAIN and SUBDOMAIN.fullmatch(name):
        return ""
    problem = f"is longer than {MAX_SUBDOMAIN} characters" if len(name) > MAX_SUBDOMAIN else "is not a valid name"
    return (
        f"{path}: {_shown(name)} {problem} for a {kind}; Kubernetes names a {kind} as an RFC 1123 subdomain "
        f"(lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit); "
        f"{_LOOK_UP[kind]}"
    )


def _hostname(hostname: str | None) -> str:
    if hostname is None:
        return ""
    longest = max(len(label) for label in hostname.split("."))
    if len(hostname) <= MAX_SUBDOMAIN and longest <= MAX_LABEL:
        return ""
    return (
        f"auth.hostname: {_shown(hostname)} is longer than a DNS name can be ({MAX_SUBDOMAIN} characters, "
        f"{MAX_LABEL} between dots; RFC 1123); use a shorter host name"
    )


def _storage_size(path: str, size: str) -> str:
    """`size` matches models.QUANTITY (a decimal and Ki..Ti); its bytes must be above zero and fit an int64."""
    number, unit = size[:-2], size[-2:]
    amount = Decimal(number) * _BYTES[unit]
    if amount <= 0:
        return f"{path}: {size!r} is zero; a PersistentVolumeClaim must request more than zero storage; give e.g. 50Gi"
    if amount > MAX_QUANTITY:
        return f"{path}: {_shown(size)} is more than a Kubernetes quantity holds (2^63-1 bytes, 8Ei); give e.g. 50Gi"
    return ""


def _duration(path: str, duration: str) -> str:
    """`duration` matches models.DURATION (a whole number and one unit); it must be above zero and fit an int64."""
    digits = duration[:-1].lstrip("0")
    seconds = int(digits or "0") * _SECONDS[duration[-1]] if len(digits) <= 20 else MAX_DURATION_SECONDS + 1
    if seconds == 0:
        return f"{path}: {duration!r} is zero, which Prometheus reads as its default; give e.g. 30s or 15d"
    if seconds > MAX_DURATION_SECONDS:
        return f"{path}: {_shown(duration)} is longer than Prometheus can hold (292 years); give e.g. 30s or 15d"
    return ""


def _counts(spec: ClusterSpec) -> list[str]:
    counts: list[tuple[str, int | None, int, str]] = []
    for i, pool in enumerate(spec.pools):
        named = len(pool.backend.node_names) if isinstance(pool.backend, ExistingBackendSpec) else None
        for key, value in (("nodes", pool.nodes), ("minNodes", pool.min_nodes), ("maxNodes", pool.max_nodes),
                           ("backend.nodeNames", named)):  # fmt: skip
            counts.append((f"pools[{i}].{key}", value, MAX_NODES, "nodes"))
    for i, model in enumerate(spec.models):
        counts.append((f"models[{i}].replicas", model.replicas, MAX_PODS, "pods"))
        if model.autoscaling is not None:
            counts.append((f"models[{i}].autoscaling.minReplicas", model.autoscaling.min_replicas, MAX_PODS, "pods"))
            counts.append((f"models[{i}].autoscaling.maxReplicas", model.autoscaling.max_replicas, MAX_PODS, "pods"))
    counts.append(("gateway.minReplicas", spec.gateway.min_replicas, MAX_PODS, "pods"))
    counts.append(("gateway.maxReplicas", spec.gateway.max_replicas, MAX_PODS, "pods"))
    counts.append(("auth.replicas", spec.auth.replicas, MAX_PODS, "pods"))
    return [
        f"{path}: {value} is more than the {limit} {what} a Kubernetes cluster holds ({CLUSTER_LIMITS}); lower it"
        for path, value, limit, what in counts
        if value is not None and value > limit
    ]
