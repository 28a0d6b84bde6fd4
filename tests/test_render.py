"""`plan --render DIR`: what the program would create, written down and checked against schemas."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import yaml

from components.charts import CHARTS_DIR
from components.tools.render import SECRET, run_program
from testbed.renders import CORE_GROUPS, manifests
from testbed.stacks import stack_config


def test_render_writes_the_four_outputs(render: tuple[str, Path]) -> None:
    stack, out = render
    assert (out / "manifests.yaml").stat().st_size > 0
    assert yaml.safe_load((out / "cloud.yaml").read_text()) is not None
    plan = json.loads((out / "plan.json").read_text())
    assert [m["name"] for m in plan["models"]] == [m["name"] for m in stack_config(stack)["models"]]
    assert (out / "helm" / "gpu-operator.yaml").exists()


def test_core_objects_pass_strict_schema_validation(render: tuple[str, Path]) -> None:
    stack, out = render
    version = stack_config(stack).get("kubernetesVersion", "1.31") + ".0"
    checked = 0
    for obj in manifests(out):
        if obj["apiVersion"] in CORE_GROUPS:
            kubernetes_validate.validate(obj, version, strict=True)
            checked += 1
    assert checked >= 5


def test_secret_values_are_masked(render: tuple[str, Path]) -> None:
    _, out = render
    secrets = [o for o in manifests(out) if o["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        for key in ("data", "stringData"):
            assert all(v == SECRET for v in secret.get(key, {}).values())


def test_helm_releases_use_the_pinned_charts(render: tuple[str, Path]) -> None:
    _, out = render
    pins = yaml.safe_load((CHARTS_DIR / "versions.yaml").read_text())
    for path in (out / "helm").glob("*.yaml"):
        release = yaml.safe_load(path.read_text())
        pin = pins[path.stem]
        assert release["version"] == pin["version"] and release["namespace"] == pin["namespace"]
        assert pin["chart"] in release["chart"]
        assert release["repo"] == pin["repo"] or release["chart"].startswith(pin["repo"])


def test_a_real_hf_token_never_reaches_the_render() -> None:
    run = run_program(stack_config("dev"), hf_token="hf_do_not_print_me")
    text = yaml.safe_dump_all(run.manifests) + json.dumps(run.helm_releases) + json.dumps(run.cloud_resources)
    assert "hf_do_not_print_me" not in text
    (secret,) = [o for o in run.manifests if o["kind"] == "Secret" and o["metadata"]["name"] == "hf-token"]
    assert secret["stringData"] == {"token": SECRET}


def test_gpu_operator_installs_drivers_only_where_a_pool_asks(render: tuple[str, Path]) -> None:
    stack, out = render
    values = yaml.safe_load((out / "helm" / "gpu-operator.yaml").read_text())["values"]
    wants_driver = any(p.get("installDriver", False) for p in stack_config(stack)["pools"])
    assert values["driver"]["enabled"] == wants_driver
    assert values["devicePlugin"]["enabled"] and values["gfd"]["enabled"] and values["dcgmExporter"]["enabled"]
    for node in (o for o in manifests(out) if o["kind"] == "Node"):
        assert node["metadata"]["labels"]["nvidia.com/gpu.deploy.driver"] == "false"
        assert node["spec"]["taints"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "value": "present"}]


def test_namespaces_carry_pod_security_labels(render: tuple[str, Path]) -> None:
    _, out = render
    namespaces = [o for o in manifests(out) if o["kind"] == "Namespace"]
    assert namespaces
    for namespace in namespaces:
        assert "pod-security.kubernetes.io/enforce" in namespace["metadata"]["labels"]
