"""Input the API server or the cluster would trip over is refused at plan time, naming the field and the fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.spec import SpecError, load_cluster_spec
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
