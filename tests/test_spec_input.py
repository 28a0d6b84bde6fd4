"""Input the API server or the cluster would trip over is refused at plan time, naming the field and the fix."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from components.spec import SpecError, load_cluster_spec
from components.tools.render import run_program
from testbed.stacks import stack_config


def prod(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(stack_config("prod"))
    config.update(changes)
    return dict(config)


def refused(config: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as raised:
        load_cluster_spec(config)
    return str(raised.value)


@pytest.mark.parametrize("namespace", ["kube-system", "default", "monitoring", "gpu-operator"])
def test_system_and_chart_namespaces_are_refused(namespace: str) -> None:
    assert f"namespace: {namespace!r} belongs to Kubernetes or to a chart" in refused(prod(namespace=namespace))


def test_a_model_named_like_the_gateways_objects_is_refused() -> None:
    config = prod()
    config["models"][0]["name"] = "llm-gateway"
    assert "models[0].name: 'llm-gateway' is taken by the gateway's objects" in refused(config)


def test_a_node_in_two_pools_is_refused() -> None:
    config = prod()
    config["pools"][1]["backend"]["nodeNames"] = ["gpu-h100-01", "gpu-4090-02"]
    said = refused(config)
    assert "pools[1].backend.nodeNames[0]: 'gpu-h100-01' is already in pool 'h100'; a node belongs to one pool" in said


@pytest.mark.parametrize("hostname", ["https://llm.example.internal", "llm.example.internal/v1", "LLM example"])
def test_a_hostname_with_a_scheme_or_path_is_refused(hostname: str) -> None:
    config = prod()
    config["auth"]["hostname"] = hostname
    assert f"auth.hostname: {hostname!r} is not a host name" in refused(config)


def test_a_gateway_timeout_the_route_cannot_express_is_refused() -> None:
    config = prod()
    config["gateway"]["timeoutSeconds"] = 100000
    assert "gateway.timeoutSeconds: 100000 is over 99939" in refused(config)


@pytest.mark.parametrize(
    ("metric", "target", "unit"),
    [
        ("vllm:kv_cache_usage_perc", 80, "a fraction, 0-1"),
        ("vllm:num_requests_running", 0.0001, "requests per pod"),
        ("DCGM_FI_DEV_GPU_UTIL", 0.8, "percent"),
    ],
)
def test_hpa_targets_must_be_in_the_metrics_units(metric: str, target: float, unit: str) -> None:
    config = prod()
    config["models"][0]["autoscaling"].update(metric=metric, target=target)
    assert f"models[0].autoscaling.target: {target:g} is outside" in refused(config)
    assert f"({unit}); give a target in its units" in refused(config)


# ---------------------------------------------------------------- the Kubernetes API's rules (spec/api_rules.py)

SUBDOMAIN_RULE = (
    "as an RFC 1123 subdomain (lowercase letters, digits, '-' and '.', each part starting and ending with a letter "
    "or digit)"
)


def set_field(config: dict[str, Any], keys: tuple[str | int, ...], value: Any) -> None:
    parent: Any = config
    for key in keys[:-1]:
        parent = parent[key]
    parent[keys[-1]] = value


@pytest.mark.parametrize(
    ("keys", "path", "value", "kind", "look_up"),
    [
        (("storageClass",), "storageClass", "Ceph_Block", "StorageClass", "use a name `kubectl get storageclass`"),
        (("weightsStorageClass",), "weightsStorageClass", "cephfs.", "StorageClass", "use a name `kubectl get"),
        (("auth", "tlsSecretName"), "auth.tlsSecretName", "llm api tls", "Secret", "use the name of the Secret as"),
        (("monitoring", "alertmanagerConfigSecret"), "monitoring.alertmanagerConfigSecret", "-alerts", "Secret",
         "use the name of the Secret as `kubectl get secret -n <namespace>` lists it"),
        (("pools", 0, "backend", "nodeNames", 1), "pools[0].backend.nodeNames[1]", "GPU-H100-02", "Node",
         "use the name `kubectl get nodes` shows"),
    ],
)  # fmt: skip
def test_names_of_existing_objects_must_be_rfc_1123_subdomains(
    keys: tuple[str | int, ...], path: str, value: str, kind: str, look_up: str
) -> None:
    config = prod()
    set_field(config, keys, value)
    said = refused(config)
    assert f"{path}: {value!r} is not a valid name for a {kind}; Kubernetes names a {kind} {SUBDOMAIN_RULE}" in said
    assert look_up in said


def test_a_client_key_secret_longer_than_253_characters_is_refused() -> None:
    config = prod()
    config["auth"]["clients"][0]["keySecret"] = "k" * 254
    assert f"auth.clients[0].keySecret: {'k' * 57!r}... is longer than 253 characters for a Secret" in refused(config)


def test_a_host_name_longer_than_dns_allows_is_refused() -> None:
    config = prod()
    config["auth"]["hostname"] = "a" * 64 + ".example.com"
    assert "is longer than a DNS name can be (253 characters, 63 between dots; RFC 1123)" in refused(config)


@pytest.mark.parametrize("size", ["0Gi", "0.0Mi", "000Ti"])
def test_a_zero_volume_size_is_refused(size: str) -> None:
    config = prod()
    config["monitoring"]["prometheus"] = {"size": size}
    assert (
        f"monitoring.prometheus.size: {size!r} is zero; a PersistentVolumeClaim must request more than zero storage; "
        "give e.g. 50Gi"
    ) in refused(config)


def test_a_volume_size_past_the_quantity_range_is_refused() -> None:
    config = prod()
    config["monitoring"]["grafana"] = {"size": "9999999Ti"}
    assert "monitoring.grafana.size: '9999999Ti' is more than a Kubernetes quantity holds (2^63-1 bytes" in refused(
        config
    )


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("retention", "0d", "is zero, which Prometheus reads as its default"),
        ("scrapeInterval", "0s", "is zero, which Prometheus reads as its default"),
        ("retention", "300y", "is longer than Prometheus can hold (292 years)"),
        ("scrapeInterval", "9" * 40 + "s", "is longer than Prometheus can hold (292 years)"),
    ],
)
def test_prometheus_durations_must_be_above_zero_and_fit(key: str, value: str, problem: str) -> None:
    config = prod()
    config["monitoring"][key] = value
    said = refused(config)
    assert f"monitoring.{key}: " in said and problem in said and "give e.g. 30s or 15d" in said


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["pools"][0]["backend"].update(nodeNames=[f"n{i}" for i in range(5001)]),
         "pools[0].backend.nodeNames: 5001 is more than the 5000 nodes a Kubernetes cluster holds"),
        (lambda c: c["models"][1]["autoscaling"].update(maxReplicas=10**40),
         f"models[1].autoscaling.maxReplicas: {10**40} is more than the 150000 pods a Kubernetes cluster holds"),
        (lambda c: c["models"][3].update(replicas=150001), "models[3].replicas: 150001 is more than the 150000 pods"),
        (lambda c: c["gateway"].update(maxReplicas=2**31), "gateway.maxReplicas: 2147483648 is more than the 150000"),
    ],
)  # fmt: skip
def test_counts_past_what_a_cluster_holds_are_refused(change: Any, message: str) -> None:
    """Past these the planner would place every replica (10**40 of them) before saying they do not fit."""
    config = prod()
    change(config)
    said = refused(config)
    assert message in said and "(kubernetes.io/docs/setup/best-practices/cluster-large); lower it" in said


@pytest.mark.parametrize(("key", "value"), [("paramsB", float("inf")), ("gpuMemoryUtilization", float("nan"))])
def test_nan_and_infinity_are_refused(key: str, value: float) -> None:
    config = prod()
    config["models"][0][key] = value
    assert f"models[0].{key}: must be a finite number (got {value})" in refused(config)


def test_a_seed_numpy_cannot_take_is_refused() -> None:
    config = prod()
    config["models"][0]["seed"] = 2**32
    assert "models[0].seed: 4294967296 is out of range; use a value <= 4294967295" in refused(config)


@pytest.mark.parametrize("model", ["\n", "Qwen/Qwen3 32B", "a/b/c", "Qwen--x/y", "org/model.git"])
def test_a_model_that_is_not_a_hugging_face_id_is_refused(model: str) -> None:
    config = prod()
    config["models"][0]["model"] = model
    assert f"models[0].model: {model!r} is not a Hugging Face model id; write it as huggingface.co" in refused(config)


def test_an_odd_key_is_quoted_so_the_message_stays_on_one_line() -> None:
    config = prod()
    config["pools"][0]["gpus\nPerNode"] = 8
    said = refused(config)
    assert "pools[0]['gpus\\nPerNode']: unknown key; did you mean 'gpusPerNode'?" in said


def _label_values(node: Any) -> Iterator[str]:
    """Every label value in an object: metadata.labels, pod template labels, selectors."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("labels", "matchLabels") and isinstance(value, dict):
                yield from (v for v in value.values() if isinstance(v, str))
            else:
                yield from _label_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _label_values(item)


def test_the_longest_names_leave_room_for_what_kubernetes_adds() -> None:
    """40-character model and pool names (DNS_LABEL's cap) through the real program: every object name and label
    value fits 63 characters, and so do the names Kubernetes derives: a Deployment's pods `<name>-<10>-<5>`, a
    LeaderWorkerSet's StatefulSets `<name>-<group>` with their revision label `<name>-<group>-<10>`."""
    config = copy.deepcopy(stack_config("example-multinode"))
    pools = {p["name"]: f"p{i}-".ljust(40, "p") for i, p in enumerate(config["pools"])}
    for pool in config["pools"]:
        pool["name"] = pools[pool["name"]]
    for i, model in enumerate(config["models"]):
        model.update(name=f"m{i}-".ljust(40, "m"), pool=pools[model["pool"]])
    run = run_program(config)
    objects = [r for r in run.registrations if isinstance(r.inputs.get("metadata"), dict)]
    kinds = {r.type.rsplit(":", 1)[-1] for r in objects if len(r.inputs["metadata"].get("name", "")) == 40}
    assert {"Deployment", "LeaderWorkerSet", "Service"} <= kinds  # the long names reached the objects
    for registration in objects:
        name, kind = registration.inputs["metadata"].get("name", ""), registration.type.rsplit(":", 1)[-1]
        added = {"Deployment": len("-0123456789-abcde"), "LeaderWorkerSet": len("-999-0123456789")}.get(kind, 0)
        assert len(name) + added <= 63, (kind, name)
        assert all(len(value) <= 63 for value in _label_values(registration.inputs)), registration.name
