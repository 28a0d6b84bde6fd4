"""The stack config under `llm-cluster:cluster`, as pydantic models.

`ClusterSpec` is what the operator asks for. It is validated here for shape and for facts that need
no catalog (names unique, pools referenced exist, bounds ordered); facts that need the GPU or model
catalog (TP divides the heads, the GPU exists) are checked by `components.planning`. Every error names
the field path in the stack file (`models[3].tensorParallel`) and says how to fix it.
"""

from __future__ import annotations

import difflib
import re
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

# Names become Kubernetes object names and label values, so they follow RFC 1035 labels.
DNS_LABEL = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)$"
DURATION = r"^[0-9]+(s|m|h|d|w|y)$"


class SpecError(ValueError):
    """Invalid stack config. `errors` holds one line per problem: `<field path>: <what and the fix>`."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


class SpecModel(BaseModel):
    """Base: camelCase keys in YAML, snake_case in Python, unknown keys are errors."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


# ---------------------------------------------------------------- pools


class ExistingBackendSpec(SpecModel):
    """Nodes someone already bought: the program labels and taints them (NodePatch)."""

    kind: Literal["existing"]
    node_names: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)


NonEmpty = Annotated[str, Field(min_length=1)]


class KarpenterBackendSpec(SpecModel):
    """EKS with Karpenter already running: an EC2NodeClass and a NodePool per pool."""

    kind: Literal["karpenter"]
    # Subnets and security groups are found by the tag karpenter.sh/discovery=<clusterName>.
    cluster_name: NonEmpty
    # IAM role of the nodes (the one Karpenter's node instance profile uses).
    node_role: NonEmpty
    # Default: every catalog instance type with the pool's GPU and GPUs per node.
    instance_types: list[NonEmpty] = []
    capacity_type: Literal["on-demand", "spot"] = "on-demand"
    # Both AMI families pick their NVIDIA variant on GPU instances (driver and toolkit included).
    ami_family: Literal["al2023", "bottlerocket"] = "al2023"
    volume_size_gib: Annotated[int, Field(ge=50, le=16384)] = 300


class GkeBackendSpec(SpecModel):
    """A GKE node pool with guest accelerators."""

    kind: Literal["gke"]
    project: NonEmpty
    location: NonEmpty  # region or zone of the cluster
    cluster: NonEmpty
    machine_type: str | None = None
    # Default: GKE installs the driver (DEFAULT) unless the pool has the GPU Operator install it
    # (installDriver: true), which needs INSTALLATION_DISABLED.
    driver_version: Literal["DEFAULT", "LATEST", "INSTALLATION_DISABLED"] | None = None
    spot: bool = False
    disk_size_gb: Annotated[int, Field(ge=50, le=65536)] = 300


class OvhBackendSpec(SpecModel):
    """An OVHcloud Managed Kubernetes node pool with a GPU flavor."""

    kind: Literal["ovh"]
    service_name: NonEmpty  # the Public Cloud project id
    kube_id: NonEmpty  # the MKS cluster id
    flavor: str | None = None
    # Monthly billing is cheaper for nodes that stay; autoscaled nodes are billed hourly.
    monthly_billed: bool = False


BackendSpec = Annotated[
    ExistingBackendSpec | KarpenterBackendSpec | GkeBackendSpec | OvhBackendSpec,
    Field(discriminator="kind"),
]
BACKEND_KINDS = ("existing", "karpenter", "gke", "ovh")


class GpuPoolSpec(SpecModel):
    """A set of identical GPU nodes that models are placed on."""

    name: Annotated[str, Field(pattern=DNS_LABEL)]
    gpu: str
    gpus_per_node: Annotated[int, Field(ge=1, le=72)] | None = None
    nodes: Annotated[int, Field(ge=0)] | None = None
    min_nodes: Annotated[int, Field(ge=0)] | None = None
    max_nodes: Annotated[int, Field(ge=1)] | None = None
    # Overrides the catalog when a node's NVLink topology differs (e.g. bridged pairs of RTX 3090).
    nvlink_domain: Annotated[int, Field(ge=1)] | None = None
    taint: bool = True
    # The GPU Operator installs these only on pools that ask (host images often ship them).
    install_driver: bool = False
    install_toolkit: bool = False
    backend: BackendSpec


# ---------------------------------------------------------------- models

ScalingMetric = Literal[
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "DCGM_FI_DEV_GPU_UTIL",
]


class ModelAutoscalingSpec(SpecModel):
    """HPA bounds for one model. Target defaults come from the plan (KV-derived concurrency)."""

    min_replicas: Annotated[int, Field(ge=1)] = 1
    max_replicas: Annotated[int, Field(ge=1)]
    metric: ScalingMetric = "vllm:num_requests_running"
    target: Annotated[float, Field(gt=0)] | None = None
    scale_up_stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] | None = None
    scale_down_stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] | None = None


class RopeScalingSpec(SpecModel):
    """Context extension. Only YaRN, the method vLLM and the Qwen model cards document."""

    type: Literal["yarn"] = "yarn"
    factor: Annotated[float, Field(gt=1, le=64)]
    original_max_position: Annotated[int, Field(ge=1)] | None = None


class ModelSloSpec(SpecModel):
    ttft_p95_seconds: Annotated[float, Field(gt=0)] = 2.0


Quantization = Literal["auto", "bf16", "fp16", "fp8", "awq", "gptq", "bitsandbytes"]
KvCacheDtype = Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"]


class ModelSpec(SpecModel):
    """One served model. `name` is what clients send as `model`."""

    name: Annotated[str, Field(pattern=DNS_LABEL)]
    model: Annotated[str, Field(min_length=1)]
    revision: str | None = None
    pool: str
    # Default: the catalog's (or config.json's) task for the model.
    task: Literal["generate", "embed", "score"] | None = None
    quantization: Quantization = "auto"
    kv_cache_dtype: KvCacheDtype = "auto"
    max_model_len: Annotated[int, Field(ge=16)] | None = None
    rope_scaling: RopeScalingSpec | None = None
    replicas: Annotated[int, Field(ge=1)] | None = None
    autoscaling: ModelAutoscalingSpec | None = None
    objective: Literal["throughput", "latency"] = "throughput"
    min_concurrency: Annotated[int, Field(ge=1)] = 1
    deterministic: bool = False
    seed: Annotated[int, Field(ge=0)] = 0
    prefix_caching: bool | None = None
    tool_call_parser: str | None = None
    tensor_parallel: Annotated[int, Field(ge=1)] | None = None
    pipeline_parallel: Annotated[int, Field(ge=1)] | None = None
    gpu_memory_utilization: Annotated[float, Field(ge=0.5, le=0.98)] = 0.9
    trust_remote_code: bool | None = None
    # For models outside the catalog: a local copy of the HF config.json (relative to the project).
    config_path: str | None = None
    params_b: Annotated[float, Field(gt=0)] | None = None
    extra_args: list[str] = []
    env: dict[str, str] = {}
    slo: ModelSloSpec = ModelSloSpec()

    @property
    def min_replicas(self) -> int:
        return self.autoscaling.min_replicas if self.autoscaling else (self.replicas or 1)

    @property
    def max_replicas(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling else (self.replicas or 1)


# ---------------------------------------------------------------- gateway, auth, autoscaling, monitoring


class GatewaySpec(SpecModel):
    """The LLM gateway: routes OpenAI-compatible requests to model servers. Never owns client auth."""

    # Default (None): vllm-router, which added under 1 ms to TTFT at 128 concurrent streams where LiteLLM
    # added 1.9-5.2 s (bench/results/gateway_overhead.md); LiteLLM when the stack serves rerank models, which
    # the router cannot pass through.
    kind: Literal["litellm", "vllm-router"] | None = None
    min_replicas: Annotated[int, Field(ge=1)] = 2
    max_replicas: Annotated[int, Field(ge=1)] = 4
    # LiteLLM worker processes per pod (one CPU each): 2 workers on 2 CPUs carried 1.7x the requests/s of 1
    # with a fifth of the added TTFT at 32 streams (bench/results/gateway_overhead.md).
    workers: Annotated[int, Field(ge=1, le=32)] = 2
    routing_policy: Literal["cache_aware", "round_robin", "random", "power_of_two"] = "cache_aware"
    num_retries: Annotated[int, Field(ge=0, le=10)] = 2
    timeout_seconds: Annotated[int, Field(ge=1)] = 600
    fallbacks: dict[str, list[str]] = {}
    cpu_target_percent: Annotated[int, Field(ge=10, le=95)] = 70


class RateLimitSpec(SpecModel):
    requests: Annotated[int, Field(ge=1)]
    unit: Literal["Second", "Minute", "Hour", "Day"] = "Minute"


class ClientSpec(SpecModel):
    """A client of the API gateway: one API key each."""

    name: Annotated[str, Field(pattern=DNS_LABEL)]
    rate_limit: RateLimitSpec | None = None
    # Name of an operator-made Secret holding the key; otherwise a key is generated.
    key_secret: str | None = None


class AuthSpec(SpecModel):
    """The API gateway in front of the LLM gateway: client keys, TLS, rate limits."""

    hostname: str | None = None
    tls_secret_name: str | None = None
    allow_plain_http: bool = False
    clients: list[ClientSpec] = []


class AutoscalingSpec(SpecModel):
    """Cluster-wide HPA defaults; models override them in `models[i].autoscaling`."""

    scale_up_stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] = 0
    scale_down_stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] = 600


class VolumeSpec(SpecModel):
    size: Annotated[str, Field(pattern=QUANTITY)]


class MonitoringSpec(SpecModel):
    """kube-prometheus-stack with persistent volumes, dashboards and alerts."""

    enabled: bool = True
    retention: Annotated[str, Field(pattern=DURATION)] = "15d"
    scrape_interval: Annotated[str, Field(pattern=DURATION)] = "30s"
    prometheus: VolumeSpec = VolumeSpec(size="50Gi")
    grafana: VolumeSpec = VolumeSpec(size="10Gi")
    alertmanager: VolumeSpec = VolumeSpec(size="10Gi")
    alertmanager_config_secret: str | None = None


class VllmImageSpec(SpecModel):
    """Build the model-server image: the pinned vLLM image plus extra pip packages, pushed to a registry."""

    # Where to push, e.g. registry.example.com/llm/vllm-openai (credentials: llm-cluster:registryUsername and
    # the secret llm-cluster:registryPassword).
    repository: Annotated[str, Field(pattern=r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+$")]
    extras: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-\[\],]+(==|>=|~=)[A-Za-z0-9_.+-]+$")]] = []
    platform: Literal["linux/amd64", "linux/arm64"] = "linux/amd64"


class ImagesSpec(SpecModel):
    vllm: VllmImageSpec | None = None


class ClusterSpec(SpecModel):
    """Everything one stack asks for."""

    kubernetes_version: Annotated[str, Field(pattern=r"^1\.[0-9]{2}$")] = "1.31"
    namespace: Annotated[str, Field(pattern=DNS_LABEL)] = "llm"
    # Storage class of every PVC; weightsStorageClass overrides it for the model weight caches, which
    # need ReadWriteMany when a model runs more than one pod.
    storage_class: str | None = None
    weights_storage_class: str | None = None
    # shared: one PVC per model, ReadWriteMany when the model runs more than one pod.
    # per-pod: an ephemeral ReadWriteOnce volume per pod, for storage without ReadWriteMany (each pod downloads).
    weights_cache: Literal["shared", "per-pod"] = "shared"
    pools: list[GpuPoolSpec] = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    gateway: GatewaySpec = GatewaySpec()
    auth: AuthSpec = AuthSpec()
    autoscaling: AutoscalingSpec = AutoscalingSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    images: ImagesSpec = ImagesSpec()


# ---------------------------------------------------------------- loading and error messages


def load_cluster_spec(raw: object) -> ClusterSpec:
    """Validate the `llm-cluster:cluster` object; raise SpecError listing every problem."""
    if not isinstance(raw, dict):
        raise SpecError([f"llm-cluster:cluster: expected a mapping with pools and models, got {type(raw).__name__}"])
    try:
        spec = ClusterSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError([_describe(err) for err in exc.errors()]) from None
    errors = _cross_checks(spec)
    if errors:
        raise SpecError(errors)
    return spec


def field_path(loc: tuple[int | str, ...]) -> str:
    """('models', 3, 'tensorParallel') -> 'models[3].tensorParallel'."""
    path = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif previous == "backend" and part in BACKEND_KINDS:
            pass  # pydantic puts the union's tag in the path; the stack file has no such key
        else:
            path += f".{part}" if path else part
        previous = part
    return path or "llm-cluster:cluster"


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
}


def _describe(err: Any) -> str:
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


def _cross_checks(spec: ClusterSpec) -> list[str]:
    """Checks across fields that need no catalog."""
    errors: list[str] = []
    errors += _duplicates("pools", [p.name for p in spec.pools], ".name")
    errors += _duplicates("models", [m.name for m in spec.models], ".name")
    errors += _duplicates("auth.clients", [c.name for c in spec.auth.clients], ".name")

    pool_names = [p.name for p in spec.pools]
    for i, pool in enumerate(spec.pools):
        at = f"pools[{i}]"
        if isinstance(pool.backend, ExistingBackendSpec):
            count = len(pool.backend.node_names)
            errors += _duplicates(f"{at}.backend.nodeNames", pool.backend.node_names, "")
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
        else:
            if pool.nodes is not None and (pool.min_nodes is not None or pool.max_nodes is not None):
                errors.append(f"{at}.nodes: give either nodes (a fixed size) or minNodes/maxNodes, not both")
            if pool.nodes is None and pool.max_nodes is None:
                errors.append(f"{at}.maxNodes: required for a {pool.backend.kind} pool; add maxNodes (or nodes)")
            if pool.nodes == 0:
                errors.append(f"{at}.nodes: a pool of 0 nodes can serve nothing; use minNodes: 0 and maxNodes")
        if pool.min_nodes is not None and pool.max_nodes is not None and pool.min_nodes > pool.max_nodes:
            errors.append(
                f"{at}.minNodes: {pool.min_nodes} is greater than maxNodes {pool.max_nodes}; "
                "lower minNodes or raise maxNodes"
            )
        if isinstance(pool.backend, GkeBackendSpec):
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
        if (
            pool.nvlink_domain is not None
            and pool.gpus_per_node is not None
            and pool.gpus_per_node % pool.nvlink_domain != 0
        ):
            errors.append(
                f"{at}.nvlinkDomain: {pool.nvlink_domain} does not divide gpusPerNode {pool.gpus_per_node}; "
                "use a divisor of the GPUs per node"
            )

    served = {m.name for m in spec.models}
    for i, model in enumerate(spec.models):
        at = f"models[{i}]"
        if model.pool not in pool_names:
            close = difflib.get_close_matches(model.pool, pool_names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            errors.append(f"{at}.pool: no pool named {model.pool!r}; {hint}pools are: {', '.join(pool_names)}")
        if model.replicas is not None and model.autoscaling is not None:
            errors.append(f"{at}.replicas: give either replicas (fixed) or autoscaling (min/max), not both")
        if model.autoscaling and model.autoscaling.min_replicas > model.autoscaling.max_replicas:
            a = model.autoscaling
            errors.append(
                f"{at}.autoscaling.minReplicas: {a.min_replicas} is greater than maxReplicas "
                f"{a.max_replicas}; lower minReplicas or raise maxReplicas"
            )
        if model.autoscaling and not spec.monitoring.enabled:
            errors.append(
                f"{at}.autoscaling: the HPA reads custom metrics from Prometheus; set monitoring.enabled: true "
                "or give fixed replicas"
            )
        if model.deterministic and model.prefix_caching:
            errors.append(
                f"{at}.prefixCaching: deterministic models run with prefix caching off; "
                "remove prefixCaching or set deterministic: false"
            )
        if model.task not in (None, "generate") and model.tool_call_parser:
            errors.append(f"{at}.toolCallParser: only generate models call tools; remove it")
        for key in model.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                errors.append(f"{at}.env.{key}: not a valid environment variable name")

    if not (spec.weights_storage_class or spec.storage_class):
        errors.append(
            f"storageClass: every model caches its weights on a PVC ({spec.models[0].name} first); name a storage "
            "class here or in weightsStorageClass (ReadWriteMany for models that run more than one pod)"
        )

    g = spec.gateway
    if g.min_replicas > g.max_replicas:
        errors.append(
            f"gateway.minReplicas: {g.min_replicas} is greater than maxReplicas {g.max_replicas}; "
            "lower minReplicas or raise maxReplicas"
        )
    for source, targets in g.fallbacks.items():
        for name in [source, *targets]:
            if name not in served:
                errors.append(
                    f"gateway.fallbacks.{source}: {name!r} is not a served model; "
                    f"served models are: {', '.join(sorted(served))}"
                )
    if not spec.auth.clients:
        errors.append(
            "auth.clients: list at least one client; the API gateway admits only requests with a client's key"
        )
    elif not spec.auth.tls_secret_name and not spec.auth.allow_plain_http:
        errors.append(
            "auth.tlsSecretName: client keys must not travel in clear text; name the TLS Secret "
            "or set auth.allowPlainHttp: true (dev only)"
        )
    return errors


def _duplicates(path: str, names: list[str], suffix: str) -> list[str]:
    seen: set[str] = set()
    errors = []
    for i, name in enumerate(names):
        if name in seen:
            errors.append(f"{path}[{i}]{suffix}: {name!r} is used twice; names must be unique")
        seen.add(name)
    return errors
