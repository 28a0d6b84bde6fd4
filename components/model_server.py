"""VllmModel: one planned model served by vLLM.

A Deployment when a replica fits one node; a LeaderWorkerSet (one leader + workers, one pod per node)
when a replica spans nodes, with vLLM's own multi-node launcher (`--nnodes/--node-rank/--master-addr`,
`mp` backend) so no Ray cluster is needed. Plus a Service on port 8000, a PodDisruptionBudget and a
PVC caching the weights (HF_HOME). Everything comes from the ModelPlan; nothing is sized here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.images import VLLM_IMAGE
from components.labels import (
    GPU_RESOURCE,
    GPU_TOLERATION,
    MODEL_LABEL,
    POOL_LABEL,
    ROLE_LABEL,
    SERVER_ROLE,
    WORKER_ROLE,
    common_labels,
)
from components.planning.types import ModelPlan, PoolPlan
from components.planning.vllm import VLLM_VERSION

PORT = 8000
CACHE_MOUNT = "/models-cache"
HF_TOKEN_KEY = "token"
# Multi-node: the leader's rendezvous port for vLLM's multiprocessing launcher.
MASTER_PORT = 29500
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
# A first start downloads the checkpoint, then loads it: budget 10 s per GiB (~100 MiB/s) on top of
# 10 minutes for engine start-up, CUDA graph capture and the first profiling run.
STARTUP_BASE_SECONDS = 600
STARTUP_SECONDS_PER_GIB = 10
PROBE_PERIOD_SECONDS = 10
# Long streams: give in-flight requests time to finish after the endpoint is removed.
TERMINATION_GRACE_SECONDS = 300
PRE_STOP_SLEEP_SECONDS = 15


@dataclass(frozen=True)
class VllmModelArgs:
    model: ModelPlan
    pool: PoolPlan
    namespace: str
    storage_class: str
    weights_cache: str  # shared | per-pod
    hf_token_secret: str
    # The pinned release, or the stack's own build by digest (components/vllm_image.py).
    image: pulumi.Input[str] = VLLM_IMAGE


def startup_budget_seconds(model: ModelPlan) -> int:
    return STARTUP_BASE_SECONDS + math.ceil(model.checkpoint_gib * STARTUP_SECONDS_PER_GIB)


def cache_size_gib(model: ModelPlan) -> int:
    """The checkpoint as downloaded, plus a quarter for tokenizer files, partial downloads and updates."""
    return max(10, math.ceil(model.checkpoint_gib * 1.25) + 2)


def shm_size_gib(model: ModelPlan) -> int:
    """NCCL and vLLM's worker processes exchange tensors through /dev/shm; more GPUs, more buffers."""
    return 2 if model.gpus_per_pod == 1 else 4 * model.gpus_per_pod


def pod_resources(model: ModelPlan) -> dict[str, dict[str, str]]:
    gpus = model.gpus_per_pod
    # Host memory: the tokenizer, the API server, CPU-side buffers per GPU worker, and /dev/shm
    # (memory-backed volumes count against the container's memory).
    memory = 8 + 6 * gpus + shm_size_gib(model)
    cpu = 2 + 2 * gpus
    return {
        "requests": {"cpu": str(cpu), "memory": f"{memory}Gi", GPU_RESOURCE: str(gpus)},
        "limits": {"cpu": str(2 * cpu), "memory": f"{memory}Gi", GPU_RESOURCE: str(gpus)},
    }


def serve_command(model: ModelPlan, role: str) -> list[str]:
    """Arguments of `vllm serve`. role: single | leader | worker (a LeaderWorkerSet's pods)."""
    args = [*model.vllm_args, "--host", "0.0.0.0", "--port", str(PORT)]
    if role == "single":
        return args
    # The LWS webhook puts the leader's address and the pod's index into the container's env; the
    # kubelet expands $(VAR) in args from it.
    return [
        *args,
        "--distributed-executor-backend", "mp",
        "--nnodes", str(model.nodes_per_replica),
        "--node-rank", "0" if role == "leader" else "$(LWS_WORKER_INDEX)",
        "--master-addr", "$(LWS_LEADER_ADDRESS)",
        "--master-port", str(MASTER_PORT),
        *(["--headless"] if role == "worker" else []),
    ]  # fmt: skip


# vLLM 0.13 aborts in-flight requests on SIGTERM, so preStop drains first: wait for the endpoint to
# leave the Service, then until no request is running or waiting (bounded by the grace period).
DRAIN_SCRIPT = f"""
import time, urllib.request
time.sleep({PRE_STOP_SLEEP_SECONDS})
deadline = time.time() + {TERMINATION_GRACE_SECONDS - PRE_STOP_SLEEP_SECONDS - 15}
while time.time() < deadline:
    try:
        text = urllib.request.urlopen("http://127.0.0.1:{PORT}/metrics", timeout=5).read().decode()
    except OSError:
        break
    busy = sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(("vllm:num_requests_running", "vllm:num_requests_waiting")))
    if busy == 0:
        break
    time.sleep(2)
""".strip()


def http_probe(path: str, period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def container(model: ModelPlan, role: str, image: pulumi.Input[str], hf_token_secret: str) -> dict[str, Any]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in model.env.items()]
    env += [
        {"name": "HF_HOME", "value": f"{CACHE_MOUNT}/huggingface"},
        {
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": hf_token_secret, "key": HF_TOKEN_KEY, "optional": True}},
        },
    ]
    spec: dict[str, Any] = {
        "name": "vllm",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["vllm", "serve"],
        "args": serve_command(model, role),
        "env": env,
        "resources": pod_resources(model),
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "weights-cache", "mountPath": CACHE_MOUNT},
        ],
        "lifecycle": {"preStop": {"exec": {"command": ["python3", "-c", DRAIN_SCRIPT]}}},
    }
    if role != "worker":  # headless workers serve no HTTP; the leader answers for the group
        spec["ports"] = [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
        spec["startupProbe"] = http_probe(
            "/health", PROBE_PERIOD_SECONDS, math.ceil(startup_budget_seconds(model) / PROBE_PERIOD_SECONDS)
        )
        spec["readinessProbe"] = http_probe("/health", PROBE_PERIOD_SECONDS, 3)
        spec["livenessProbe"] = http_probe("/health", 20, 6, timeout=10)
    return spec


def cache_claim_spec(model: ModelPlan, storage_class: str, access_mode: str) -> dict[str, Any]:
    return {
        "accessModes": [access_mode],
        "storageClassName": storage_class,
        "resources": {"requests": {"storage": f"{cache_size_gib(model)}Gi"}},
    }


def cache_volume(args: VllmModelArgs) -> dict[str, Any]:
    """The shared PVC of the model, or a per-pod ephemeral claim for storage without ReadWriteMany."""
    if args.weights_cache == "shared":
        return {"name": "weights-cache", "persistentVolumeClaim": {"claimName": f"{args.model.name}-cache"}}
    return {
        "name": "weights-cache",
        "ephemeral": {
            "volumeClaimTemplate": {
                "metadata": {"labels": {MODEL_LABEL: args.model.name}},
                "spec": cache_claim_spec(args.model, args.storage_class, "ReadWriteOnce"),
            }
        },
    }


def pod_spec(args: VllmModelArgs, role: str) -> dict[str, Any]:
    model, pool = args.model, args.pool
    spec: dict[str, Any] = {
        "containers": [container(model, role, args.image, args.hf_token_secret)],
        "nodeSelector": {POOL_LABEL: pool.name},
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "volumes": [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_size_gib(model)}Gi"}},
            cache_volume(args),
        ],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {MODEL_LABEL: model.name}},
            }
        ],
    }
    if pool.taint:
        spec["tolerations"] = [GPU_TOLERATION]
    return spec


class VllmModel(pulumi.ComponentResource):
    """The Kubernetes objects that serve one model."""

    service_name: str

    def __init__(self, name: str, args: VllmModelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:model_server:VllmModel", name, None, opts)
        model = args.model
        child = pulumi.ResourceOptions(parent=self)
        labels = {
            **common_labels(model.name, "model-server", VLLM_VERSION),
            MODEL_LABEL: model.name,
            POOL_LABEL: args.pool.name,
        }
        selector = {MODEL_LABEL: model.name}

        def meta(object_name: str) -> dict[str, Any]:
            return {"name": object_name, "namespace": args.namespace, "labels": labels}

        pods = model.max_replicas * model.nodes_per_replica
        depends: list[pulumi.Resource] = []
        if args.weights_cache == "shared":
            # Replicas on different nodes share the cache, so more than one pod needs ReadWriteMany.
            self.cache = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-cache",
                metadata=meta(f"{model.name}-cache"),
                spec=cache_claim_spec(model, args.storage_class, "ReadWriteMany" if pods > 1 else "ReadWriteOnce"),
                opts=child,
            )
            depends.append(self.cache)
        replicas = model.min_replicas
        # An HPA owns the replica count of autoscaled models; Pulumi must not fight it on update.
        scaled = pulumi.ResourceOptions(parent=self, depends_on=depends, ignore_changes=["spec.replicas"])
        fixed = pulumi.ResourceOptions(parent=self, depends_on=depends)
        workload_opts = scaled if model.autoscaling else fixed
        annotations = {}
        if args.pool.backend == "karpenter":
            # Karpenter never voluntarily disrupts a node while one of these pods runs on it.
            annotations["karpenter.sh/do-not-disrupt"] = "true"

        def template_meta(role: str) -> dict[str, Any]:
            meta: dict[str, Any] = {"labels": {**labels, ROLE_LABEL: role}}
            if annotations:
                meta["annotations"] = annotations
            return meta

        if model.nodes_per_replica == 1:
            self.workload: pulumi.CustomResource = k8s.apps.v1.Deployment(
                name,
                metadata=meta(model.name),
                spec={
                    "replicas": replicas,
                    "selector": {"matchLabels": selector},
                    # No surge: a new pod would need GPUs the pool may not have spare.
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
                    "progressDeadlineSeconds": startup_budget_seconds(model) + 300,
                    "template": {"metadata": template_meta(SERVER_ROLE), "spec": pod_spec(args, "single")},
                },
                opts=workload_opts,
            )
            service_selector = selector
        else:
            self.workload = k8s.apiextensions.CustomResource(
                name,
                api_version="leaderworkerset.x-k8s.io/v1",
                kind="LeaderWorkerSet",
                metadata=meta(model.name),
                spec={
                    "replicas": replicas,
                    "startupPolicy": "LeaderCreated",
                    "leaderWorkerTemplate": {
                        "size": model.nodes_per_replica,
                        # A lost pod breaks the whole TP x PP group: restart the group together.
                        "restartPolicy": "RecreateGroupOnPodRestart",
                        "leaderTemplate": {
                            "metadata": template_meta(SERVER_ROLE),
                            "spec": pod_spec(args, "leader"),
                        },
                        "workerTemplate": {
                            "metadata": template_meta(WORKER_ROLE),
                            "spec": pod_spec(args, "worker"),
                        },
                    },
                },
                opts=workload_opts,
            )
            service_selector = {**selector, LWS_WORKER_INDEX_LABEL: "0"}

        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta(model.name),
            spec={
                "type": "ClusterIP",
                "selector": service_selector,
                "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
            },
            opts=child,
        )
        self.disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=meta(model.name),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}},
            opts=child,
        )
        self.service_name = model.name
        self.register_outputs({"service": self.service.metadata.apply(lambda m: m["name"])})
