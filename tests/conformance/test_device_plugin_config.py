"""The device-plugin configuration for shared GPUs, judged by the pinned upstream sources (upstream/SOURCES.txt):

- each config in the GPU Operator's ConfigMap holds only keys the device plugin v0.18.1 decodes (the yaml tags of
  api/config/v1: Go's decoder drops unknown keys silently), with the values its decoders demand;
- the chart values reach the ClusterPolicy as GPU Operator v25.10.1's templates write them, valid against its CRD;
- the node label is the one the plugin's config-manager watches;
- stacks without a sharing pool set none of it.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest
import yaml

from components.device_plugin import CONFIG_LABEL, device_plugin_configs, device_plugin_values
from components.stacks import plan_stack
from testbed.stacks import STACKS, rendered
from tests.conformance import crds, schema

PLUGIN = "k8s-device-plugin-v0.18.1_config-v1_"
STRUCT = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.S | re.M)
FIELD = re.compile(r"^\s+(\w+)\s+(\*?\[?\]?\*?)(\w+)(?:\s+`[^`]*yaml:\"([^\"]*)\"[^`]*`)?\s*$", re.M)
EMBEDDED = re.compile(r"^\s+(\w+)\s*$", re.M)


@cache
def plugin_structs() -> dict[str, dict[str, str]]:
    """Go struct -> {yaml key: field type} from the vendored api/config/v1 files; embedded structs inlined."""
    structs: dict[str, dict[str, str]] = {}
    embeds: dict[str, list[str]] = {}
    for path in sorted(crds.UPSTREAM.glob(f"{PLUGIN}*.go")):
        for name, body in STRUCT.findall(path.read_text()):
            fields = {}
            for _, _, kind, tag in FIELD.findall(body):
                key = tag.split(",")[0]
                if key:
                    fields[key] = kind
            structs[name] = fields
            embeds[name] = EMBEDDED.findall(body)
    for name, inner in embeds.items():
        for embedded in inner:
            structs[name].update(structs.get(embedded, {}))
    return structs


def unknown_keys(value: Any, struct: str, path: str = "") -> list[str]:
    """Keys of `value` the plugin's decoder would drop, walking into the config structs it knows."""
    fields = plugin_structs().get(struct)
    if fields is None or not isinstance(value, dict):
        return []
    problems = []
    for key, item in value.items():
        if key not in fields:
            problems.append(f"{path}{key}: not a field of {struct} (v0.18.1 api/config/v1)")
            continue
        items = item if isinstance(item, list) else [item]
        for element in items:
            problems += unknown_keys(element, fields[key], f"{path}{key}.")
    return problems


def plugin_source(name: str) -> str:
    return (crds.UPSTREAM / name).read_text()


def shared_configs() -> dict[str, dict[str, Any]]:
    return device_plugin_configs(plan_stack("prod").pools)


def test_the_struct_reader_reads_the_plugins_config_types() -> None:
    structs = plugin_structs()
    assert {"version", "flags", "sharing"} <= structs["Config"].keys()
    assert "migStrategy" in structs["Flags"]  # inlined from CommandLineFlags
    assert structs["Sharing"] == {"timeSlicing": "ReplicatedResources", "mps": "ReplicatedResources"}
    assert {"renameByDefault", "failRequestsGreaterThanOne", "resources"} <= structs["ReplicatedResources"].keys()
    assert {"name", "replicas"} <= structs["ReplicatedResource"].keys()


def test_every_config_decodes_into_the_plugins_types() -> None:
    configs = shared_configs()
    assert len(configs) == 2  # the whole-GPU default and prod's rtx4090 pool
    for name, config in configs.items():
        assert unknown_keys(config, "Config") == [], name
        # api/config/v1/config.go: `const Version = "v1"`, anything else is "unknown version".
        version = re.search(r'const Version = "(\w+)"', plugin_source(f"{PLUGIN}config.go"))
        assert version and config["version"] == version[1]


def test_a_misspelt_key_is_caught() -> None:
    config = {"version": "v1", "sharing": {"timeSlicing": {"renamebyDefault": True, "resources": []}}}
    assert unknown_keys(config, "Config") == [
        "sharing.timeSlicing.renamebyDefault: not a field of ReplicatedResources (v0.18.1 api/config/v1)"
    ]


def test_the_shared_config_time_slices_with_a_renamed_resource_one_per_pod() -> None:
    sharing = plan_stack("prod").pools[1].sharing
    assert sharing is not None
    slicing = shared_configs()[sharing.config_name]["sharing"]["timeSlicing"]
    (resource,) = slicing["resources"]
    # ReplicatedResource.UnmarshalJSON: name and replicas required, "number of replicas must be >= 2".
    source = plugin_source(f"{PLUGIN}replicas.go")
    assert "no replicas specified" in source and "s.Replicas < 2" in source
    assert resource == {"name": "nvidia.com/gpu", "replicas": sharing.slices_per_gpu} and resource["replicas"] >= 2
    # renameByDefault advertises `<name>.shared` (README "With CUDA Time-Slicing"): the resource pods request.
    assert slicing["renameByDefault"] is True and sharing.resource == "nvidia.com/gpu.shared"
    assert slicing["failRequestsGreaterThanOne"] is True


def test_chart_values_reach_the_cluster_policy_as_its_crd_accepts() -> None:
    values = device_plugin_values(plan_stack("prod").pools)["devicePlugin"]["config"]
    template = plugin_source("gpu-operator-v25.10.1_clusterpolicy.yaml.tpl")
    # templates/clusterpolicy.yaml hands name and default to the ClusterPolicy; plugin_config.yaml writes `data`.
    assert "name: {{ .Values.devicePlugin.config.name }}" in template
    assert "default: {{ .Values.devicePlugin.config.default }}" in template
    config_map = plugin_source("gpu-operator-v25.10.1_plugin_config.yaml.tpl")
    assert (
        "(.Values.devicePlugin.config.create)" in config_map and "toYaml .Values.devicePlugin.config.data" in config_map
    )
    crd = crds.crd_index()[("nvidia.com/v1", "ClusterPolicy")][0].openapi
    device_plugin = crd["properties"]["spec"]["properties"]["devicePlugin"]
    _, errors = schema.validate({"config": {"name": values["name"], "default": values["default"]}}, device_plugin)
    assert errors == []
    assert values["default"] in values["data"] and all(isinstance(v, str) for v in values["data"].values())
    assert {name: yaml.safe_load(text) for name, text in values["data"].items()} == shared_configs()
    _, bad = schema.validate({"config": {"name": 7}}, device_plugin)
    assert bad


def test_shared_nodes_carry_the_label_the_config_manager_watches() -> None:
    assert f'DefaultConfigLabel     = "{CONFIG_LABEL}"' in plugin_source(
        "k8s-device-plugin-v0.18.1_config-manager_main.go"
    )
    nodes = {
        doc["metadata"]["name"]: doc["metadata"]["labels"]
        for doc in rendered("prod").manifests
        if doc.get("kind") == "Node"
    }
    shared = {name for name, labels in nodes.items() if CONFIG_LABEL in labels}
    assert shared == {"gpu-4090-02"} and nodes["gpu-4090-02"][CONFIG_LABEL] == "rtx4090-shared"


@pytest.mark.parametrize("stack", [s for s in STACKS if s != "prod"])
def test_stacks_without_sharing_set_no_device_plugin_config(stack: str) -> None:
    plan = plan_stack(stack)
    assert not any(p.sharing for p in plan.pools), f"{stack} shares GPUs: give it its own device-plugin test"
    assert device_plugin_values(plan.pools) == {}
    run = rendered(stack)
    assert "config" not in run.helm_releases["gpu-operator"]["values"].get("devicePlugin", {})
    assert all(CONFIG_LABEL not in str(doc) for doc in run.manifests if doc.get("kind") == "Node")
