"""LeaderWorkerSetController: kubernetes-sigs/lws from its pinned chart, for replicas that span nodes."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.charts import chart_pin, helm_release


class LeaderWorkerSetController(pulumi.ComponentResource):
    """The LWS controller and CRD; installed only when a stack has a multi-node replica."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:leader_worker_set:LeaderWorkerSetController", name, None, opts)
        pin = chart_pin("lws")
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": pin.namespace,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = helm_release("lws", {}, pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]))
        self.register_outputs({"namespace": pin.namespace})
