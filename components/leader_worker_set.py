"""LeaderWorkerSetController: kubernetes-sigs/lws from its pinned chart, for replicas that span nodes."""

from __future__ import annotations

import pulumi

from components.charts import chart_namespace, chart_pin, helm_release


class LeaderWorkerSetController(pulumi.ComponentResource):
    """The LWS controller and CRD; installed only when a stack has a multi-node replica."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:leader_worker_set:LeaderWorkerSetController", name, None, opts)
        pin = chart_pin("lws")
        self.namespace = chart_namespace(f"{name}-namespace", "lws", "restricted", self)
        self.release = helm_release("lws", {}, pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]))
        self.register_outputs({"namespace": pin.namespace})
