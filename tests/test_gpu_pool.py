"""GPU pool backends under mocks: what each would create, and what each refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.gpu_pool import ALL_OPERANDS_OPT_OUT, DRIVER_OPT_OUT, GKE_NO_DEVICE_PLUGIN
from components.labels import GPU_RESOURCE, MODEL_LABEL, POOL_LABEL
from components.spec import SpecError, load_cluster_spec
from components.tools.render import ProgramRun, RenderError, run_program
from testbed.stacks import rendered

MODEL = {"name": "coder", "model": "Qwen/Qwen2.5-Coder-7B-Instruct", "pool": "gpu", "maxModelLen": 32768}


def cluster(pool: dict[str, Any], **model: Any) -> dict[str, Any]:
    return {
        "storageClass": "standard",
        "pools": [{"name": "gpu", **pool}],
        "models": [{**MODEL, **model}],
        "auth": {"allowPlainHttp": True, "clients": [{"name": "tests"}]},
    }


def custom_resources(run: ProgramRun, kind: str) -> list[dict[str, Any]]:
    return [o for o in run.manifests if o["kind"] == kind]


# ---------------------------------------------------------------- karpenter


def test_karpenter_pool_is_a_node_class_and_a_node_pool() -> None:
    run = rendered("example-eks-karpenter")
    classes = {o["metadata"]["name"]: o["spec"] for o in custom_resources(run, "EC2NodeClass")}
    pools = {o["metadata"]["name"]: o["spec"] for o in custom_resources(run, "NodePool")}
    assert set(classes) == set(pools) == {"p5", "l40s"}
    p5 = pools["p5"]
    requirements = {r["key"]: r["values"] for r in p5["template"]["spec"]["requirements"]}
    assert requirements["node.kubernetes.io/instance-type"] == ["p5.48xlarge"]
    assert requirements["karpenter.sh/capacity-type"] == ["on-demand"]
    assert p5["limits"] == {GPU_RESOURCE: "32"}  # maxNodes 4 x 8 GPUs
    assert p5["disruption"]["consolidationPolicy"] == "WhenEmpty"
    assert {"nodes": "0", "reasons": ["Drifted"]} in p5["disruption"]["budgets"]
    assert p5["template"]["spec"]["expireAfter"] == "Never"
    assert p5["template"]["metadata"]["labels"][POOL_LABEL] == "p5"
    assert p5["template"]["spec"]["taints"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "value": "present"}]
    assert p5["template"]["spec"]["nodeClassRef"] == {
        "group": "karpenter.k8s.aws",
        "kind": "EC2NodeClass",
        "name": "p5",
    }
    l40s = {r["key"]: r["values"] for r in pools["l40s"]["template"]["spec"]["requirements"]}
    assert l40s["karpenter.sh/capacity-type"] == ["spot"]
    assert set(l40s["node.kubernetes.io/instance-type"]) >= {"g6e.xlarge", "g6e.2xlarge"}
    node_class = classes["p5"]
    assert node_class["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    assert node_class["role"] == "KarpenterNodeRole-inference"
    assert node_class["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "inference"}}]
    assert node_class["blockDeviceMappings"][0]["ebs"]["volumeSize"] == "300Gi"


def test_karpenter_model_pods_are_not_disrupted() -> None:
    servers = [
        o
        for o in rendered("example-eks-karpenter").manifests
        if o["kind"] in ("Deployment", "LeaderWorkerSet") and o["metadata"]["labels"].get(MODEL_LABEL)
    ]
    assert len(servers) == 2
    for workload in (o for o in servers if o["kind"] == "Deployment"):
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {"karpenter.sh/do-not-disrupt": "true"}


def test_bottlerocket_keeps_images_on_its_data_volume() -> None:
    pool = {
        "gpu": "L4-24GB",
        "gpusPerNode": 1,
        "maxNodes": 2,
        "backend": {"kind": "karpenter", "clusterName": "c", "nodeRole": "r", "amiFamily": "bottlerocket"},
    }
    (node_class,) = custom_resources(run_program(cluster(pool)), "EC2NodeClass")
    assert node_class["spec"]["amiSelectorTerms"] == [{"alias": "bottlerocket@latest"}]
    assert node_class["spec"]["blockDeviceMappings"][0]["deviceName"] == "/dev/xvdb"


# ---------------------------------------------------------------- gke


def gke_pools() -> dict[str, dict[str, Any]]:
    return {r["inputs"]["name"]: r["inputs"] for r in rendered("example-gke").cloud_resources}


def test_gke_node_pools_carry_accelerators_autoscaling_labels_and_taints() -> None:
    pools = gke_pools()
    assert set(pools) == {"h100", "l4"}
    h100 = pools["h100"]
    assert (h100["project"], h100["location"], h100["cluster"]) == ("acme-ml-inference", "europe-west4", "inference")
    config = h100["nodeConfig"]
    assert config["machineType"] == "a3-highgpu-8g"
    (accelerator,) = config["guestAccelerators"]
    assert accelerator == {
        "count": 8,
        "gpuDriverInstallationConfig": {"gpuDriverVersion": "DEFAULT"},
        "type": "nvidia-h100-80gb",
    }
    assert h100["autoscaling"] == {"locationPolicy": "ANY", "totalMaxNodeCount": 2, "totalMinNodeCount": 0}
    assert config["labels"][POOL_LABEL] == "h100"
    assert config["labels"][ALL_OPERANDS_OPT_OUT] == "false"  # GKE owns driver and device plugin here
    assert config["taints"] == [{"effect": "NO_SCHEDULE", "key": "nvidia.com/gpu", "value": "present"}]
    assert pools["l4"]["nodeConfig"]["spot"] is True
    assert pools["l4"]["nodeConfig"]["machineType"] == "g2-standard-48"


def test_gke_pools_hosting_multi_node_replicas_are_compact() -> None:
    base = {
        "gpu": "H100-SXM-80GB",
        "minNodes": 0,
        "maxNodes": 2,
        "backend": {"kind": "gke", "project": "p", "location": "us-central1", "cluster": "c"},
    }
    multi = run_program(cluster(base, model="deepseek-ai/DeepSeek-R1", maxModelLen=4096))
    (pool,) = multi.cloud_resources
    assert pool["inputs"]["placementPolicy"] == {"type": "COMPACT"}
    single = run_program(cluster(base))
    assert "placementPolicy" not in single.cloud_resources[0]["inputs"]


def test_gke_with_the_operator_installing_drivers() -> None:
    pool = {
        "gpu": "L4-24GB",
        "gpusPerNode": 1,
        "maxNodes": 2,
        "installDriver": True,
        "backend": {"kind": "gke", "project": "p", "location": "us-central1", "cluster": "c"},
    }
    run = run_program(cluster(pool))
    config = run.cloud_resources[0]["inputs"]["nodeConfig"]
    assert config["guestAccelerators"][0]["gpuDriverInstallationConfig"] == {
        "gpuDriverVersion": "INSTALLATION_DISABLED"
    }
    assert config["labels"][GKE_NO_DEVICE_PLUGIN] == "true"
    assert DRIVER_OPT_OUT not in config["labels"]
    assert run.helm_releases["gpu-operator"]["values"]["driver"]["enabled"] is True


# ---------------------------------------------------------------- ovh


def test_ovh_node_pool_for_staging() -> None:
    (pool,) = rendered("staging").cloud_resources
    assert pool["type"] == "ovh:CloudProject/kubeNodePool:KubeNodePool"
    inputs = pool["inputs"]
    assert inputs["flavorName"] == "h100-380"
    assert (inputs["minNodes"], inputs["maxNodes"], inputs["desiredNodes"], inputs["autoscale"]) == (1, 3, 1, True)
    assert inputs["monthlyBilled"] is False
    template = inputs["template"]
    assert template["metadata"]["labels"][POOL_LABEL] == "h100"
    assert template["spec"]["taints"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "value": "present"}]
    values = rendered("staging").helm_releases["gpu-operator"]["values"]
    assert values["driver"]["enabled"] and values["toolkit"]["enabled"]  # MKS GPU nodes ship no driver


# ---------------------------------------------------------------- bad input


KARPENTER = {"kind": "karpenter", "clusterName": "c", "nodeRole": "r"}
GKE = {"kind": "gke", "project": "p", "location": "us-central1", "cluster": "c"}
OVH = {"kind": "ovh", "serviceName": "p", "kubeId": "k"}


@pytest.mark.parametrize(
    ("backend", "drop", "message"),
    [
        (KARPENTER, "clusterName", "pools[0].backend.clusterName: required; add it"),
        (KARPENTER, "nodeRole", "pools[0].backend.nodeRole: required; add it"),
        (GKE, "project", "pools[0].backend.project: required; add it"),
        (GKE, "location", "pools[0].backend.location: required; add it"),
        (GKE, "cluster", "pools[0].backend.cluster: required; add it"),
        (OVH, "serviceName", "pools[0].backend.serviceName: required; add it"),
        (OVH, "kubeId", "pools[0].backend.kubeId: required; add it"),
    ],
)
def test_cloud_backends_name_their_missing_field(backend: dict[str, Any], drop: str, message: str) -> None:
    config = cluster({"gpu": "L4-24GB", "gpusPerNode": 1, "maxNodes": 2, "backend": copy.deepcopy(backend)})
    del config["pools"][0]["backend"][drop]
    with pytest.raises(SpecError) as caught:
        load_cluster_spec(config)
    assert caught.value.errors == [message]


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        ({"gpu": "RTX-4090-24GB", "maxNodes": 1, "backend": KARPENTER}, "RTX-4090-24GB is not offered on karpenter"),
        ({"gpu": "B200-SXM-180GB", "maxNodes": 1, "backend": OVH}, "B200-SXM-180GB is not offered on ovh"),
        ({"gpu": "L4-24GB", "minNodes": 3, "maxNodes": 1, "backend": OVH}, "minNodes: 3 is greater than maxNodes 1"),
        (
            {"gpu": "L4-24GB", "maxNodes": 1, "backend": {**OVH, "flavor": "h100-380"}},
            "'h100-380' is not offered on ovh with L4-24GB",
        ),
        (
            {"gpu": "L4-24GB", "maxNodes": 1, "backend": {**KARPENTER, "instanceTypes": ["p5.48xlarge"]}},
            "'p5.48xlarge' is not offered on aws with L4-24GB",
        ),
        (
            {
                "gpu": "L4-24GB",
                "gpusPerNode": 1,
                "maxNodes": 1,
                "installDriver": True,
                "backend": {**GKE, "driverVersion": "LATEST"},
            },
            "pools[0].backend.driverVersion: LATEST has GKE install the driver",
        ),
    ],
)
def test_cloud_backends_refuse_what_they_cannot_provide(pool: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run_program(cluster(pool))
