"""Model servers as the program creates them for every stack (offline, under mocks)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from components.labels import GPU_RESOURCE, GPU_TAINT_KEY, MODEL_LABEL, POOL_LABEL
from components.model_server import PORT
from components.planning.serving import STARTUP_BASE_SECONDS
from components.planning.types import ModelPlan
from testbed.stacks import STACKS, rendered


def workloads(stack: str) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o for o in rendered(stack).manifests if o["kind"] in ("Deployment", "LeaderWorkerSet")
    }


def plans(stack: str) -> dict[str, ModelPlan]:
    return {m["name"]: ModelPlan.model_validate(m) for m in rendered(stack).exports["plan"]["models"]}


def pools(stack: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in rendered(stack).exports["plan"]["pools"]}


def pod_templates(workload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if workload["kind"] == "Deployment":
        return [("single", workload["spec"]["template"])]
    group = workload["spec"]["leaderWorkerTemplate"]
    return [("leader", group["leaderTemplate"]), ("worker", group["workerTemplate"])]


def vllm_container(template: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in template["spec"]["containers"] if c["name"] == "vllm"]
    return dict(container)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


CASES = [(stack, name) for stack in STACKS for name in plans(stack)]


@pytest.mark.parametrize(("stack", "name"), CASES)
def test_gpus_per_pod_times_pods_per_group_is_tp_times_pp(stack: str, name: str) -> None:
    plan, workload = plans(stack)[name], workloads(stack)[name]
    pods_per_group = 1 if workload["kind"] == "Deployment" else workload["spec"]["leaderWorkerTemplate"]["size"]
    for _, template in pod_templates(workload):
        resources = vllm_container(template)["resources"]
        gpu = plan.pod.gpu_resource  # a slice of a shared GPU counts as the one GPU its engine runs on
        assert gpu == (GPU_RESOURCE if plan.sharing is None else "nvidia.com/gpu.shared")
        gpus = int(resources["limits"][gpu])
        assert resources["requests"][gpu] == resources["limits"][gpu]
        assert gpus * pods_per_group == plan.tp * plan.pp
        args = vllm_container(template)["args"]
        assert (int(arg(args, "--tensor-parallel-size")), int(arg(args, "--pipeline-parallel-size"))) == (
            plan.tp,
            plan.pp,
        )


@pytest.mark.parametrize(("stack", "name"), CASES)
def test_pods_land_on_their_pool_and_tolerate_its_taint(stack: str, name: str) -> None:
    plan, workload = plans(stack)[name], workloads(stack)[name]
    pool = pools(stack)[plan.pool]
    for _, template in pod_templates(workload):
        spec = template["spec"]
        assert spec["nodeSelector"] == {POOL_LABEL: plan.pool}
        tolerated = {t["key"] for t in spec.get("tolerations", [])}
        assert (GPU_TAINT_KEY in tolerated) == pool["taint"]
        spread = spec["topologySpreadConstraints"][0]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert spread["labelSelector"]["matchLabels"] == {MODEL_LABEL: name}


@pytest.mark.parametrize(("stack", "name"), CASES)
def test_shared_memory_env_and_image(stack: str, name: str) -> None:
    plan, workload = plans(stack)[name], workloads(stack)[name]
    gpu = pools(stack)[plan.pool]["gpu"]
    for _, template in pod_templates(workload):
        container = vllm_container(template)
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        if plan.gpus_per_pod > 1:
            assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
        env = env_of(container)
        assert (env.get("NCCL_P2P_DISABLE") == "1") == (gpu in ("RTX-4090-24GB", "RTX-5090-32GB"))
        assert env["HF_HOME"].startswith("/models-cache")
        assert env["HF_TOKEN"]["secretKeyRef"]["optional"] is True
        image, _, tag = container["image"].rpartition(":")
        assert image == "vllm/vllm-openai" and tag.startswith("v") and tag != "latest"


@pytest.mark.parametrize(("stack", "name"), CASES)
def test_leader_worker_set_exactly_when_a_replica_spans_nodes(stack: str, name: str) -> None:
    plan, workload = plans(stack)[name], workloads(stack)[name]
    assert (workload["kind"] == "LeaderWorkerSet") == (plan.nodes_per_replica > 1)
    if workload["kind"] == "LeaderWorkerSet":
        group = workload["spec"]["leaderWorkerTemplate"]
        assert group["size"] == plan.nodes_per_replica
        assert group["restartPolicy"] == "RecreateGroupOnPodRestart"
        leader = vllm_container(group["leaderTemplate"])["args"]
        worker = vllm_container(group["workerTemplate"])["args"]
        assert arg(leader, "--node-rank") == "0" and "--headless" not in leader
        assert arg(worker, "--node-rank") == "$(LWS_WORKER_INDEX)" and "--headless" in worker
        for args in (leader, worker):
            assert arg(args, "--nnodes") == str(plan.nodes_per_replica)
            assert arg(args, "--master-addr") == "$(LWS_LEADER_ADDRESS)"


@pytest.mark.parametrize(("stack", "name"), CASES)
def test_probes_cover_loading_the_weights(stack: str, name: str) -> None:
    plan, workload = plans(stack)[name], workloads(stack)[name]
    for role, template in pod_templates(workload):
        container = vllm_container(template)
        if role == "worker":
            assert "ports" not in container and "startupProbe" not in container
            continue
        startup = container["startupProbe"]
        budget = startup["periodSeconds"] * startup["failureThreshold"]
        assert budget >= STARTUP_BASE_SECONDS + 10 * plan.checkpoint_gib
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
        assert container["ports"] == [{"containerPort": PORT, "name": "http", "protocol": "TCP"}]
        assert "preStop" in container["lifecycle"]
        assert template["spec"]["terminationGracePeriodSeconds"] >= 60


@pytest.mark.parametrize(("stack", "name"), CASES)
def test_weights_cache_service_and_disruption_budget(stack: str, name: str) -> None:
    plan = plans(stack)[name]
    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered(stack).manifests}
    cluster = rendered(stack).exports["plan"]
    for _, template in pod_templates(workloads(stack)[name]):
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        cache = volumes["weights-cache"]
        if cluster["weights_cache"] == "shared":
            claim = objects[("PersistentVolumeClaim", cache["persistentVolumeClaim"]["claimName"])]["spec"]
        else:
            claim = cache["ephemeral"]["volumeClaimTemplate"]["spec"]
            assert claim["accessModes"] == ["ReadWriteOnce"]
        assert claim["storageClassName"] == cluster["weights_storage_class"]
        size = int(claim["resources"]["requests"]["storage"].removesuffix("Gi"))
        assert size == plan.cache.size_gib >= math.ceil(plan.checkpoint_gib)
        assert claim["accessModes"] == [plan.cache.access_mode]
        pool_nodes = next(p["max_nodes"] for p in cluster["pools"] if p["name"] == plan.pool)
        if plan.cache.kind == "shared" and pool_nodes > 1:
            assert claim["accessModes"] == ["ReadWriteMany"]  # its pods may land on any node of the pool
    service = objects[("Service", name)]["spec"]
    assert service["ports"][0]["port"] == PORT
    assert service["selector"][MODEL_LABEL] == name
    budget = objects[("PodDisruptionBudget", name)]["spec"]
    assert budget["maxUnavailable"] == 1 and budget["selector"]["matchLabels"] == {MODEL_LABEL: name}


@pytest.mark.parametrize(("stack", "name"), CASES)
def test_labels_and_replicas(stack: str, name: str) -> None:
    plan, workload = plans(stack)[name], workloads(stack)[name]
    labels = workload["metadata"]["labels"]
    assert labels[MODEL_LABEL] == name and labels["app.kubernetes.io/part-of"] == "llm-cluster"
    assert {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version"} <= set(labels)
    assert workload["spec"]["replicas"] == (plan.min_replicas if plan.autoscaling else plan.max_replicas)


def test_rtx_4090_pods_disable_peer_to_peer() -> None:
    for stack in ("dev", "prod"):
        for name, plan in plans(stack).items():
            if pools(stack)[plan.pool]["gpu"] == "RTX-4090-24GB":
                (_, template), *_ = pod_templates(workloads(stack)[name])
                assert env_of(vllm_container(template))["NCCL_P2P_DISABLE"] == "1"


def test_multinode_example_has_a_two_node_group() -> None:
    workload = workloads("example-multinode")["deepseek-r1"]
    assert workload["kind"] == "LeaderWorkerSet"
    assert workload["spec"]["leaderWorkerTemplate"]["size"] == 2
    releases = rendered("example-multinode").helm_releases
    assert "lws" in releases
    assert "lws" not in rendered("prod").helm_releases  # only stacks with multi-node replicas install LWS


@pytest.mark.parametrize("stack", STACKS)
def test_no_service_link_variables_reach_vllm(stack: str) -> None:
    """A Service named `vllm...` would inject VLLM_PORT=tcp://... into every pod, and vLLM reads it as its own."""
    for obj in rendered(stack).manifests:
        if obj["kind"] in ("Deployment", "LeaderWorkerSet"):
            for _, template in pod_templates(obj):
                assert template["spec"]["enableServiceLinks"] is False, obj["metadata"]["name"]
