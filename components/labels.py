"""Label, taint and annotation names the components agree on."""

PROJECT = "llm-cluster"
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
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PROJECT,
        "app.kubernetes.io/managed-by": "pulumi",
    }


# Which pods of a model answer HTTP: single-node replicas and LeaderWorkerSet leaders ("server"), not
# LWS workers ("worker"). The router discovers servers by it.
ROLE_LABEL = "llm-cluster.io/role"
SERVER_ROLE = "server"
WORKER_ROLE = "worker"
