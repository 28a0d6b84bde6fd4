"""Where pods may connect: DNS only to the cluster DNS, the weights source only from the pods that download."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.labels import COMPONENT_LABEL, MODEL_LABEL, WEIGHTS_DOWNLOAD_COMPONENT
from components.planning.network import ANYWHERE
from components.stacks import load_stack, plan_for
from components.tools.render import ProgramRun, RenderError, run_program
from components.weights_download import WEIGHTS_OF_LABEL
from testbed.stacks import STACKS, rendered, stack_config

MIRROR = {"kind": "mirror", "url": "https://hf-mirror.corp.example", "cidrs": ["10.20.0.0/16"], "port": 8443}


def objects(run: ProgramRun, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in run.manifests if o["kind"] == kind}


def policies(run: ProgramRun) -> dict[str, dict[str, Any]]:
    return {name: o["spec"] for name, o in objects(run, "NetworkPolicy").items()}


def egress_cidrs(policy: dict[str, Any]) -> list[str]:
    return [peer["ipBlock"]["cidr"] for rule in policy.get("egress", []) for peer in rule["to"] if "ipBlock" in peer]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "<from a Secret>") for e in container["env"]}


def server_containers(run: ProgramRun) -> dict[str, dict[str, Any]]:
    found = {}
    for name, deployment in objects(run, "Deployment").items():
        containers = deployment["spec"]["template"]["spec"]["containers"]
        if containers[0]["name"] == "vllm":  # not the gateway, nor the rate-limit Redis with its exporter
            (container,) = containers
            found[name] = container
    for name, group in objects(run, "LeaderWorkerSet").items():
        found[name] = group["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    return found


def with_changes(stack: str, **changes: Any) -> ProgramRun:
    config = copy.deepcopy(stack_config(stack))
    config.update(changes)
    return run_program(config)


@pytest.mark.parametrize("stack", STACKS)
def test_dns_goes_only_to_the_cluster_dns_pods(stack: str) -> None:
    (rule,) = policies(rendered(stack))["allow-dns"]["egress"]
    assert rule["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert sorted((p["protocol"], p["port"]) for p in rule["ports"]) == [("TCP", 53), ("UDP", 53)]


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_pods_that_download_reach_outside_the_cluster(stack: str) -> None:
    run, plan = rendered(stack), plan_for(load_stack(stack))
    specs = policies(run)
    assert specs["model-servers"]["egress"] == []
    by_download = {m.name: m.cache.download for m in plan.models}
    outside = {name: egress_cidrs(p) for name, p in specs.items() if egress_cidrs(p)}
    expected: dict[str, list[str]] = {}
    if "job" in by_download.values():
        expected["weights-download-jobs"] = [ANYWHERE]
        selector = specs["weights-download-jobs"]["podSelector"]
        assert selector == {"matchLabels": {COMPONENT_LABEL: WEIGHTS_DOWNLOAD_COMPONENT}}
    per_pod = sorted(n for n, d in by_download.items() if d == "pod")
    if per_pod:
        expected["weights-download-servers"] = [ANYWHERE]
        (expression,) = specs["weights-download-servers"]["podSelector"]["matchExpressions"]
        assert expression == {"key": MODEL_LABEL, "operator": "In", "values": per_pod}
    if plan.gateway.kind == "vllm-router":
        expected["llm-gateway"] = [ANYWHERE]  # the Kubernetes API, on its ports only
        assert {p["port"] for r in specs["llm-gateway"]["egress"][1:] for p in r["ports"]} == {443, 6443}
    assert outside == expected


@pytest.mark.parametrize("stack", STACKS)
def test_a_job_fills_each_shared_cache_and_the_servers_run_offline(stack: str) -> None:
    run, plan = rendered(stack), plan_for(load_stack(stack))
    jobs = objects(run, "Job")
    servers = server_containers(run)
    for model in plan.models:
        env = env_of(servers[model.name])
        if model.cache.download != "job":
            assert f"{model.name}-weights" not in jobs
            assert ("HF_HUB_OFFLINE" in env) == (model.cache.download == "none")
            continue
        assert env["HF_HUB_OFFLINE"] == "1"
        job = jobs[f"{model.name}-weights"]
        pod = job["spec"]["template"]
        assert pod["metadata"]["labels"] == {COMPONENT_LABEL: WEIGHTS_DOWNLOAD_COMPONENT, WEIGHTS_OF_LABEL: model.name}
        assert MODEL_LABEL not in pod["metadata"]["labels"]  # not selected by the model's Service or PDB
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["weights-cache"] == {
            "name": "weights-cache",
            "persistentVolumeClaim": {"claimName": f"{model.name}-cache"},
        }
        (container,) = pod["spec"]["containers"]
        job_env = env_of(container)
        assert job_env["MODEL_ID"] == model.model and job_env["MODEL_REVISION"] == (model.revision or "")
        assert job_env["HF_HOME"] == env["HF_HOME"] and "HF_HUB_OFFLINE" not in job_env
        on_pool = model.cache.access_mode == "ReadWriteOnce"  # the claim binds to the node of its first pod
        assert pod["spec"].get("nodeSelector") == ({"llm-cluster.io/pool": model.pool} if on_pool else None)
        assert job["spec"]["activeDeadlineSeconds"] == model.pod.startup_seconds


def test_servers_wait_for_their_download_job() -> None:
    run = rendered("prod")
    jobs = {r.name: r for r in run.of_type("kubernetes:batch/v1:Job")}
    assert jobs
    for name, job in jobs.items():
        assert job.options["create_timeout"], name  # not Pulumi's 10-minute default
    for r in run.registrations:
        if r.type == "kubernetes:apps/v1:Deployment" and f"{r.name}-weights" in jobs:
            assert any(dep.endswith(f"::{r.name}-weights") for dep in r.options["depends_on"]), r.name


def test_a_mirror_is_the_only_place_downloads_reach() -> None:
    run = with_changes("prod", weightsSource=MIRROR)
    specs = policies(run)
    assert egress_cidrs(specs["weights-download-jobs"]) == ["10.20.0.0/16"]
    assert [p["port"] for p in specs["weights-download-jobs"]["egress"][0]["ports"]] == [8443]
    for job in objects(run, "Job").values():
        assert env_of(job["spec"]["template"]["spec"]["containers"][0])["HF_ENDPOINT"] == MIRROR["url"]


def test_per_pod_caches_download_from_the_mirror_themselves() -> None:
    run = with_changes("staging", weightsSource=MIRROR)
    assert egress_cidrs(policies(run)["weights-download-servers"]) == ["10.20.0.0/16"]
    for container in server_containers(run).values():
        assert env_of(container)["HF_ENDPOINT"] == MIRROR["url"]
    assert not objects(run, "Job")


def test_preloaded_weights_leave_no_route_out() -> None:
    run = with_changes("prod", weightsSource={"kind": "preloaded"})
    assert not objects(run, "Job")
    assert not [name for name, p in policies(run).items() if name != "llm-gateway" and egress_cidrs(p)]
    assert all(env_of(c)["HF_HUB_OFFLINE"] == "1" for c in server_containers(run).values())


def test_node_local_dns_is_reached_by_its_address() -> None:
    run = with_changes("dev", dns={"addresses": ["169.254.20.10/32"]})
    (rule,) = policies(run)["allow-dns"]["egress"]
    assert rule["to"][1:] == [{"ipBlock": {"cidr": "169.254.20.10/32"}}]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"weightsSource": {"kind": "mirror"}}, "weightsSource.url: required for kind: mirror"),
        ({"weightsSource": {"kind": "mirror", "url": "https://m.corp"}}, "weightsSource.cidrs: required"),
        ({"weightsSource": {**MIRROR, "cidrs": ["10.20.0.1/16"]}}, "weightsSource.cidrs[0]: '10.20.0.1/16' is not"),
        ({"weightsSource": {"kind": "hub", "url": "https://m.corp"}}, "weightsSource: url and cidrs belong to"),
        ({"weightsSource": {"kind": "preloaded"}, "weightsCache": "per-pod"}, "preloaded needs weightsCache: shared"),
        ({"dns": {"addresses": ["node-local"]}}, "dns.addresses[0]: 'node-local' is not a CIDR block"),
        ({"dns": {"podLabels": {}}}, "dns.podLabels: must not be empty"),
        ({"dns": {"podLabels": {"k8s app": "kube-dns"}}}, "dns.podLabels: 'k8s app' is not a label key"),
        ({"dns": {"podLabels": {"k8s-app": "kube dns"}}}, "dns.podLabels.k8s-app: 'kube dns' is not a label value"),
    ],
)
def test_network_settings_that_cannot_work_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError, match=message.replace("[", r"\[").replace("]", r"\]")):
        with_changes("dev", **changes)
