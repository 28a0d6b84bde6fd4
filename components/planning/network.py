"""Network reach of the serving namespace: the cluster DNS, and where weights are downloaded from by which pods.

Model servers reach the internet only when they must download themselves: a shared weights cache is filled by
a download Job (components/weights_download.py) and the servers run offline (HF_HUB_OFFLINE=1); a per-pod cache
is filled by each pod at start, so those pods keep egress to the source; a preloaded cache needs none.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from components.planning.types import CacheKind, NetworkPlan, SizingError, WeightsDownload
from components.spec import ClusterSpec

# huggingface.co serves files from a CDN (cdn-lfs, xet bridges) without published address ranges.
ANYWHERE = "0.0.0.0/0"
HTTPS_PORT = 443


def cidr_errors(field: str, values: list[str]) -> list[str]:
    errors = []
    for i, value in enumerate(values):
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            errors.append(f"{field}[{i}]: {value!r} is not a CIDR block ({exc}); write e.g. 10.20.0.0/16")
    return errors


def mirror_errors(spec: ClusterSpec) -> list[str]:
    source = spec.weights_source
    errors: list[str] = []
    if source.kind != "mirror":
        if source.url or source.cidrs:
            errors.append(f"weightsSource: url and cidrs belong to kind: mirror; remove them for kind: {source.kind}")
        return errors
    url = urlsplit(source.url or "")
    if url.scheme not in ("http", "https") or not url.hostname:
        errors.append("weightsSource.url: required for kind: mirror; the mirror's base URL, e.g. https://hf.corp")
    if not source.cidrs:
        errors.append(
            "weightsSource.cidrs: required for kind: mirror; the addresses the mirror answers on "
            "(a NetworkPolicy cannot name a host), e.g. [10.20.0.0/16]"
        )
    return errors + cidr_errors("weightsSource.cidrs", source.cidrs)


def resolve_network(spec: ClusterSpec) -> NetworkPlan:
    errors = cidr_errors("dns.addresses", spec.dns.addresses) + mirror_errors(spec)
    if not spec.dns.pod_labels:
        errors.append("dns.podLabels: must not be empty; the labels of the cluster DNS pods, e.g. {k8s-app: kube-dns}")
    source = spec.weights_source
    if source.kind == "preloaded" and spec.weights_cache == "per-pod":
        errors.append(
            "weightsSource.kind: preloaded needs weightsCache: shared; a per-pod cache starts empty with each pod"
        )
    if errors:
        raise SizingError(errors)
    cidrs = {"hub": [ANYWHERE], "mirror": list(source.cidrs), "preloaded": []}[source.kind]
    reason = {
        "hub": f"weights from huggingface.co: downloads reach {ANYWHERE}:{HTTPS_PORT} (its CDN has no fixed addresses)",
        "mirror": f"weights from the mirror {source.url}: downloads reach only {', '.join(source.cidrs)}:{source.port}",
        "preloaded": "weights preloaded into the caches by the operator: no pod reaches outside the cluster",
    }[source.kind]
    labels = ",".join(f"{k}={v}" for k, v in spec.dns.pod_labels.items())
    dns = f"DNS only to the pods {labels} in {spec.dns.namespace}" + "".join(f", {a}" for a in spec.dns.addresses)
    return NetworkPlan(
        dns_namespace=spec.dns.namespace,
        dns_pod_labels=dict(spec.dns.pod_labels),
        dns_cidrs=list(spec.dns.addresses),
        weights_source=source.kind,
        weights_endpoint=weights_endpoint(spec),
        weights_cidrs=cidrs,
        weights_port=source.port if source.kind == "mirror" else HTTPS_PORT,
        reason=f"{dns}; {reason}",
    )


def weights_download(cache: CacheKind, source: str) -> tuple[WeightsDownload, str]:
    """Who downloads a model's weights, and why."""
    if source == "preloaded":
        return "none", "preloaded by the operator; the servers run offline"
    if cache == "shared":
        return "job", "a download Job fills the shared cache first; the servers run offline, without internet egress"
    return "pod", "each pod downloads into its own cache at start, so the model servers keep egress to the source"


def weights_endpoint(spec: ClusterSpec) -> str:
    """HF_ENDPOINT of the downloads: the mirror's URL, or empty for huggingface.co."""
    source = spec.weights_source
    return (source.url or "").rstrip("/") if source.kind == "mirror" else ""


def weights_env(download: WeightsDownload, endpoint: str) -> dict[str, str]:
    """HF_HUB_OFFLINE for servers that never download; HF_ENDPOINT for those that download from a mirror."""
    if download != "pod":
        return {"HF_HUB_OFFLINE": "1"}
    return {"HF_ENDPOINT": endpoint} if endpoint else {}
