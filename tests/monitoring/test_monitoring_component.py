"""Monitoring and autoscaling as the program renders them: volumes, retention, secrets, scrape objects, HPAs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.autoscaling import ADAPTER_METRICS, quantity
from components.monitoring import DASHBOARDS_DIR, GRAFANA_ADMIN_SECRET, static_rule_groups
from components.spec import SpecError, load_cluster_spec
from components.stacks import load_stack, plan_for
from testbed.fake_vllm import FakeVllm
from testbed.stacks import STACKS, rendered, stack_config

# vLLM 0.13's gauge names, from vllm/v1/metrics/loggers.py (the metrics the adapter may expose per pod).
VLLM_GAUGES = {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"}


def objects(stack: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in rendered(stack).manifests if o["kind"] == kind}


def monitoring_of(stack: str) -> dict[str, Any]:
    return dict(stack_config(stack).get("monitoring", {}))


def stack_values(stack: str) -> dict[str, Any]:
    return dict(rendered(stack).helm_releases["kube-prometheus-stack"]["values"])


@pytest.mark.parametrize("stack", STACKS)
def test_volumes_retention_and_interval_come_from_the_spec(stack: str) -> None:
    spec = monitoring_of(stack)
    values = stack_values(stack)
    storage_class = stack_config(stack)["storageClass"]
    prometheus = values["prometheus"]["prometheusSpec"]
    assert prometheus["retention"] == spec.get("retention", "15d")
    assert prometheus["scrapeInterval"] == spec.get("scrapeInterval", "30s")
    claim = prometheus["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["resources"]["requests"]["storage"] == spec.get("prometheus", {}).get("size", "50Gi")
    assert claim["storageClassName"] == storage_class
    alertmanager = values["alertmanager"]["alertmanagerSpec"]["storage"]["volumeClaimTemplate"]["spec"]
    assert alertmanager["resources"]["requests"]["storage"] == spec.get("alertmanager", {}).get("size", "10Gi")
    grafana = values["grafana"]["persistence"]
    assert grafana["enabled"] is True and grafana["size"] == spec.get("grafana", {}).get("size", "10Gi")
    assert grafana["storageClassName"] == storage_class
    assert values["nodeExporter"]["enabled"] and values["kubeStateMetrics"]["enabled"]
    assert values["grafana"]["sidecar"]["dashboards"]["enabled"] is True


def test_staging_keeps_the_seed_retention_and_volumes() -> None:
    values = stack_values("staging")
    prometheus = values["prometheus"]["prometheusSpec"]
    assert prometheus["retention"] == "15d"
    assert prometheus["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert values["grafana"]["persistence"]["size"] == "10Gi"
    storage = values["alertmanager"]["alertmanagerSpec"]["storage"]["volumeClaimTemplate"]["spec"]
    assert storage["resources"]["requests"]["storage"] == "10Gi"


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_password_is_wired_by_reference(stack: str) -> None:
    values = stack_values(stack)
    assert values["grafana"]["admin"] == {
        "existingSecret": GRAFANA_ADMIN_SECRET,
        "userKey": "admin-user",
        "passwordKey": "admin-password",
    }
    text = json.dumps(values)
    assert "<secret>" not in text and "<generated>" not in text and "adminPassword" not in text
    secret = objects(stack, "Secret")[GRAFANA_ADMIN_SECRET]
    assert secret["metadata"]["namespace"] == "monitoring"
    assert secret["stringData"] == {"admin-password": "<secret>", "admin-user": "<secret>"}
    assert rendered(stack).exports["grafanaAdminPassword"] is not None


def test_alertmanager_receivers_come_from_the_operators_secret() -> None:
    config = stack_config("dev")
    config["monitoring"]["alertmanagerConfigSecret"] = "alertmanager-receivers"
    from components.tools.render import run_program

    values = run_program(config).helm_releases["kube-prometheus-stack"]["values"]
    assert values["alertmanager"]["alertmanagerSpec"]["configSecret"] == "alertmanager-receivers"


@pytest.mark.parametrize("stack", STACKS)
def test_scrape_objects_rules_and_dashboards(stack: str) -> None:
    (vllm,) = objects(stack, "PodMonitor")["vllm"]["spec"]["podMetricsEndpoints"]
    assert vllm["port"] == "http" and vllm["path"] == "/metrics" and vllm["honorLabels"] is True
    assert {"targetLabel": "job", "replacement": "vllm"} in vllm["relabelings"]
    gateway = objects(stack, "ServiceMonitor")["llm-gateway"]["spec"]["endpoints"][0]
    # LiteLLM serves /metrics/ on its API port; vllm-router has a metrics port of its own.
    litellm = plan_for(load_stack(stack)).gateway.kind == "litellm"
    assert (gateway["path"], gateway["port"]) == (("/metrics/", "http") if litellm else ("/metrics", "metrics"))
    assert objects(stack, "PodMonitor")["envoy"]["metadata"]["namespace"] == "envoy-gateway-system"
    groups = {g["name"]: g for g in objects(stack, "PrometheusRule")["llm-cluster"]["spec"]["groups"]}
    objectives = groups["llm-cluster-objectives"]["rules"]
    models = {m["name"]: m for m in rendered(stack).exports["plan"]["models"]}
    slo = {
        r["labels"]["model_name"]: r["expr"] for r in objectives if r["record"] == "llm_cluster:model_ttft_slo_seconds"
    }
    assert slo == {name: f"vector({m['slo']['ttft_p95_seconds']:g})" for name, m in models.items()}
    assert {g["name"] for g in static_rule_groups()} <= set(groups)
    dashboards = {
        o["metadata"]["name"]: o
        for o in objects(stack, "ConfigMap").values()
        if o["metadata"]["labels"].get("grafana_dashboard") == "1"
    }
    assert len(dashboards) == len(list(DASHBOARDS_DIR.glob("*.json"))) == 4
    for config_map in dashboards.values():
        for content in config_map["data"].values():
            assert json.loads(content)["uid"]
    operator = rendered(stack).helm_releases["gpu-operator"]["values"]["dcgmExporter"]["serviceMonitor"]
    assert operator["enabled"] is True and operator["honorLabels"] is True


@pytest.mark.parametrize("stack", STACKS)
def test_hpas_match_the_spec_and_fixed_models_have_none(stack: str) -> None:
    hpas = objects(stack, "HorizontalPodAutoscaler")
    for model in rendered(stack).exports["plan"]["models"]:
        scaling = model["autoscaling"]
        if scaling is None:
            assert model["name"] not in hpas
            continue
        spec = hpas[model["name"]]["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (scaling["min_replicas"], scaling["max_replicas"])
        metric = spec["metrics"][0]["pods"]
        assert metric["metric"]["name"] == ADAPTER_METRICS[scaling["metric"]].name
        assert metric["target"] == {"type": "AverageValue", "averageValue": quantity(scaling["target"])}
        assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == scaling["scale_up_stabilization_seconds"]
        assert (
            spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == scaling["scale_down_stabilization_seconds"]
        )
        kind = "Deployment" if model["nodes_per_replica"] == 1 else "LeaderWorkerSet"
        assert spec["scaleTargetRef"]["kind"] == kind and spec["scaleTargetRef"]["name"] == model["name"]


def test_staging_scales_ministral_one_to_three_on_running_requests_at_50() -> None:
    spec = objects("staging", "HorizontalPodAutoscaler")["ministral-14b"]["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 3)
    assert spec["metrics"][0]["pods"] == {
        "metric": {"name": "vllm_num_requests_running"},
        "target": {"type": "AverageValue", "averageValue": "50"},
    }


def test_adapter_rules_name_series_the_stand_in_and_vllm_expose() -> None:
    values = rendered("staging").helm_releases["prometheus-adapter"]["values"]
    rules = values["rules"]["custom"]
    exposed = FakeVllm("w", ["m"], 1, 0, 0).metrics()
    for metric in ADAPTER_METRICS.values():
        (rule,) = [r for r in rules if r["name"]["as"] == metric.name]
        assert f'__name__="{metric.series}"' in rule["seriesQuery"]
        if metric.series.startswith("vllm:"):
            assert metric.series in VLLM_GAUGES
            assert f"\n{metric.series}{{" in f"\n{exposed}"
    assert values["prometheus"]["url"] == "http://kube-prometheus-stack-prometheus.monitoring.svc"


def test_autoscaling_needs_monitoring() -> None:
    config = stack_config("staging")
    config["monitoring"]["enabled"] = False
    with pytest.raises(SpecError) as caught:
        load_cluster_spec(config)
    assert caught.value.errors == [
        "models[0].autoscaling: the HPA reads custom metrics from Prometheus; set monitoring.enabled: true "
        "or give fixed replicas"
    ]
