"""The plan's types: what sizing answers (Sizing, ModelPlan, PoolPlan, ClusterPlan), fully resolved for the
components; what it is asked (GpuShape, SizingRequest) is in requests.py, re-exported here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from components.planning.prediction_types import PredictionPlan
from components.planning.requests import CLI_MAX_NODES as CLI_MAX_NODES
from components.planning.requests import GpuShape as GpuShape
from components.planning.requests import Objective as Objective
from components.planning.requests import SizingError as SizingError
from components.planning.requests import SizingRequest as SizingRequest
from components.planning.sharing_types import WHOLE_GPU_RESOURCE, ModelSharing, PoolSharing
from components.spec import (
    AuthSpec,
    AutoscalingSpec,
    ExistingBackendSpec,
    GkeBackendSpec,
    ImagesSpec,
    KarpenterBackendSpec,
    ModelSloSpec,
    MonitoringSpec,
    OvhBackendSpec,
    ScalingMetric,
    SecretEnvSpec,
    ServiceType,
)


class PlanModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MemoryPlan(PlanModel):
    """GiB per GPU of the most loaded pipeline stage."""

    gpu_total: float
    usable: float  # vLLM's budget: gpu_total x gpu_memory_utilization
    weights: float
    activation: float
    non_torch: float
    # vLLM's CUDA-graph estimate, where the release takes it from the budget before the KV cache (0.33; memory.py)
    cuda_graphs: float = 0.0
    kv_cache: float  # what is left for the KV cache
    kv_needed: float  # KV of min_concurrency full-length requests


class Sizing(PlanModel):
    """How one model runs on one GPU shape."""

    model: str
    task: str
    gpu: str
    objective: str
    vllm_version: str  # the release the arguments, environment and batch defaults are for
    fits: bool
    tp: int
    pp: int
    gpus_per_replica: int
    nodes_per_replica: int
    weight_dtype: str
    kv_cache_dtype: str
    weights_total_gib: float  # in GPU memory, all GPUs of a replica
    checkpoint_gib: float  # on disk, as downloaded (a 16-bit checkpoint quantized at load time stays 16-bit)
    gpus_per_pod: int
    max_model_len: int
    rope_type: str  # as vLLM names it: the config's own (default, llama3, yarn, none), or yarn from ropeScaling
    max_num_seqs: int
    max_num_batched_tokens: int
    memory: MemoryPlan
    kv_cache_tokens: int | None
    max_concurrency: float | None
    vllm_args: list[str]
    env: dict[str, str]
    warnings: list[str]
    reasons: list[str]


WorkloadKind = Literal["Deployment", "LeaderWorkerSet"]
CacheKind = Literal["shared", "per-pod"]
AccessMode = Literal["ReadWriteOnce", "ReadWriteMany"]
# job: a Job fills the shared cache, model servers run offline; pod: each pod downloads into its own cache;
# none: the operator preloads the cache.
WeightsDownload = Literal["job", "pod", "none"]
WeightsSource = Literal["hub", "mirror", "preloaded"]
GatewayKind = Literal["litellm", "vllm-router"]


class PodPlan(PlanModel):
    """One model-server pod: resources, probes and shutdown, each number explained in `reasons`."""

    gpus: int
    gpu_resource: str = WHOLE_GPU_RESOURCE  # nvidia.com/gpu, or one nvidia.com/gpu.shared slice (sharing.py)
    cpu_request: int
    cpu_limit: int
    memory_gib: int  # request = limit: host memory plus the memory-backed /dev/shm
    shm_gib: int
    probe_period_seconds: int
    startup_seconds: int  # the startup probe's budget: download and load the checkpoint
    startup_failure_threshold: int
    progress_deadline_seconds: int
    termination_grace_seconds: int
    drain_delay_seconds: int  # preStop waits this long for the endpoint to leave the Service
    drain_seconds: int  # then up to this long for running and waiting requests to finish
    reasons: list[str]


class CachePlan(PlanModel):
    """The weights cache (HF_HOME) of a model: one shared claim, or one ephemeral claim per pod."""

    kind: CacheKind
    access_mode: AccessMode
    size_gib: int
    storage_class: str
    reason: str
    protect: bool  # pulumi refuses to replace or delete it unless allowDataLoss names the model
    download: WeightsDownload
    download_reason: str


class AutoscalingPlan(PlanModel):
    """A model's HPA, every value decided."""

    min_replicas: int
    max_replicas: int
    metric: ScalingMetric
    target: float
    target_reason: str
    scale_up_stabilization_seconds: int
    scale_down_stabilization_seconds: int


class ModelPlan(Sizing):
    """A sized model of a stack, with its pool, replica bounds, workload, pods and cache."""

    name: str
    revision: str | None
    pool: str
    image: str  # the upstream image of its vLLM release (images.vllm replaces it with the stack's build)
    min_replicas: int
    max_replicas: int
    autoscaling: AutoscalingPlan | None  # None: fixed replicas, no HPA
    slo: ModelSloSpec
    workload: WorkloadKind
    workload_reason: str
    pod: PodPlan
    cache: CachePlan
    secret_env: dict[str, SecretEnvSpec]  # env vars from keys of Secrets (valueFrom.secretKeyRef), after `env`
    gated: bool  # Hugging Face serves the weights only with llm-cluster:hfToken (catalog)
    sharing: ModelSharing | None = None  # None: whole GPUs; else one slice of a shared GPU (sharing.py)
    prediction: PredictionPlan | None = None  # None: not predicted (pooling model, GPU slice); layout_choice.py


class DirectRoute(PlanModel):
    """Paths the API gateway sends straight to one model's Service (port 8000), past the LLM gateway: vLLM's
    rerank under vllm-router, which does not route it. Same client keys and rate limits (the same HTTPRoute)."""

    model: str  # its Service has the model's name (components/model_server.py)
    paths: list[str]
    reason: str


class GatewayPlan(PlanModel):
    """The LLM gateway with its kind, ports and resources decided."""

    kind: GatewayKind
    # Why this kind, and what it costs: model fallbacks (LiteLLM only) against the measured added latency.
    kind_reason: str
    # The exact paths clients may call through the API gateway to the LLM gateway: the inference endpoints the
    # stack's models serve and the models list. Nothing else of either gateway (admin, keys, MCP, health, metrics)
    # is routed. With `direct_routes`, these and theirs are every path a client may call.
    routes: list[str]
    direct_routes: list[DirectRoute]
    image: str
    port: int  # the OpenAI API the API gateway routes to
    metrics_port_name: str  # the container port Prometheus scrapes
    metrics_port: int
    metrics_path: str
    cpu_millicores: int  # request; the limit is twice
    memory_mib: int  # request; the limit is twice
    resources_reason: str
    min_replicas: int
    max_replicas: int
    workers: int
    routing_policy: str
    num_retries: int
    timeout_seconds: int
    fallbacks: dict[str, list[str]]
    cpu_target_percent: int


class PoolPlan(PlanModel):
    name: str
    gpu: str
    gfd_product: str
    backend: ExistingBackendSpec | KarpenterBackendSpec | GkeBackendSpec | OvhBackendSpec  # defaults decided
    node_names: list[str]  # existing nodes; empty for cloud backends
    instance_types: list[str]  # cloud shapes the pool may use (Karpenter: several; GKE, OVHcloud: one)
    accelerator: str | None  # GKE guest accelerator type
    # GKE: nodes of a pool that hosts multi-node replicas are placed close together.
    compact_placement: bool
    taint: bool
    install_driver: bool
    install_toolkit: bool
    instance_type: str | None
    gpus_per_node: int
    nvlink_domain: int
    peer_to_peer: bool
    min_nodes: int
    max_nodes: int
    gpus_total: int  # at max nodes
    gpus_used_min: int
    gpus_used_max: int
    nodes_used_min: int
    nodes_used_max: int
    models: list[str]
    sharing: PoolSharing | None = None  # None: the pool's GPUs are whole, as the device plugin's default (sharing.py)


class NetworkPlan(PlanModel):
    """Where pods may connect outside the serving namespace: the cluster DNS, and the weights source."""

    dns_namespace: str
    dns_pod_labels: dict[str, str]
    dns_cidrs: list[str]
    weights_source: WeightsSource
    weights_endpoint: str  # HF_ENDPOINT of a mirror; empty for the hub itself
    weights_cidrs: list[str]  # where downloads connect; empty when nothing is downloaded
    weights_port: int
    reason: str


RateLimitScope = Literal["global", "local", "none"]


class RateLimitPlan(PlanModel):
    """Where the API gateway counts each client's requests (components/planning/rate_limits.py)."""

    # global: one count per client in Redis, shared by every Envoy replica (Envoy Gateway's rate-limit service);
    # local: each Envoy replica counts alone; none: no client has a limit, nothing is counted and no Redis runs.
    scope: RateLimitScope
    reason: str


class ApiServicePlan(PlanModel):
    """The Service in front of the Envoy proxies (EnvoyProxy envoyService) and the URL clients use, each decided
    with its reason (components/planning/api_service.py)."""

    name: str  # fixed, so an ingress, a load balancer or kubectl can name it
    namespace: str  # Envoy Gateway's own: the proxies and their Service run there
    type: ServiceType
    type_reason: str
    annotations: dict[str, str]
    load_balancer_class: str | None  # LoadBalancer only; None: the cluster's default controller
    load_balancer_source_ranges: list[str]  # LoadBalancer only
    external_traffic_policy: Literal["Local", "Cluster"] | None  # None for ClusterIP, which has none
    traffic_reason: str
    node_ports: dict[str, int]  # listener name (https, http) -> fixed node port; a listener left out gets any
    url: str  # the base URL clients use, or for a Service type that has none yet, how to find it
    url_reason: str


class ClusterPlan(PlanModel):
    """What will run. Components read this, never raw config."""

    vllm_version: str  # the stack's release; a model may run another (ModelPlan.vllm_version)
    kubernetes_version: str
    namespace: str
    storage_class: str | None
    weights_storage_class: str
    weights_cache: str
    pools: list[PoolPlan]
    models: list[ModelPlan]
    gateway: GatewayPlan
    auth: AuthSpec
    autoscaling: AutoscalingSpec
    monitoring: MonitoringSpec
    images: ImagesSpec
    network: NetworkPlan
    rate_limits: RateLimitPlan
    api_service: ApiServicePlan
    protect_namespace: bool  # pulumi refuses to delete or rename the namespace (and its Secrets, claims)
    protect_monitoring: bool  # pulumi refuses to uninstall monitoring (its namespace, release, volumes)
    warnings: list[str]


def or_list(values: list[int]) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
