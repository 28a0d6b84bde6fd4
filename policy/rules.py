"""The policy pack's rules as pure functions over resources (type token, inputs, options), so pytest runs them too.

A resource rule takes one resource and returns its violations (empty = compliant); a stack rule takes
every resource of the stack. `policy/__main__.py` wraps them into a CrossGuard PolicyPack. The rules of issue 13's
security classes live by concern: pod_rules.py (Pod Security `restricted`, from pod_security.py; service links;
API tokens; the serving namespace's level), exposure_rules.py (ingress peers, HTTPRoute paths), data_rules.py
(`protect` on claims and namespaces); secrets in env and args are checked here. stack_resources.py holds
Resource and the pod-template readers they share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from data_rules import claims_are_protected, namespaces_holding_data_are_protected
from exposure_rules import no_namespace_wide_ingress, routes_expose_only_inference_paths
from pod_rules import (
    api_tokens_only_for_bound_accounts,
    pods_are_restricted,
    pods_have_no_service_links,
    serving_namespace_enforces_restricted,
)
from rate_limit_rules import rate_limits_hold_across_replicas
from sharing_rules import shared_gpus_hold_their_slices
from stack_resources import (
    HELM_RELEASE,
    Resource,
    ResourceRule,
    StackRule,
    containers,
    flag_value,
    number,
    pod_templates,
    template_labels,
)

from components.credentials import SECRET_FLAG, SECRET_NAME, SECRET_VALUE, is_literal
from components.labels import (
    COMPONENT_LABEL,
    GATEWAY_COMPONENT,
    GPU_TAINT_KEY,
    GPUS_PER_REPLICA_ANNOTATION,
    MODEL_SERVER_COMPONENT,
    POOL_GPUS_ANNOTATION,
    SHARED_GPU_RESOURCE,
    WEIGHTS_DOWNLOAD_COMPONENT,
)
from components.labels import GPU_RESOURCE as GPU

__all__ = ["RESOURCE_RULES", "STACK_RULES", "Resource", "ResourceRule", "StackRule", "check"]


# ---------------------------------------------------------------- resource rules


def gpu_request_equals_limit_and_plan_share(resource: Resource) -> list[str]:
    """GPU containers request exactly their limit, and as many GPUs as TP x PP spread over the group's nodes."""
    violations = []
    for role, template in pod_templates(resource):
        for c in containers(template):
            resources = c.get("resources") or {}
            limit = (resources.get("limits") or {}).get(GPU)
            request = (resources.get("requests") or {}).get(GPU)
            if limit is None and request is None:
                continue
            if str(limit) != str(request):
                violations.append(f"{resource.object_name}/{c.get('name')}: {GPU} request {request} != limit {limit}")
                continue
            args = [str(a) for a in c.get("args") or []]
            tp, pp = flag_value(args, "--tensor-parallel-size"), flag_value(args, "--pipeline-parallel-size")
            if tp is None:
                continue
            nodes = number(flag_value(args, "--nnodes") or 1)
            share = number(tp) * number(pp or 1) / nodes
            if number(limit) != share:
                violations.append(
                    f"{resource.object_name}/{c.get('name')} ({role}): {limit} GPUs, but TP {tp} x PP {pp or 1} "
                    f"over {nodes:g} node(s) needs {share:g}"
                )
    return violations


def containers_have_requests_and_limits(resource: Resource) -> list[str]:
    violations = []
    for _, template in pod_templates(resource):
        for c in containers(template):
            resources = c.get("resources") or {}
            for part in ("requests", "limits"):
                missing = [r for r in ("cpu", "memory") if r not in (resources.get(part) or {})]
                if missing:
                    violations.append(f"{resource.object_name}/{c.get('name')}: no {part} for {', '.join(missing)}")
    return violations


def images_are_pinned(resource: Resource) -> list[str]:
    violations = []
    for _, template in pod_templates(resource):
        for c in containers(template):
            image = str(c.get("image") or "")
            if "@sha256:" in image:
                continue
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            if not tag or tag == "latest":
                violations.append(
                    f"{resource.object_name}/{c.get('name')}: image {image!r} is not pinned to a tag or digest"
                )
    if resource.type == HELM_RELEASE and not resource.props.get("version"):
        violations.append(f"{resource.object_name}: Helm chart {resource.props.get('chart')} has no pinned version")
    return violations


def no_load_balancer_services(resource: Resource) -> list[str]:
    """Only the API gateway is reachable from outside, and Envoy Gateway makes its own Service."""
    if resource.kind == "Service" and (resource.props.get("spec") or {}).get("type") == "LoadBalancer":
        return [f"{resource.object_name}: Service of type LoadBalancer; expose through the API gateway"]
    return []


def _env_secrets(container: Mapping[str, Any]) -> list[str]:
    found = []
    for env in container.get("env") or []:
        name, value = str(env.get("name") or ""), env.get("value")
        if not is_literal(value):
            continue
        if SECRET_VALUE.search(value):
            found.append(f"env {name} holds a credential-looking value")
        elif SECRET_NAME.search(name):
            found.append(f"env {name} is named like a secret but holds a literal value")
    return found


def _arg_secrets(container: Mapping[str, Any]) -> list[str]:
    """Credentials in command/args: a token-looking word, or a secret-named flag (--api-key X, --api-key=X, also
    inside one item such as a shell command) with a literal value."""
    words = [
        w for item in [*(container.get("command") or []), *(container.get("args") or [])] for w in str(item).split()
    ]
    found: list[str] = []
    consumed: set[int] = set()  # words read as a secret flag's value
    for index, word in enumerate(words):
        flag, equals, value = word.partition("=")
        if not equals:
            value = words[index + 1] if index + 1 < len(words) and not words[index + 1].startswith("-") else ""
        if SECRET_FLAG.match(flag) and is_literal(value):
            found.append(f"args flag {flag} has a literal value")
            consumed.add(index + 1)
        elif SECRET_VALUE.search(word) and index not in consumed:
            found.append("command/args hold a credential-looking value")
    return found


def no_secret_values_in_env_args_or_config_maps(resource: Resource) -> list[str]:
    """No credential in a container's env values, command or args, or in a ConfigMap: they belong in Secrets, read
    through env valueFrom.secretKeyRef (and $(VAR) in args). Messages never repeat the value."""
    violations: list[str] = []
    for _, template in pod_templates(resource):
        for c in containers(template):
            violations.extend(
                f"{resource.object_name}/{c.get('name')}: {problem}; use valueFrom.secretKeyRef (and $(VAR) in args)"
                for problem in _env_secrets(c) + _arg_secrets(c)
            )
    if resource.kind == "ConfigMap":
        for key, value in (resource.props.get("data") or {}).items():
            if isinstance(value, str) and SECRET_VALUE.search(value):
                violations.append(f"{resource.object_name}: ConfigMap key {key} holds a secret value; use a Secret")
    return violations


def monitoring_is_persistent(resource: Resource) -> list[str]:
    if resource.type != HELM_RELEASE or "kube-prometheus-stack" not in str(resource.props.get("chart")):
        return []
    values = resource.props.get("values") or {}
    violations = []
    prometheus = ((values.get("prometheus") or {}).get("prometheusSpec") or {}).get("storageSpec")
    if not prometheus:
        violations.append(f"{resource.object_name}: Prometheus has no storageSpec (data lost on restart)")
    alertmanager = ((values.get("alertmanager") or {}).get("alertmanagerSpec") or {}).get("storage")
    if not alertmanager:
        violations.append(f"{resource.object_name}: Alertmanager has no storage (silences lost on restart)")
    if not ((values.get("grafana") or {}).get("persistence") or {}).get("enabled"):
        violations.append(f"{resource.object_name}: Grafana persistence is off")
    return violations


def model_servers_have_probes(resource: Resource) -> list[str]:
    violations = []
    for role, template in pod_templates(resource):
        if template_labels(template).get(COMPONENT_LABEL) != MODEL_SERVER_COMPONENT or role == "worker":
            continue  # LeaderWorkerSet workers serve no HTTP; their leader answers for the group
        for c in containers(template):
            missing = [p for p in ("startupProbe", "readinessProbe", "livenessProbe") if p not in c]
            if missing:
                violations.append(f"{resource.object_name}/{c.get('name')}: model server without {', '.join(missing)}")
    return violations


def only_gpu_pods_tolerate_gpu_taints(resource: Resource) -> list[str]:
    """Except a weights download, which binds a ReadWriteOnce claim to the GPU node its servers will mount it on."""
    violations = []
    for _, template in pod_templates(resource):
        if template_labels(template).get(COMPONENT_LABEL) == WEIGHTS_DOWNLOAD_COMPONENT:
            continue
        tolerations = (template.get("spec") or {}).get("tolerations") or []
        if not any(t.get("key") == GPU_TAINT_KEY for t in tolerations):
            continue
        limits = [(c.get("resources") or {}).get("limits") or {} for c in containers(template)]
        uses_gpu = any(GPU in lim or SHARED_GPU_RESOURCE in lim for lim in limits)  # a whole GPU or a slice of one
        if not uses_gpu:
            violations.append(f"{resource.object_name}: tolerates the GPU taint but requests no GPU")
    return violations


def hpa_bounds_fit_the_pool(resource: Resource) -> list[str]:
    """min <= max, and max replicas x GPUs per replica within the pool's GPUs (annotated from the plan)."""
    if resource.kind != "HorizontalPodAutoscaler":
        return []
    spec = resource.props.get("spec") or {}
    low, high = number(spec.get("minReplicas", 1)), number(spec.get("maxReplicas"))
    violations = []
    if not low <= high:
        violations.append(f"{resource.object_name}: minReplicas {low:g} > maxReplicas {high:g}")
    notes = (resource.props.get("metadata") or {}).get("annotations") or {}
    if POOL_GPUS_ANNOTATION in notes:
        per_replica = number(notes.get(GPUS_PER_REPLICA_ANNOTATION))
        pool = number(notes[POOL_GPUS_ANNOTATION])
        if high * per_replica > pool:
            violations.append(
                f"{resource.object_name}: {high:g} replicas x {per_replica:g} GPUs exceed the pool's {pool:g} GPUs"
            )
    return violations


def gateways_run_as_non_root(resource: Resource) -> list[str]:
    violations = []
    for _, template in pod_templates(resource):
        if template_labels(template).get(COMPONENT_LABEL) != GATEWAY_COMPONENT:
            continue
        pod = (template.get("spec") or {}).get("securityContext") or {}
        for c in containers(template):
            own = c.get("securityContext") or {}
            if not (own.get("runAsNonRoot") or pod.get("runAsNonRoot")):
                violations.append(f"{resource.object_name}/{c.get('name')}: gateway may run as root; set runAsNonRoot")
            if own.get("allowPrivilegeEscalation", True):
                violations.append(f"{resource.object_name}/{c.get('name')}: gateway allows privilege escalation")
    return violations


def volumes_have_a_storage_class(resource: Resource) -> list[str]:
    if resource.kind == "PersistentVolumeClaim" and not (resource.props.get("spec") or {}).get("storageClassName"):
        return [f"{resource.object_name}: PersistentVolumeClaim without storageClassName"]
    return []


def namespaces_enforce_pod_security(resource: Resource) -> list[str]:
    if resource.kind != "Namespace":
        return []
    labels = (resource.props.get("metadata") or {}).get("labels") or {}
    if "pod-security.kubernetes.io/enforce" not in labels:
        return [f"{resource.object_name}: namespace without a pod-security.kubernetes.io/enforce level"]
    return []


# ---------------------------------------------------------------- stack rules


def every_workload_namespace_has_a_network_policy(resources: list[Resource]) -> list[str]:
    """Namespaces where the stack runs its own workloads (not chart-managed ones) have a NetworkPolicy."""
    workload_namespaces = {r.namespace for r in resources if any(True for _ in pod_templates(r)) and r.namespace}
    covered = {r.namespace for r in resources if r.kind == "NetworkPolicy"}
    return [f"namespace {ns}: workloads but no NetworkPolicy" for ns in sorted(workload_namespaces - covered)]


def multi_replica_workloads_have_a_pdb(resources: list[Resource]) -> list[str]:
    scaled = {r.object_name for r in resources if r.kind == "HorizontalPodAutoscaler"}
    budgets = [
        ((r.props.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        for r in resources
        if r.kind == "PodDisruptionBudget"
    ]
    violations = []
    for r in resources:
        if r.kind not in ("Deployment", "LeaderWorkerSet"):
            continue
        replicas = number((r.props.get("spec") or {}).get("replicas", 1))
        if replicas <= 1 and r.object_name not in scaled:
            continue
        labels = next((template_labels(t) for _, t in pod_templates(r)), {})
        if not any(selector and all(labels.get(k) == v for k, v in selector.items()) for selector in budgets):
            violations.append(f"{r.object_name}: more than one replica but no PodDisruptionBudget selects its pods")
    return violations


RESOURCE_RULES: dict[str, ResourceRule] = {
    "gpu-request-equals-limit-and-plan-share": gpu_request_equals_limit_and_plan_share,
    "containers-have-requests-and-limits": containers_have_requests_and_limits,
    "images-are-pinned": images_are_pinned,
    "no-load-balancer-services": no_load_balancer_services,
    "no-secret-values-in-env-args-or-config-maps": no_secret_values_in_env_args_or_config_maps,
    "monitoring-is-persistent": monitoring_is_persistent,
    "model-servers-have-probes": model_servers_have_probes,
    "only-gpu-pods-tolerate-gpu-taints": only_gpu_pods_tolerate_gpu_taints,
    "hpa-bounds-fit-the-pool": hpa_bounds_fit_the_pool,
    "gateways-run-as-non-root": gateways_run_as_non_root,
    "volumes-have-a-storage-class": volumes_have_a_storage_class,
    "namespaces-enforce-pod-security": namespaces_enforce_pod_security,
    # Issue 13's classes: pod hardening, ingress by namespace, route exposure, unprotected claims (secrets in env
    # and args: no-secret-values-in-env-args-or-config-maps above).
    "pods-are-restricted": pods_are_restricted,
    "pods-have-no-service-links": pods_have_no_service_links,
    "no-namespace-wide-ingress": no_namespace_wide_ingress,
    "routes-expose-only-inference-paths": routes_expose_only_inference_paths,
    "claims-are-protected": claims_are_protected,
    # Issue 18: a slice of a shared GPU is one slice, no whole GPU, and within its share of the GPU's memory.
    "shared-gpus-hold-their-slices": shared_gpus_hold_their_slices,
}
STACK_RULES: dict[str, StackRule] = {
    "every-workload-namespace-has-a-network-policy": every_workload_namespace_has_a_network_policy,
    "multi-replica-workloads-have-a-pdb": multi_replica_workloads_have_a_pdb,
    "api-tokens-only-for-bound-accounts": api_tokens_only_for_bound_accounts,
    "serving-namespace-enforces-restricted": serving_namespace_enforces_restricted,
    "namespaces-holding-data-are-protected": namespaces_holding_data_are_protected,
    "rate-limits-hold-across-replicas": rate_limits_hold_across_replicas,
}


def check(resources: list[Resource]) -> dict[str, list[str]]:
    """Every rule over a stack's resources: rule name -> violations (only rules that found some)."""
    found: dict[str, list[str]] = {}
    for name, rule in RESOURCE_RULES.items():
        violations = [v for r in resources for v in rule(r)]
        if violations:
            found[name] = violations
    for name, stack_rule in STACK_RULES.items():
        violations = stack_rule(resources)
        if violations:
            found[name] = violations
    return found
