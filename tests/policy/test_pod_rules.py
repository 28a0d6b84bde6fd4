"""Pod hardening rules (policy/pod_rules.py): each fails its bad example and passes a good one."""

from __future__ import annotations

from typing import Any

from tests.policy.rendered import container, first, gateway, mutate, pod_spec, resources, vllm

from rules import RESOURCE_RULES, STACK_RULES  # isort: skip (policy/ on sys.path, set by rendered)

RESTRICTED = RESOURCE_RULES["pods-are-restricted"]
SERVICE_LINKS = RESOURCE_RULES["pods-have-no-service-links"]
API_TOKENS = STACK_RULES["api-tokens-only-for-bound-accounts"]
SERVING_NAMESPACE = STACK_RULES["serving-namespace-enforces-restricted"]


def hardened(props: dict[str, Any]) -> None:
    """What `restricted` asks of a Deployment's pod, for a passing example independent of the components."""
    spec = pod_spec(props)
    spec["securityContext"] = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
    for c in spec["containers"] + spec.get("initContainers", []):
        c["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_a_hardened_model_server_passes_and_a_root_one_fails() -> None:
    assert RESTRICTED(mutate(vllm(), hardened)) == []
    bare = mutate(
        vllm(), lambda p: (pod_spec(p).pop("securityContext", None), container(p).pop("securityContext", None))
    )
    assert RESTRICTED(bare) == [
        'qwen2-5-32b-instruct: container "vllm" must set securityContext.allowPrivilegeEscalation=false',
        'qwen2-5-32b-instruct: pod or container "vllm" must set securityContext.runAsNonRoot=true',
        'qwen2-5-32b-instruct: pod or container "vllm" must set securityContext.seccompProfile.type to '
        "RuntimeDefault or Localhost",
        'qwen2-5-32b-instruct: container "vllm" must set securityContext.capabilities.drop=["ALL"]',
    ]


def test_restricted_covers_leader_worker_sets_jobs_and_cron_jobs() -> None:
    group = first("example-eks-karpenter", "LeaderWorkerSet")

    def root_worker(props: dict[str, Any]) -> None:
        worker = props["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
        worker["containers"][0].setdefault("securityContext", {})["runAsUser"] = 0

    assert RESTRICTED(group) == []
    assert RESTRICTED(mutate(group, root_worker)) == [
        'deepseek-r1 (worker): container "vllm" must not set securityContext.runAsUser=0'
    ]
    template = gateway().props["spec"]["template"]
    job = mutate(gateway(), lambda p: p.update(kind="Job", apiVersion="batch/v1", spec={"template": template}))
    cron = mutate(job, lambda p: p.update(kind="CronJob", spec={"jobTemplate": {"spec": p["spec"]}}))
    assert RESTRICTED(job) == RESTRICTED(cron) == []
    privileged = mutate(cron, lambda p: p["spec"]["jobTemplate"]["spec"]["template"]["spec"].update(hostIPC=True))
    assert RESTRICTED(privileged) == ["llm-gateway: pod must not set hostIPC=true"]


def test_service_links_must_be_off() -> None:
    assert SERVICE_LINKS(gateway()) == []
    assert SERVICE_LINKS(mutate(gateway(), lambda p: pod_spec(p).update(enableServiceLinks=True))) == [
        "llm-gateway: set enableServiceLinks: false (Services would inject *_PORT/*_HOST variables)"
    ]


def replaced(stack: str, changed: Any) -> list[Any]:
    return [changed if r.kind == changed.kind and r.object_name == changed.object_name else r for r in resources(stack)]


def test_only_a_bound_service_account_mounts_its_token() -> None:
    # vllm-router (dev) discovers model servers through the API: its account is bound to a Role.
    router = gateway("dev")
    assert pod_spec(dict(router.props))["serviceAccountName"] == "llm-gateway"
    assert API_TOKENS(resources("dev")) == []
    unbound = [r for r in resources("dev") if r.kind != "RoleBinding"]
    assert API_TOKENS(unbound) == [
        "llm-gateway: mounts the API token of service account 'llm-gateway', which no role of the stack needs; "
        "set automountServiceAccountToken: false"
    ]
    # LiteLLM (example-gke) needs no API: without automountServiceAccountToken: false it would mount the default
    # token.
    litellm = mutate(gateway("example-gke"), lambda p: pod_spec(p).pop("automountServiceAccountToken", None))
    assert API_TOKENS(replaced("example-gke", litellm)) == [
        "llm-gateway: mounts the API token of service account 'default', which no role of the stack needs; "
        "set automountServiceAccountToken: false"
    ]


def test_a_service_account_that_opts_out_needs_no_pod_setting() -> None:
    """The pod's automountServiceAccountToken wins; unset, its service account's applies."""
    router = mutate(gateway("dev"), lambda p: pod_spec(p).pop("automountServiceAccountToken", None))
    account = mutate(first("dev", "ServiceAccount"), lambda p: p.update(automountServiceAccountToken=False))
    stack = [r for r in replaced("dev", router) if r.kind not in ("RoleBinding", "ServiceAccount")]
    assert API_TOKENS([*stack, account]) == []
    assert API_TOKENS(stack) != []


def test_the_serving_namespace_enforces_restricted() -> None:
    namespace = first("prod", "Namespace", "llm")
    assert namespace.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert SERVING_NAMESPACE(resources("prod")) == []
    baseline = mutate(
        namespace, lambda p: p["metadata"]["labels"].update({"pod-security.kubernetes.io/enforce": "baseline"})
    )
    assert SERVING_NAMESPACE(replaced("prod", baseline)) == [
        "namespace llm: enforces Pod Security baseline, not restricted; "
        "set pod-security.kubernetes.io/enforce: restricted"
    ]


def test_a_namespace_labelled_part_of_the_project_enforces_restricted_without_pods() -> None:
    """Chart namespaces (monitoring: privileged) keep their level; one labelled part-of llm-cluster may not."""
    monitoring = first("prod", "Namespace", "monitoring")
    assert SERVING_NAMESPACE(replaced("prod", monitoring)) == []
    ours = mutate(monitoring, lambda p: p["metadata"]["labels"].update({"app.kubernetes.io/part-of": "llm-cluster"}))
    assert SERVING_NAMESPACE(replaced("prod", ours)) == [
        "namespace monitoring: enforces Pod Security privileged, not restricted; "
        "set pod-security.kubernetes.io/enforce: restricted"
    ]
