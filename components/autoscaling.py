"""Autoscaling: prometheus-adapter (pinned chart) exposing vLLM and DCGM series as custom metrics, and an
autoscaling/v2 HPA per autoscaled model with the plan's metric, target, bounds and windows.

Fixed-replica models get no HPA. The LLM gateway scales on CPU (components/gateway.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.charts import chart_pin, helm_release
from components.labels import (
    GPUS_PER_REPLICA_ANNOTATION,
    MODEL_LABEL,
    MODEL_SERVER_COMPONENT,
    POOL_GPUS_ANNOTATION,
    common_labels,
)
from components.planning.engine_versions import ENGINE_VERSIONS
from components.planning.types import ModelPlan, PoolPlan


@dataclass(frozen=True)
class AdapterMetric:
    """A Prometheus series served as a per-pod custom metric."""

    name: str  # the custom metric's name (Kubernetes metric names cannot hold ':')
    series: str  # the Prometheus series
    aggregation: str  # how a pod's series (e.g. one per GPU) fold into one value


def vllm_series(field: str) -> str:
    """A gauge's name in every supported vLLM release (MetricNames in engine_versions.py), `|`-joined should a
    release rename it, so one adapter rule serves pods of every release."""
    return "|".join(sorted({getattr(v.metrics, field) for v in ENGINE_VERSIONS.values()}))


# Spec metric -> how prometheus-adapter exposes it. DCGM attaches GPU series to the pod using the GPU.
ADAPTER_METRICS = {
    "vllm:num_requests_running": AdapterMetric("vllm_num_requests_running", vllm_series("running"), "sum"),
    "vllm:num_requests_waiting": AdapterMetric("vllm_num_requests_waiting", vllm_series("waiting"), "sum"),
    "vllm:kv_cache_usage_perc": AdapterMetric("vllm_kv_cache_usage_perc", vllm_series("kv_cache_usage"), "max"),
    "DCGM_FI_DEV_GPU_UTIL": AdapterMetric("gpu_utilization_percent", "DCGM_FI_DEV_GPU_UTIL", "avg"),
}
# The API group of each workload kind the plan picks, for the HPA's scaleTargetRef.
WORKLOAD_API_VERSIONS = {"Deployment": "apps/v1", "LeaderWorkerSet": "leaderworkerset.x-k8s.io/v1"}
SCALE_UP_PODS_PER_MINUTE = 2
SCALE_DOWN_PODS_PER_FIVE_MINUTES = 1


def adapter_rules() -> list[dict[str, Any]]:
    """prometheus-adapter `rules.custom`: each series by namespace and pod, renamed to its custom metric."""
    return [
        {
            "seriesQuery": f'{{__name__{"=~" if "|" in m.series else "="}"{m.series}",namespace!="",pod!=""}}',
            "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
            "name": {"matches": "^.*$", "as": m.name},
            "metricsQuery": f"{m.aggregation}(<<.Series>>{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)",
        }
        for m in ADAPTER_METRICS.values()
    ]


def quantity(value: float) -> str:
    """A Kubernetes quantity: whole numbers as they are, fractions in milli-units."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def hpa_spec(model: ModelPlan) -> dict[str, Any]:
    scaling = model.autoscaling
    if scaling is None:
        raise ValueError(f"{model.name}: fixed replicas, no HPA")
    metric = ADAPTER_METRICS[scaling.metric]
    return {
        "scaleTargetRef": {
            "apiVersion": WORKLOAD_API_VERSIONS[model.workload],
            "kind": model.workload,
            "name": model.name,
        },
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": metric.name},
                    "target": {"type": "AverageValue", "averageValue": quantity(scaling.target)},
                },
            }
        ],
        # Scale up fast (a replica takes minutes to load its weights), down slowly.
        "behavior": {
            "scaleUp": {
                "stabilizationWindowSeconds": scaling.scale_up_stabilization_seconds,
                "selectPolicy": "Max",
                "policies": [
                    {"type": "Pods", "value": SCALE_UP_PODS_PER_MINUTE, "periodSeconds": 60},
                    {"type": "Percent", "value": 100, "periodSeconds": 60},
                ],
            },
            "scaleDown": {
                "stabilizationWindowSeconds": scaling.scale_down_stabilization_seconds,
                "selectPolicy": "Min",
                "policies": [{"type": "Pods", "value": SCALE_DOWN_PODS_PER_FIVE_MINUTES, "periodSeconds": 300}],
            },
        },
    }


@dataclass(frozen=True)
class AutoscalingArgs:
    models: list[ModelPlan]
    pools: list[PoolPlan]
    namespace: str


class Autoscaling(pulumi.ComponentResource):
    """prometheus-adapter and the models' HPAs."""

    def __init__(self, name: str, args: AutoscalingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:autoscaling:Autoscaling", name, None, opts)
        scaled = [m for m in args.models if m.autoscaling is not None]
        pool_gpus = {p.name: p.gpus_total for p in args.pools}
        self.adapter = helm_release(
            "prometheus-adapter",
            {"rules": {"custom": adapter_rules()}},
            pulumi.ResourceOptions(parent=self),
        )
        self.hpas = {
            model.name: k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-{model.name}",
                metadata={
                    "name": model.name,
                    "namespace": args.namespace,
                    "labels": {
                        **common_labels(model.name, MODEL_SERVER_COMPONENT, model.vllm_version),
                        MODEL_LABEL: model.name,
                    },
                    # What the plan checked; the policy pack re-checks maxReplicas against them.
                    "annotations": {
                        POOL_GPUS_ANNOTATION: str(pool_gpus[model.pool]),
                        GPUS_PER_REPLICA_ANNOTATION: str(model.gpus_per_replica),
                    },
                },
                spec=hpa_spec(model),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.adapter]),
            )
            for model in scaled
        }
        self.register_outputs(
            {"hpas": sorted(self.hpas), "adapter_namespace": chart_pin("prometheus-adapter").namespace}
        )
