"""Label, taint and annotation names the components agree on."""

PROJECT = "llm-cluster"
# app.kubernetes.io labels every object of ours carries (common_labels), and the component values the
# NetworkPolicies, monitors and policy pack select on.
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MODEL_SERVER_COMPONENT = "model-server"
GATEWAY_COMPONENT = "llm-gateway"
API_GATEWAY_COMPONENT = "api-gateway"
WEIGHTS_DOWNLOAD_COMPONENT = "weights-download"
GATEWAY_KIND_LABEL = "llm-cluster.io/gateway-kind"
# The label Prometheus selects monitors and rules by (charts/kube-prometheus-stack/values.yaml): no chart
# writes it by itself, so it never collides with a chart's own part-of label.
PROMETHEUS_LABEL = "llm-cluster.io/prometheus"
# The labels prometheus-operator puts on every Prometheus server pod (pkg/prometheus/statefulset.go): what the
# NetworkPolicies admit to metrics ports.
PROMETHEUS_POD_LABELS = {NAME_LABEL: "prometheus", "app.kubernetes.io/managed-by": "prometheus-operator"}
# What the plan checked on an HPA, so the policy pack can re-check maxReplicas against the pool.
POOL_GPUS_ANNOTATION = "llm-cluster.io/pool-gpus"
GPUS_PER_REPLICA_ANNOTATION = "llm-cluster.io/gpus-per-replica"
# What the plan checked for a model on a slice of a shared GPU (components/planning/sharing.py), on its pods, so the
# policy pack can re-check that no assignment of slices overcommits a GPU.
GPU_SLICES_ANNOTATION = "llm-cluster.io/gpu-slices"
GPU_MEMORY_ANNOTATION = "llm-cluster.io/gpu-memory-gib"
SLICE_MARGIN_ANNOTATION = "llm-cluster.io/slice-margin-gib"
SHARED_GPU_RESOURCE = "nvidia.com/gpu.shared"
POOL_LABEL = "llm-cluster.io/pool"
GPU_LABEL = "llm-cluster.io/gpu"
GPU_PRODUCT_LABEL = "llm-cluster.io/gpu-product"
MODEL_LABEL = "llm-cluster.io/model"
# The taint every GPU node carries so only pods that ask for GPUs land there.
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
GPU_RESOURCE = "nvidia.com/gpu"


def common_labels(name: str, component: str, version: str) -> dict[str, str]:
    """app.kubernetes.io labels of one workload."""
    return {
        NAME_LABEL: component,
        INSTANCE_LABEL: name,
        "app.kubernetes.io/version": version,
        COMPONENT_LABEL: component,
        PART_OF_LABEL: PROJECT,
        "app.kubernetes.io/managed-by": "pulumi",
    }


# Which pods of a model answer HTTP: single-node replicas and LeaderWorkerSet leaders ("server"), not
# LWS workers ("worker"). The router discovers servers by it.
ROLE_LABEL = "llm-cluster.io/role"
SERVER_ROLE = "server"
WORKER_ROLE = "worker"
