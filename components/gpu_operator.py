"""GpuOperator: the NVIDIA GPU Operator (device plugin, GPU Feature Discovery, DCGM exporter) from its pinned chart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.charts import chart_namespace, chart_pin, helm_release
from components.device_plugin import device_plugin_values
from components.monitoring import PROJECT_SELECTOR, PROMETHEUS_SELECTOR
from components.planning.types import PoolPlan


@dataclass(frozen=True)
class GpuOperatorArgs:
    pools: list[PoolPlan]
    # The DCGM exporter's ServiceMonitor needs the Prometheus Operator CRDs (the monitoring stack).
    service_monitor: bool = False


class GpuOperator(pulumi.ComponentResource):
    """One operator per cluster; per-pool driver/toolkit choices are node labels set by GpuNodePool."""

    def __init__(self, name: str, args: GpuOperatorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:gpu_operator:GpuOperator", name, None, opts)
        pin = chart_pin("gpu-operator")
        # Its operands are privileged (driver, toolkit, device plugin need host access).
        self.namespace = chart_namespace(f"{name}-namespace", "gpu-operator", "privileged", self)
        values = {
            "driver": {"enabled": any(p.install_driver for p in args.pools)},
            "toolkit": {"enabled": any(p.install_toolkit for p in args.pools)},
            # honorLabels keeps the namespace/pod of the GPU's workload that DCGM attaches to each series. The
            # operator copies additionalLabels onto the nvidia-dcgm-exporter ServiceMonitor it creates
            # (controllers/object_controls.go), which is how our Prometheus selects it.
            "dcgmExporter": {
                "serviceMonitor": {
                    "enabled": args.service_monitor,
                    "honorLabels": True,
                    "additionalLabels": dict(PROMETHEUS_SELECTOR),
                }
            },
            # Shared GPUs: the device plugin's per-node configs (components/device_plugin.py); none without sharing.
            **device_plugin_values(args.pools),
        }
        self.release = helm_release(
            "gpu-operator", values, pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        )
        if args.service_monitor:
            # The operator's own `gpu-operator` ServiceMonitor has fixed labels (no value sets them, and the operator
            # reverts edits), so this one, selected by our Prometheus, scrapes the same Service port instead.
            k8s.apiextensions.CustomResource(
                f"{name}-metrics",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata={
                    "name": "gpu-operator-metrics",
                    "namespace": pin.namespace,
                    "labels": {**PROJECT_SELECTOR, **PROMETHEUS_SELECTOR},
                },
                spec=operator_service_monitor(pin.namespace),
                # The CRD comes with the monitoring stack, which the component's own options wait for.
                opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self, depends_on=[self.release])),
            )
        self.register_outputs({"namespace": pin.namespace})


def operator_service_monitor(namespace: str) -> dict[str, Any]:
    """The operator's metrics as its own ServiceMonitor would scrape them (assets/state-operator-metrics at
    v25.10.1: Service `gpu-operator`, label app=gpu-operator, port gpu-operator-metrics)."""
    return {
        "selector": {"matchLabels": {"app": "gpu-operator"}},
        "namespaceSelector": {"matchNames": [namespace]},
        "endpoints": [{"port": "gpu-operator-metrics", "path": "/metrics"}],
    }
