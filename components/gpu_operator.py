"""GpuOperator: the NVIDIA GPU Operator (device plugin, GPU Feature Discovery, DCGM exporter) from its pinned chart."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.charts import chart_namespace, chart_pin, helm_release
from components.sizing import PoolPlan


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
            # honorLabels keeps the namespace/pod of the GPU's workload that DCGM attaches to each series.
            "dcgmExporter": {
                "serviceMonitor": {
                    "enabled": args.service_monitor,
                    "honorLabels": True,
                    "additionalLabels": {"app.kubernetes.io/part-of": "llm-cluster"},
                }
            },
        }
        self.release = helm_release(
            "gpu-operator", values, pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        )
        self.register_outputs({"namespace": pin.namespace})
