"""VllmModel: one planned model served by vLLM.

A Deployment when a replica fits one node; a LeaderWorkerSet (one leader + workers, one pod per node)
when a replica spans nodes, with vLLM's own multi-node launcher (`--nnodes/--node-rank/--master-addr`,
`mp` backend) so no Ray cluster is needed. Plus a Service on port 8000, a PodDisruptionBudget and a
PVC caching the weights (HF_HOME). Everything comes from the ModelPlan; nothing is sized here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.labels import (
    GPU_MEMORY_ANNOTATION,
    GPU_SLICES_ANNOTATION,
    GPU_TOLERATION,
    MODEL_LABEL,
    MODEL_SERVER_COMPONENT,
    POOL_LABEL,
    ROLE_LABEL,
    SERVER_ROLE,
    SLICE_MARGIN_ANNOTATION,
    WORKER_ROLE,
    common_labels,
)
from components.planning.engine_versions import RUNTIME_HOME, engine_version
from components.planning.sharing_types import ModelSharing
from components.planning.types import ModelPlan, NetworkPlan, PoolPlan
from components.weights_download import job_spec

PORT = 8000
CACHE_MOUNT = "/models-cache"
HF_TOKEN_KEY = "token"
# Pod Security `restricted`: the image (vllm/vllm-openai, docker/Dockerfile: no USER, entrypoint `vllm serve`)
# runs as root unless told otherwise, so the pod names a non-root uid; the image has no passwd entry for it.
RUN_AS_ID = 1000
# The root filesystem is read-only; HOME (vLLM's ~/.cache/vllm compile cache and ~/.config/vllm, Triton's
# ~/.triton, FlashInfer's JIT cache, outlines) and /tmp (torch inductor, vLLM's IPC sockets) are emptyDirs.
HOME_MOUNT = RUNTIME_HOME
TMP_MOUNT = "/tmp"
# Compile caches (torch.compile, Triton, FlashInfer JIT) reach a few GiB; a bound keeps a runaway from filling
# the node's disk (the kubelet evicts the pod instead).
HOME_GIB = 10
TMP_GIB = 10
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_ID,
    "runAsGroup": RUN_AS_ID,
    # The weights claim becomes writable by the group; OnRootMismatch skips re-chowning 100 GiB on every start.
    "fsGroup": RUN_AS_ID,
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Multi-node: the leader's rendezvous port for vLLM's multiprocessing launcher.
MASTER_PORT = 29500
REPLACE_UNREADY = "pulumi.com/replaceUnready"
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
# Out of the Service after 3 failed health checks; restarted only after 2 minutes without an answer, since a
# long prefill can hold /health past a few seconds.
READINESS_FAILURES = 3
LIVENESS_PERIOD_SECONDS = 20
LIVENESS_FAILURES = 6
LIVENESS_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class VllmModelArgs:
    model: ModelPlan
    pool: PoolPlan
    namespace: str
    hf_token_secret: str
    network: NetworkPlan
    # The stack's own build by digest (components/vllm_image.py); None: the model's release (ModelPlan.image).
    image: pulumi.Input[str] | None = None

    @property
    def server_image(self) -> pulumi.Input[str]:
        return self.image if self.image is not None else self.model.image


def pod_resources(model: ModelPlan) -> dict[str, dict[str, str]]:
    pod = model.pod
    gpu = pod.gpu_resource  # nvidia.com/gpu, or a nvidia.com/gpu.shared slice (components/planning/sharing.py)
    return {
        "requests": {"cpu": str(pod.cpu_request), "memory": f"{pod.memory_gib}Gi", gpu: str(pod.gpus)},
        "limits": {"cpu": str(pod.cpu_limit), "memory": f"{pod.memory_gib}Gi", gpu: str(pod.gpus)},
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


def drain_script(model: ModelPlan) -> str:
    """preStop: wait for the endpoint to leave the Service, then until no request is running or waiting (the
    gauges' names in the model's vLLM release)."""
    metrics = engine_version(model.vllm_version).metrics
    return f"""
import time, urllib.request
time.sleep({model.pod.drain_delay_seconds})
deadline = time.time() + {model.pod.drain_seconds}
while time.time() < deadline:
    try:
        text = urllib.request.urlopen("http://127.0.0.1:{PORT}/metrics", timeout=5).read().decode()
    except OSError:
        break
    busy = sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(("{metrics.running}", "{metrics.waiting}")))
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
    engine = engine_version(model.vllm_version)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in {**model.env, **engine.runtime_env}.items()]
    env += [
        {"name": "HF_HOME", "value": f"{CACHE_MOUNT}/huggingface"},
        {
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": hf_token_secret, "key": HF_TOKEN_KEY, "optional": True}},
        },
    ]
    # Not optional: a missing Secret or key keeps the pod from starting, naming it, instead of a server without it.
    env += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}}
        for k, ref in model.secret_env.items()
    ]
    spec: dict[str, Any] = {
        "name": "vllm",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(engine.entrypoint),
        "args": serve_command(model, role),
        "env": env,
        "resources": pod_resources(model),
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "home", "mountPath": HOME_MOUNT},
            {"name": "tmp", "mountPath": TMP_MOUNT},
            {"name": "weights-cache", "mountPath": CACHE_MOUNT},
        ],
        "lifecycle": {"preStop": {"exec": {"command": ["python3", "-c", drain_script(model)]}}},
    }
    if role != "worker":  # headless workers serve no HTTP; the leader answers for the group
        spec["ports"] = [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
        period = model.pod.probe_period_seconds
        spec["startupProbe"] = http_probe("/health", period, model.pod.startup_failure_threshold)
        spec["readinessProbe"] = http_probe("/health", period, READINESS_FAILURES)
        spec["livenessProbe"] = http_probe(
            "/health", LIVENESS_PERIOD_SECONDS, LIVENESS_FAILURES, timeout=LIVENESS_TIMEOUT_SECONDS
        )
    return spec


def cache_claim_spec(model: ModelPlan) -> dict[str, Any]:
    return {
        "accessModes": [model.cache.access_mode],
        "storageClassName": model.cache.storage_class,
        "resources": {"requests": {"storage": f"{model.cache.size_gib}Gi"}},
    }


def cache_volume(model: ModelPlan) -> dict[str, Any]:
    """The shared PVC of the model, or a per-pod ephemeral claim for storage without ReadWriteMany."""
    if model.cache.kind == "shared":
        return {"name": "weights-cache", "persistentVolumeClaim": {"claimName": f"{model.name}-cache"}}
    return {
        "name": "weights-cache",
        "ephemeral": {
            "volumeClaimTemplate": {
                "metadata": {"labels": {MODEL_LABEL: model.name}},
                "spec": cache_claim_spec(model),
            }
        },
    }


def pod_spec(args: VllmModelArgs, role: str) -> dict[str, Any]:
    model, pool = args.model, args.pool
    spec: dict[str, Any] = {
        "containers": [container(model, role, args.server_image, args.hf_token_secret)],
        "nodeSelector": {POOL_LABEL: pool.name},
        # No <SERVICE>_PORT variables: a Service named `vllm...` would inject VLLM_PORT, which vLLM reads as its own.
        "enableServiceLinks": False,
        # vLLM never calls the Kubernetes API.
        "automountServiceAccountToken": False,
        "securityContext": POD_SECURITY,
        "terminationGracePeriodSeconds": model.pod.termination_grace_seconds,
        "volumes": [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{model.pod.shm_gib}Gi"}},
            {"name": "home", "emptyDir": {"sizeLimit": f"{HOME_GIB}Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": f"{TMP_GIB}Gi"}},
            cache_volume(model),
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


def slice_annotations(sharing: ModelSharing) -> dict[str, str]:
    return {
        GPU_SLICES_ANNOTATION: str(sharing.slices_per_gpu),
        GPU_MEMORY_ANNOTATION: str(sharing.gpu_gib),
        SLICE_MARGIN_ANNOTATION: str(sharing.margin_gib),
    }


def template_metadata(args: VllmModelArgs, labels: dict[str, str], role: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": {**labels, ROLE_LABEL: role}}
    if args.pool.backend.kind == "karpenter":
        # Karpenter never voluntarily disrupts a node while one of these pods runs on it.
        meta["annotations"] = {"karpenter.sh/do-not-disrupt": "true"}
    if args.model.sharing is not None:
        # What the plan checked for a slice of a shared GPU; the policy pack re-checks the engine's args against it.
        meta["annotations"] = {**meta.get("annotations", {}), **slice_annotations(args.model.sharing)}
    return meta


def deployment_spec(args: VllmModelArgs, labels: dict[str, str]) -> dict[str, Any]:
    model = args.model
    return {
        "replicas": model.min_replicas,
        "selector": {"matchLabels": {MODEL_LABEL: model.name}},
        # No surge: a new pod would need GPUs the pool may not have spare.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
        "progressDeadlineSeconds": model.pod.progress_deadline_seconds,
        "template": {"metadata": template_metadata(args, labels, SERVER_ROLE), "spec": pod_spec(args, "single")},
    }


def leader_worker_set_spec(args: VllmModelArgs, labels: dict[str, str]) -> dict[str, Any]:
    model = args.model
    return {
        "replicas": model.min_replicas,
        "startupPolicy": "LeaderCreated",
        "leaderWorkerTemplate": {
            "size": model.nodes_per_replica,
            # A lost pod breaks the whole TP x PP group: restart the group together.
            "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": {
                "metadata": template_metadata(args, labels, SERVER_ROLE),
                "spec": pod_spec(args, "leader"),
            },
            "workerTemplate": {
                "metadata": template_metadata(args, labels, WORKER_ROLE),
                "spec": pod_spec(args, "worker"),
            },
        },
    }


class VllmModel(pulumi.ComponentResource):
    """The Kubernetes objects that serve one model."""

    def __init__(self, name: str, args: VllmModelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:model_server:VllmModel", name, None, opts)
        model = args.model
        child = pulumi.ResourceOptions(parent=self)
        labels = {
            **common_labels(model.name, MODEL_SERVER_COMPONENT, model.vllm_version),
            MODEL_LABEL: model.name,
            POOL_LABEL: args.pool.name,
        }
        selector = {MODEL_LABEL: model.name}
        meta = {"name": model.name, "namespace": args.namespace, "labels": labels}
        depends: list[pulumi.Resource] = []
        if model.cache.kind == "shared":
            cache_meta = {**meta, "name": f"{model.name}-cache"}
            # The downloaded weights (tens of GiB): pulumi refuses to replace or delete the claim unless the
            # stack's allowDataLoss names this model for the one change.
            self.cache = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-cache",
                metadata=cache_meta,
                spec=cache_claim_spec(model),
                opts=pulumi.ResourceOptions(parent=self, protect=model.cache.protect),
            )
            depends.append(self.cache)
            if model.cache.download == "job":
                # The servers run offline: they start once the Job has filled the claim (Pulumi waits for it).
                server_pod = pod_spec(args, "single")
                self.download = k8s.batch.v1.Job(
                    f"{name}-weights",
                    # A failed download is retried by replacing the Job on the next `pulumi up`.
                    metadata={**meta, "name": f"{model.name}-weights", "annotations": {REPLACE_UNREADY: "true"}},
                    spec=job_spec(
                        model, args.pool, args.network, args.server_image, server_pod, server_pod["containers"][0]
                    ),
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        depends_on=[self.cache],
                        custom_timeouts=pulumi.CustomTimeouts(create=f"{model.pod.startup_seconds}s"),
                    ),
                )
                depends.append(self.download)
        # An HPA owns the replica count of autoscaled models; Pulumi must not fight it on update.
        ignored = ["spec.replicas"] if model.autoscaling else []
        workload_opts = pulumi.ResourceOptions(parent=self, depends_on=depends, ignore_changes=ignored)
        if model.workload == "Deployment":
            self.workload: pulumi.CustomResource = k8s.apps.v1.Deployment(
                name, metadata=meta, spec=deployment_spec(args, labels), opts=workload_opts
            )
            service_selector = selector
        else:
            self.workload = k8s.apiextensions.CustomResource(
                name,
                api_version="leaderworkerset.x-k8s.io/v1",
                kind="LeaderWorkerSet",
                metadata=meta,
                spec=leader_worker_set_spec(args, labels),
                opts=workload_opts,
            )
            service_selector = {**selector, LWS_WORKER_INDEX_LABEL: "0"}  # the leader answers for the group
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta,
            spec={
                "type": "ClusterIP",
                "selector": service_selector,
                "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
            },
            opts=child,
        )
        self.disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=meta,
            spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}},
            opts=child,
        )
        self.register_outputs({"service": self.service.metadata.apply(lambda m: m["name"])})
