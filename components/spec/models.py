"""The stack config under `llm-cluster:cluster`, as pydantic models.

`ClusterSpec` is what the operator asks for. It is validated here for shape and for facts that need
no catalog (names unique, pools referenced exist, bounds ordered); facts that need the GPU or model
catalog (TP divides the heads, the GPU exists) are checked by `components.planning`. Every error names
the field path in the stack file (`models[3].tensorParallel`) and says how to fix it; the messages are
written in `components.spec.checks`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from components.spec.api_service import ApiServiceSpec
from components.spec.performance import ObjectivesSpec, WorkloadSpec
from components.spec.spec_model import SPEC_MODEL_CONFIG

# Names become Kubernetes object names and label values, so they follow RFC 1035 labels (Service names must;
# namespaces and the other objects take RFC 1123 labels, a superset). At most 40 characters: a GKE node pool name's
# limit, and room within the 63 of a label for what is added to a name: `<model>-cache` and `group-<model>` (46),
# a Deployment's pods `<model>-<10-char hash>-<5>` (57), a LeaderWorkerSet's `<model>-<group>-<worker>` and its
# revision label `<model>-<group>-<10-char hash>` (56 with up to 999 groups).
DNS_LABEL = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)$"
DURATION = r"^[0-9]+(s|m|h|d|w|y)$"


class SpecError(ValueError):
    """Invalid stack config. `errors` holds one line per problem: `<field path>: <what and the fix>`."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


class SpecModel(BaseModel):
    """Base: camelCase keys in YAML, snake_case in Python, unknown keys are errors (spec_model.py)."""

    model_config = SPEC_MODEL_CONFIG


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


class GpuSharingSpec(SpecModel):
    """Shared GPUs (components/planning/sharing.py): the GPU Operator's device plugin hands out `slicesPerGpu`
    time-sliced slices of every GPU on the pool's shared nodes; models that fit a slice are packed onto them."""

    slices_per_gpu: Annotated[int, Field(ge=2, le=48)]
    # existing nodes: the nodes that share (default: the fewest that hold the slices, from the end of nodeNames);
    # a cloud pool's nodes come from one template, so all of them share.
    node_names: list[NonEmpty] | None = None
    # Pooling models (embed, score) share by default; small generators only when this allows it.
    generators: bool = False


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
    sharing: GpuSharingSpec | None = None
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


class SecretEnvSpec(SpecModel):
    """An environment variable read from a key of a Secret in the serving namespace (valueFrom.secretKeyRef)."""

    secret: NonEmpty
    key: NonEmpty


class ModelSloSpec(SpecModel):
    ttft_p95_seconds: Annotated[float, Field(gt=0)] = 2.0


# `quantization` selects vLLM's online quantization of a 16-bit checkpoint (fp8, bitsandbytes) or its 16-bit dtype.
# A pre-quantized checkpoint runs as its quantization_config says (`auto`, or its own method named again); any
# other value for it is refused at plan time with the reason (components/planning/memory.py weight_dtype_for).
Quantization = Literal["auto", "bf16", "fp16", "fp8", "awq", "gptq", "bitsandbytes", "mxfp4"]
KvCacheDtype = Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"]
# Bounds of the batch limits: 64 x vLLM's largest default of max_num_seqs; max_num_batched_tokens must hold a whole
# request of a pooling model, and 16M tokens is past every published context length.
MAX_NUM_SEQS = 65536
MAX_NUM_BATCHED_TOKENS = 2**24


class ModelSpec(SpecModel):
    """One served model. `name` is what clients send as `model`."""

    name: Annotated[str, Field(pattern=DNS_LABEL)]
    model: Annotated[str, Field(min_length=1)]
    revision: str | None = None
    pool: str
    # The vLLM release this model runs; default: the stack's vllmVersion (components/planning/engine_versions.py).
    vllm_version: str | None = None
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
    # vLLM seeds numpy with it, whose seeds are 0..2^32-1 (np.random.seed raises past them).
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    prefix_caching: bool | None = None
    tool_call_parser: str | None = None
    tensor_parallel: Annotated[int, Field(ge=1)] | None = None
    pipeline_parallel: Annotated[int, Field(ge=1)] | None = None
    # Unset: the vLLM release's own default (0.9 in 0.13, 0.92 in 0.33: components/planning/engine_versions.py).
    gpu_memory_utilization: Annotated[float, Field(ge=0.5, le=0.98)] | None = None
    # vLLM's batch limits. Default: vLLM 0.13's for the GPU, lowered by the plan only when the sampler memory of
    # max_num_seqs x vocab logits would leave no room for the KV cache (components/planning/batch_limits.py).
    max_num_seqs: Annotated[int, Field(ge=1, le=MAX_NUM_SEQS)] | None = None
    max_num_batched_tokens: Annotated[int, Field(ge=1, le=MAX_NUM_BATCHED_TOKENS)] | None = None
    trust_remote_code: bool | None = None
    # For models outside the catalog: a local copy of the HF config.json (relative to the project).
    config_path: str | None = None
    params_b: Annotated[float, Field(gt=0)] | None = None
    extra_args: list[str] = []
    env: dict[str, str] = {}
    # Credentials the server needs, by reference: NAME: {secret: <Secret in the namespace>, key: <key in it>}.
    secret_env: dict[str, SecretEnvSpec] = {}
    slo: ModelSloSpec = ModelSloSpec()
    # Typical request and peak users, and latency objectives: the plan picks the layout by predicted performance
    # (components/spec/performance.py, components/planning/layout_choice.py).
    workload: WorkloadSpec | None = None
    objectives: ObjectivesSpec | None = None

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
    # added 1.9-5.2 s (bench/results/gateway_overhead.md); a score model's rerank then goes from the API gateway
    # straight to its Service. LiteLLM when `fallbacks` are set or several score models share the rerank path.
    kind: Literal["litellm", "vllm-router"] | None = None
    min_replicas: Annotated[int, Field(ge=1)] = 2
    max_replicas: Annotated[int, Field(ge=1)] = 4
    # LiteLLM worker processes per pod (one CPU each): 2 workers on 2 CPUs carried 1.7x the requests/s of 1
    # with a fifth of the added TTFT at 32 streams (bench/results/gateway_overhead.md).
    workers: Annotated[int, Field(ge=1, le=32)] = 2
    routing_policy: Literal["cache_aware", "round_robin", "random", "power_of_two"] = "cache_aware"
    num_retries: Annotated[int, Field(ge=0, le=10)] = 2
    timeout_seconds: Annotated[int, Field(ge=1)] = 600
    # Model -> models to try when it fails (LiteLLM only: vllm-router retries other replicas of the same model).
    fallbacks: dict[str, list[str]] = {}
    cpu_target_percent: Annotated[int, Field(ge=10, le=95)] = 70


class RateLimitSpec(SpecModel):
    # At most 2^32-1: BackendTrafficPolicy's limit.requests (Envoy Gateway v1.9 CRD maximum).
    requests: Annotated[int, Field(ge=1, le=2**32 - 1)]
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
    # Envoy proxy replicas serving the API; more than one keeps clients connected through a node drain.
    replicas: Annotated[int, Field(ge=1)] = 2
    # Where each client's requests are counted: global (one count in Redis, shared by every Envoy replica) or
    # local (each Envoy replica counts alone, so a client gets `replicas` times its limit). Default: global when
    # replicas > 1, local for one replica; components/planning/rate_limits.py decides.
    rate_limit_scope: Literal["global", "local"] | None = None
    # The Service clients connect to (LoadBalancer, NodePort or ClusterIP); components/spec/api_service.py.
    service: ApiServiceSpec = ApiServiceSpec()


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


class DnsSpec(SpecModel):
    """The cluster DNS: the only name service the NetworkPolicies let pods reach."""

    # The DNS pods by namespace and labels; CoreDNS keeps kube-dns's `k8s-app: kube-dns` label.
    namespace: Annotated[str, Field(pattern=DNS_LABEL)] = "kube-system"
    pod_labels: dict[str, str] = {"k8s-app": "kube-dns"}
    # Addresses answering outside any pod, in CIDR form: NodeLocal DNSCache's link-local 169.254.20.10/32.
    addresses: list[str] = []


class WeightsSourceSpec(SpecModel):
    """Where model weights come from, and so which pods may reach outside the cluster."""

    # hub: huggingface.co; mirror: an internal mirror (HF_ENDPOINT) at `url`, reachable on `cidrs`:`port`;
    # preloaded: the operator fills the weights caches, nothing is downloaded and nothing leaves the cluster.
    kind: Literal["hub", "mirror", "preloaded"] = "hub"
    url: str | None = None
    cidrs: list[str] = []
    port: Annotated[int, Field(ge=1, le=65535)] = 443


class ClusterSpec(SpecModel):
    """Everything one stack asks for."""

    kubernetes_version: Annotated[str, Field(pattern=r"^1\.[0-9]{2}$")] = "1.31"
    namespace: Annotated[str, Field(pattern=DNS_LABEL)] = "llm"
    # The vLLM release the model servers run: one of components/planning/engine_versions.py; default the current
    # one. It decides the image, the arguments and environment, the batch defaults and the metric names.
    vllm_version: str | None = None
    # Storage class of every PVC; weightsStorageClass overrides it for the model weight caches, which
    # need ReadWriteMany when a model runs more than one pod.
    storage_class: str | None = None
    weights_storage_class: str | None = None
    # shared: one PVC per model, ReadWriteMany when the pool has more than one node (its pods may land on any).
    # per-pod: an ephemeral ReadWriteOnce volume per pod, for storage without ReadWriteMany (each pod downloads).
    weights_cache: Literal["shared", "per-pod"] = "shared"
    # Data is protected: a weights cache, the namespace and the monitoring stack (its volumes) cannot be replaced or
    # deleted by `pulumi up`. Name one here for the one change that must replace or delete it, then remove it:
    # `namespace`, `monitoring`, or a model's name (its weights cache).
    allow_data_loss: list[str] = []
    pools: list[GpuPoolSpec] = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    gateway: GatewaySpec = GatewaySpec()
    auth: AuthSpec = AuthSpec()
    autoscaling: AutoscalingSpec = AutoscalingSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    images: ImagesSpec = ImagesSpec()
    dns: DnsSpec = DnsSpec()
    weights_source: WeightsSourceSpec = WeightsSourceSpec()


# ---------------------------------------------------------------- loading and error messages


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
            step = key_step(str(part))
            path += step if path or step.startswith("[") else step[1:]
        previous = part
    return path or "llm-cluster:cluster"


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_step(key: str) -> str:
    """A mapping key as a step of a field path: `.name`, or `['odd key']` when it holds spaces, dots, line breaks
    or other characters that would make the path ambiguous or split the message."""
    return f".{key}" if _PLAIN_KEY.fullmatch(key) else f"[{key!r}]"
