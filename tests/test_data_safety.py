"""Ordinary edits never lose data: weights caches keep their claim spec across replica edits, and claims,
namespaces and monitoring are protected (checked on the resource options the program registers under mocks)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.spec import SpecError, load_cluster_spec
from components.stacks import plan_for
from components.tools.capacity_diff import diff_plans
from components.tools.render import ProgramRun, run_program
from testbed.stacks import rendered, stack_config

PVC = "kubernetes:core/v1:PersistentVolumeClaim"
NAMESPACE = "kubernetes:core/v1:Namespace"
RELEASE = "kubernetes:helm.sh/v3:Release"


def claims(run: ProgramRun) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in run.of_type(PVC)}


def edited(stack: str, edit: Any) -> dict[str, Any]:
    config = copy.deepcopy(stack_config(stack))
    edit(config)
    return dict(config)


def one_replica(config: dict[str, Any]) -> None:
    """prod's first model, autoscaled 1..3, pinned at one replica: the edit that used to replace its claim."""
    model = config["models"][0]
    del model["autoscaling"]
    model["replicas"] = 1


def test_a_replica_edit_keeps_every_claim_as_it_is() -> None:
    before, after = claims(rendered("prod")), claims(run_program(edited("prod", one_replica)))
    assert before == after
    base, changed = (
        plan_for(load_cluster_spec(stack_config("prod"))),
        plan_for(load_cluster_spec(edited("prod", one_replica))),
    )
    assert "Nothing replaced or deleted." in diff_plans(base, changed, "prod", "main")


@pytest.mark.parametrize("stack", ["prod", "dev", "example-minimal"])
def test_claims_namespaces_and_monitoring_are_protected(stack: str) -> None:
    run = rendered(stack)
    protected = {(r.type, r.name): r.options["protect"] for r in run.registrations}
    assert run.of_type(PVC) and all(protected[(PVC, r.name)] for r in run.of_type(PVC))
    serving = next(
        r for r in run.of_type(NAMESPACE) if r.inputs["metadata"]["name"] == stack_config(stack).get("namespace", "llm")
    )
    assert serving.options["protect"]
    monitoring = [r for r in run.of_type(RELEASE) if r.inputs.get("name") == "kube-prometheus-stack"]
    assert monitoring and monitoring[0].options["protect"]
    namespace = monitoring[0].inputs["namespace"]
    assert next(r for r in run.of_type(NAMESPACE) if r.inputs["metadata"]["name"] == namespace).options["protect"]


def test_allow_data_loss_lifts_protection_for_the_one_named() -> None:
    name = stack_config("prod")["models"][0]["name"]
    run = run_program(edited("prod", lambda c: c.update(allowDataLoss=[name, "namespace"])))
    by_claim = {r.inputs["metadata"]["name"]: r.options["protect"] for r in run.of_type(PVC)}
    assert by_claim.pop(f"{name}-cache") is False and all(by_claim.values())
    serving = next(r for r in run.of_type(NAMESPACE) if r.inputs["metadata"]["name"] == "llm")
    assert serving.options["protect"] is False


def test_allow_data_loss_must_name_something_that_holds_data() -> None:
    with pytest.raises(SpecError, match=r"allowDataLoss\[0\]: 'llm-gateway' names nothing that holds data"):
        load_cluster_spec(edited("prod", lambda c: c.update(allowDataLoss=["llm-gateway"])))


def drop_first_model(config: dict[str, Any]) -> None:
    del config["models"][0]


def move_namespace(config: dict[str, Any]) -> None:
    config["namespace"] = "llm-next"


def disable_monitoring(config: dict[str, Any]) -> None:
    config["monitoring"] = {"enabled": False}
    for model in config["models"]:
        if "autoscaling" in model:  # HPAs read Prometheus; without it, fixed replicas
            model["replicas"] = model.pop("autoscaling")["minReplicas"]


def other_storage(config: dict[str, Any]) -> None:
    config["weightsStorageClass"] = "nfs"


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (drop_first_model, "weights cache `deepseek-r1-distill-qwen-32b-cache` (79 GiB) deleted; protected"),
        (move_namespace, "namespace `llm` → `llm-next`: the old one is deleted with every claim and Secret"),
        (disable_monitoring, "monitoring disabled: its namespace, release and the Prometheus"),
        (other_storage, "replaced (ReadWriteMany cephfs → ReadWriteMany nfs); the weights download again; protected"),
    ],
)
def test_the_capacity_diff_lists_what_a_change_replaces_or_deletes(edit: Any, said: str) -> None:
    base = plan_for(load_cluster_spec(stack_config("prod")))
    changed = plan_for(load_cluster_spec(edited("prod", edit)))
    assert said in diff_plans(base, changed, "prod", "main")
