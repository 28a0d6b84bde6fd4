"""Error messages for the stack spec: pydantic's errors reworded, and the checks across fields.

Every message names the field path in the stack file (`models[3].tensorParallel`) and says how to fix it.
"""

from __future__ import annotations

import difflib
import re
import typing
from typing import Any

from pydantic import BaseModel

from components.spec.api_rules import api_rule_checks
from components.spec.models import (
    BACKEND_KINDS,
    DNS_LABEL,
    DURATION,
    QUANTITY,
    ClusterSpec,
    ExistingBackendSpec,
    GkeBackendSpec,
    GpuPoolSpec,
    KarpenterBackendSpec,
    ModelSpec,
    OvhBackendSpec,
    field_path,
    key_step,
)

# ---------------------------------------------------------------- pydantic's errors, reworded

_FIXES = {
    "missing": "required; add it",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "string_too_short": "must not be empty",
    "int_parsing": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "finite_number": "must be a finite number",
}


def describe(err: Any) -> str:
    """One pydantic error (an item of `ValidationError.errors()`) as `<field path>: <what and the fix>`."""
    loc: tuple[int | str, ...] = tuple(err["loc"])
    kind: str = err["type"]
    path = field_path(loc)
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        key = str(loc[-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"{path}: unknown key; {hint}allowed keys: {', '.join(allowed)}"
    if kind == "literal_error":
        return f"{path}: {value!r} is not allowed; use one of {ctx.get('expected', '')}"
    if kind == "union_tag_invalid":
        return f"{path}.kind: {ctx.get('tag')!r} is not a backend; use one of {', '.join(BACKEND_KINDS)}"
    if kind == "union_tag_not_found":
        return f"{path}.kind: required; use one of {', '.join(BACKEND_KINDS)}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == DNS_LABEL:
            return (
                f"{path}: {value!r} is not a valid name; use 1-40 lowercase letters, digits and '-', "
                "starting with a letter (it names Kubernetes objects)"
            )
        if ctx.get("pattern") == QUANTITY:
            return f"{path}: {value!r} is not a storage size; write e.g. 50Gi"
        if ctx.get("pattern") == DURATION:
            return f"{path}: {value!r} is not a duration; write e.g. 30s, 15d"
        return f"{path}: {value!r} must match {ctx.get('pattern')}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {
            "greater_than_equal": f">= {ctx.get('ge')}",
            "greater_than": f"> {ctx.get('gt')}",
            "less_than_equal": f"<= {ctx.get('le')}",
            "less_than": f"< {ctx.get('lt')}",
        }[kind]
        return f"{path}: {value!r} is out of range; use a value {bound}"
    if kind == "too_short":
        return f"{path}: must not be empty; list at least {ctx.get('min_length', 1)} item(s)"
    if kind in _FIXES:
        shown = "" if kind == "missing" else f" (got {value!r})"
        return f"{path}: {_FIXES[kind]}{shown}"
    return f"{path}: {err['msg']}"


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """Walk ClusterSpec along `loc` to the model that owns the unknown key; list its camelCase keys."""
    model: type[BaseModel] = ClusterSpec
    for part in loc:
        if isinstance(part, int):
            continue
        if part in BACKEND_KINDS:
            model = {  # type: ignore[assignment]
                "existing": ExistingBackendSpec,
                "karpenter": KarpenterBackendSpec,
                "gke": GkeBackendSpec,
                "ovh": OvhBackendSpec,
            }[str(part)]
            continue
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        if field is None:
            break
        inner = _model_in(field.annotation)
        if inner is None:
            break
        model = inner
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------- checks across fields


def cross_checks(spec: ClusterSpec) -> list[str]:
    """Checks across fields that need no catalog, in the order the stack file reads."""
    errors: list[str] = []
    errors += _duplicates("pools", [p.name for p in spec.pools], ".name")
    errors += _duplicates("models", [m.name for m in spec.models], ".name")
    errors += _duplicates("auth.clients", [c.name for c in spec.auth.clients], ".name")
    for i, pool in enumerate(spec.pools):
        errors += _check_pool(f"pools[{i}]", pool)
    pool_names = [p.name for p in spec.pools]
    for i, model in enumerate(spec.models):
        errors += _check_model(f"models[{i}]", model, pool_names, spec.monitoring.enabled)
    errors += _check_storage(spec)
    errors += _check_gateway(spec)
    errors += _check_auth(spec)
    errors += _check_allow_data_loss(spec)
    errors += _check_names(spec)
    errors += api_rule_checks(spec)
    return errors


def _check_pool(at: str, pool: GpuPoolSpec) -> list[str]:
    backend = pool.backend
    if isinstance(backend, ExistingBackendSpec):
        errors = _check_existing_pool(at, pool, backend)
    else:
        errors = _check_sized_pool(at, pool)
    if pool.min_nodes is not None and pool.max_nodes is not None and pool.min_nodes > pool.max_nodes:
        errors.append(
            f"{at}.minNodes: {pool.min_nodes} is greater than maxNodes {pool.max_nodes}; "
            "lower minNodes or raise maxNodes"
        )
    errors += _check_gke_driver(at, pool)
    if (
        pool.nvlink_domain is not None
        and pool.gpus_per_node is not None
        and pool.gpus_per_node % pool.nvlink_domain != 0
    ):
        errors.append(
            f"{at}.nvlinkDomain: {pool.nvlink_domain} does not divide gpusPerNode {pool.gpus_per_node}; "
            "use a divisor of the GPUs per node"
        )
    return errors


def _check_existing_pool(at: str, pool: GpuPoolSpec, backend: ExistingBackendSpec) -> list[str]:
    """Named nodes: their count is the pool size, and nothing can tell how many GPUs they have."""
    count = len(backend.node_names)
    errors = _duplicates(f"{at}.backend.nodeNames", backend.node_names, "")
    if pool.nodes is not None and pool.nodes != count:
        errors.append(
            f"{at}.nodes: {pool.nodes} but backend.nodeNames lists {count} node(s); "
            "remove `nodes` (it is the number of named nodes) or name every node"
        )
    if pool.min_nodes is not None or pool.max_nodes is not None:
        errors.append(
            f"{at}.minNodes: existing nodes do not scale; remove minNodes/maxNodes "
            "and list the nodes in backend.nodeNames"
        )
    if pool.gpus_per_node is None:
        errors.append(f"{at}.gpusPerNode: required for existing nodes; add how many GPUs each node has")
    return errors


def _check_sized_pool(at: str, pool: GpuPoolSpec) -> list[str]:
    """Pools the program provisions: a fixed size or bounds, one of the two."""
    errors: list[str] = []
    if pool.nodes is not None and (pool.min_nodes is not None or pool.max_nodes is not None):
        errors.append(f"{at}.nodes: give either nodes (a fixed size) or minNodes/maxNodes, not both")
    if pool.nodes is None and pool.max_nodes is None:
        errors.append(f"{at}.maxNodes: required for a {pool.backend.kind} pool; add maxNodes (or nodes)")
    if pool.nodes == 0:
        errors.append(f"{at}.nodes: a pool of 0 nodes can serve nothing; use minNodes: 0 and maxNodes")
    return errors


def _check_gke_driver(at: str, pool: GpuPoolSpec) -> list[str]:
    """Exactly one of GKE and the GPU Operator installs the driver."""
    if not isinstance(pool.backend, GkeBackendSpec):
        return []
    errors: list[str] = []
    version = pool.backend.driver_version
    if pool.install_driver and version not in (None, "INSTALLATION_DISABLED"):
        errors.append(
            f"{at}.backend.driverVersion: {version} has GKE install the driver, but installDriver: true has "
            "the GPU Operator install it; set driverVersion: INSTALLATION_DISABLED or installDriver: false"
        )
    if version == "INSTALLATION_DISABLED" and not pool.install_driver:
        errors.append(
            f"{at}.installDriver: driverVersion INSTALLATION_DISABLED leaves the nodes without a driver; "
            "set installDriver: true (the GPU Operator installs it) or let GKE install it (DEFAULT or LATEST)"
        )
    return errors


# A Hugging Face model id as huggingface_hub's validate_repo_id takes it: [namespace/]name of word characters, '-'
# and '.', at most 96 each, not starting or ending with '-' or '.', without '--' or '..', not ending in '.git'.
HF_MODEL_ID = re.compile(r"(\b[\w\-.]{1,96}\b/)?\b[\w\-.]{1,96}\b")


def _check_model(at: str, model: ModelSpec, pool_names: list[str], monitoring_enabled: bool) -> list[str]:
    errors: list[str] = []
    model_id = model.model
    if not HF_MODEL_ID.fullmatch(model_id) or "--" in model_id or ".." in model_id or model_id.endswith(".git"):
        errors.append(
            f"{at}.model: {model_id!r} is not a Hugging Face model id; write it as huggingface.co names the model, "
            "e.g. Qwen/Qwen3-32B"
        )
    if model.pool not in pool_names:
        close = difflib.get_close_matches(model.pool, pool_names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        errors.append(f"{at}.pool: no pool named {model.pool!r}; {hint}pools are: {', '.join(pool_names)}")
    errors += _check_model_replicas(at, model, monitoring_enabled)
    if model.deterministic and model.prefix_caching:
        errors.append(
            f"{at}.prefixCaching: deterministic models run with prefix caching off; "
            "remove prefixCaching or set deterministic: false"
        )
    if model.task not in (None, "generate") and model.tool_call_parser:
        errors.append(f"{at}.toolCallParser: only generate models call tools; remove it")
    for key in model.env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            errors.append(f"{at}.env{key_step(key)}: not a valid environment variable name")
    return errors


def _check_model_replicas(at: str, model: ModelSpec, monitoring_enabled: bool) -> list[str]:
    errors: list[str] = []
    if model.replicas is not None and model.autoscaling is not None:
        errors.append(f"{at}.replicas: give either replicas (fixed) or autoscaling (min/max), not both")
    if model.autoscaling and model.autoscaling.min_replicas > model.autoscaling.max_replicas:
        a = model.autoscaling
        errors.append(
            f"{at}.autoscaling.minReplicas: {a.min_replicas} is greater than maxReplicas "
            f"{a.max_replicas}; lower minReplicas or raise maxReplicas"
        )
    if model.autoscaling and not monitoring_enabled:
        errors.append(
            f"{at}.autoscaling: the HPA reads custom metrics from Prometheus; set monitoring.enabled: true "
            "or give fixed replicas"
        )
    if model.autoscaling and model.autoscaling.target is not None:
        low, high, unit = TARGET_RANGES[model.autoscaling.metric]
        if not low <= model.autoscaling.target <= high:
            errors.append(
                f"{at}.autoscaling.target: {model.autoscaling.target:g} is outside {low:g}..{high:g}, the range of "
                f"{model.autoscaling.metric} ({unit}); give a target in its units"
            )
    return errors


def _check_storage(spec: ClusterSpec) -> list[str]:
    if spec.weights_storage_class or spec.storage_class:
        return []
    return [
        f"storageClass: every model caches its weights on a PVC ({spec.models[0].name} first); name a storage "
        "class here or in weightsStorageClass (ReadWriteMany when a pool has more than one node)"
    ]


# Namespaces the stack must not take: Kubernetes' own (a default-deny policy there cuts cluster DNS) and the ones
# the charts install into.
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "monitoring", "gpu-operator",
                       "envoy-gateway-system", "lws-system")  # fmt: skip
# Objects of the serving namespace a model's own objects (Deployment, Service, PVC <name>-cache) would collide with.
RESERVED_MODEL_NAMES = ("llm-gateway", "llm-gateway-config", "llm-api", "litellm-master-key", "litellm-inference-key",
                        "hf-token", "llm-api-client-keys", "llm-gateway-credential")  # fmt: skip
# A Gateway API duration holds at most 5 digits per unit; the route's timeout adds 60 s to the gateway's.
MAX_GATEWAY_TIMEOUT_SECONDS = 99999 - 60
# HPA targets in each metric's own units.
TARGET_RANGES = {
    "vllm:num_requests_running": (0.001, 100000.0, "requests per pod"),
    "vllm:num_requests_waiting": (0.001, 100000.0, "requests per pod"),
    "vllm:kv_cache_usage_perc": (0.001, 1.0, "a fraction, 0-1"),
    "DCGM_FI_DEV_GPU_UTIL": (1.0, 100.0, "percent"),
}
HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _check_names(spec: ClusterSpec) -> list[str]:
    errors: list[str] = []
    if spec.namespace in RESERVED_NAMESPACES:
        errors.append(
            f"namespace: {spec.namespace!r} belongs to Kubernetes or to a chart this stack installs; "
            "give the serving stack its own, e.g. llm"
        )
    for i, model in enumerate(spec.models):
        if model.name in RESERVED_MODEL_NAMES:
            errors.append(f"models[{i}].name: {model.name!r} is taken by the gateway's objects; choose another name")
    owner: dict[str, str] = {}
    for i, pool in enumerate(spec.pools):
        for j, node in enumerate(getattr(pool.backend, "node_names", [])):
            if owner.get(node, pool.name) != pool.name:  # twice in one pool is reported with the pool
                errors.append(
                    f"pools[{i}].backend.nodeNames[{j}]: {node!r} is already in pool {owner[node]!r}; "
                    "a node belongs to one pool"
                )
            owner.setdefault(node, pool.name)
    hostname = spec.auth.hostname
    if hostname is not None and not HOSTNAME.fullmatch(hostname):
        errors.append(f"auth.hostname: {hostname!r} is not a host name; give the name only, e.g. llm.example.com")
    if spec.gateway.timeout_seconds > MAX_GATEWAY_TIMEOUT_SECONDS:
        errors.append(
            f"gateway.timeoutSeconds: {spec.gateway.timeout_seconds} is over {MAX_GATEWAY_TIMEOUT_SECONDS}, "
            "the longest the route's Gateway API timeout can say; lower it"
        )
    return errors


def _check_allow_data_loss(spec: ClusterSpec) -> list[str]:
    known = ["namespace", "monitoring", *(m.name for m in spec.models)]
    return [
        f"allowDataLoss[{i}]: {name!r} names nothing that holds data; use one of {', '.join(known)}"
        for i, name in enumerate(spec.allow_data_loss)
        if name not in known
    ]


def _check_gateway(spec: ClusterSpec) -> list[str]:
    errors: list[str] = []
    g = spec.gateway
    if g.min_replicas > g.max_replicas:
        errors.append(
            f"gateway.minReplicas: {g.min_replicas} is greater than maxReplicas {g.max_replicas}; "
            "lower minReplicas or raise maxReplicas"
        )
    if g.kind == "vllm-router" and g.fallbacks:
        errors.append(
            "gateway.fallbacks: vllm-router falls back between replicas of a model, never to another model; "
            "use kind: litellm (or leave kind out) for model fallbacks, or drop gateway.fallbacks to keep the "
            "faster vllm-router"
        )
    served = {m.name for m in spec.models}
    for source, targets in g.fallbacks.items():
        for name in [source, *targets]:
            if name not in served:
                errors.append(
                    f"gateway.fallbacks{key_step(source)}: {name!r} is not a served model; "
                    f"served models are: {', '.join(sorted(served))}"
                )
    return errors


def _check_auth(spec: ClusterSpec) -> list[str]:
    if not spec.auth.clients:
        return ["auth.clients: list at least one client; the API gateway admits only requests with a client's key"]
    if not spec.auth.tls_secret_name and not spec.auth.allow_plain_http:
        return [
            "auth.tlsSecretName: client keys must not travel in clear text; name the TLS Secret "
            "or set auth.allowPlainHttp: true (dev only)"
        ]
    return []


def _duplicates(path: str, names: list[str], suffix: str) -> list[str]:
    seen: set[str] = set()
    errors = []
    for i, name in enumerate(names):
        if name in seen:
            errors.append(f"{path}[{i}]{suffix}: {name!r} is used twice; names must be unique")
        seen.add(name)
    return errors
