"""How clients reach the API gateway: the Service type the plan decides (and why), the EnvoyProxy that renders it, the
URL and model names the program exports, and the settings refused with their field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.api_gateway import GATEWAY
from components.envoy_proxy import NAME as ENVOY_PROXY
from components.planning.api_service import DEFAULT_NODE_PORTS, LISTENER_PORTS
from components.planning.types import ApiServicePlan, ClusterPlan
from components.spec import ExistingBackendSpec, SpecError, load_cluster_spec
from components.stacks import load_stack, plan_for
from components.tools.cli import main
from components.tools.render import run_program
from testbed.bad_input import assert_names_a_field
from testbed.stacks import STACKS, rendered, stack_config


def objects(stack: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in rendered(stack).manifests if o["kind"] == kind}


def with_service(stack: str, **service: Any) -> dict[str, Any]:
    config = copy.deepcopy(stack_config(stack))
    config["auth"]["service"] = service
    return dict(config)


def service_plan(config: dict[str, Any]) -> ApiServicePlan:
    return plan_for(load_cluster_spec(config)).api_service


def refused(config: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as raised:
        plan_for(load_cluster_spec(config))
    assert_names_a_field(raised.value)
    return raised.value


@pytest.mark.parametrize("stack", STACKS)
def test_the_default_type_follows_where_the_nodes_are(stack: str) -> None:
    plan = plan_for(load_stack(stack))
    on_prem = all(isinstance(p.backend, ExistingBackendSpec) for p in plan.pools)
    service = plan.api_service
    assert service.type == ("NodePort" if on_prem else "LoadBalancer")
    assert ("LoadBalancer Service stays Pending" in service.type_reason) == on_prem
    assert service.external_traffic_policy == ("Cluster" if on_prem else "Local")
    listeners = [
        name for name, on in (("https", plan.auth.tls_secret_name), ("http", plan.auth.allow_plain_http)) if on
    ]
    assert service.node_ports == ({n: DEFAULT_NODE_PORTS[n] for n in listeners} if on_prem else {})


@pytest.mark.parametrize("stack", STACKS)
def test_the_gateway_runs_on_an_envoy_proxy_that_renders_the_planned_service(stack: str) -> None:
    plan = ClusterPlan.model_validate(rendered(stack).exports["plan"])
    gateway = objects(stack, "Gateway")[GATEWAY]["spec"]
    assert gateway["infrastructure"]["parametersRef"] == {"group": "gateway.envoyproxy.io", "kind": "EnvoyProxy",
                                                          "name": ENVOY_PROXY}  # fmt: skip
    proxy = objects(stack, "EnvoyProxy")[ENVOY_PROXY]
    assert proxy["metadata"]["namespace"] == objects(stack, "Gateway")[GATEWAY]["metadata"]["namespace"]
    kubernetes = proxy["spec"]["provider"]["kubernetes"]
    assert proxy["spec"]["provider"]["type"] == "Kubernetes"
    assert kubernetes["envoyDeployment"] == {"replicas": plan.auth.replicas}
    service = kubernetes["envoyService"]
    assert (service["type"], service["name"]) == (plan.api_service.type, f"{GATEWAY}-{plan.namespace}")
    assert service.get("externalTrafficPolicy") == plan.api_service.external_traffic_policy
    # Node ports are patched onto the Service's ports by the listener's port (the ports' merge key).
    listener_ports = {item["name"]: item["port"] for item in gateway["listeners"]}
    assert {n: LISTENER_PORTS[n] for n in listener_ports} == listener_ports
    patched = service.get("patch", {}).get("value", {}).get("spec", {}).get("ports", [])
    assert {p["port"]: p["nodePort"] for p in patched} == {
        listener_ports[n]: port for n, port in plan.api_service.node_ports.items()
    }
    if patched:
        assert service["patch"]["type"] == "StrategicMerge"


@pytest.mark.parametrize("stack", STACKS)
def test_clients_get_the_api_url_and_the_model_names_by_task(stack: str) -> None:
    exports = rendered(stack).exports
    plan = ClusterPlan.model_validate(exports["plan"])
    assert "endpoints" not in exports  # in-cluster model URLs, which the NetworkPolicies close to clients
    assert exports["apiUrl"] == plan.api_service.url
    by_task: dict[str, list[str]] = {}
    for model in plan.models:
        by_task.setdefault(model.task, []).append(model.name)
    assert exports["models"] == by_task


def test_each_stack_type_gives_its_url() -> None:
    assert rendered("prod").exports["apiUrl"] == "https://llm.example.internal:30443"
    assert rendered("staging").exports["apiUrl"] == "https://llm.staging.example.internal"
    assert rendered("dev").exports["apiUrl"] == "http://<any node's address: kubectl get nodes -o wide>:30080"
    gke = rendered("example-gke").exports["apiUrl"]
    assert gke == "https://<EXTERNAL-IP of: kubectl get service -n envoy-gateway-system llm-api-llm>"


def test_settings_override_the_defaults() -> None:
    balanced = service_plan(with_service("prod", type="LoadBalancer", loadBalancerClass="kube-vip.io/kube-vip-class",
                                         annotations={"kube-vip.io/loadbalancerIPs": "10.0.0.50"},
                                         loadBalancerSourceRanges=["10.0.0.0/8"]))  # fmt: skip
    assert (balanced.type, balanced.type_reason) == ("LoadBalancer", "set in the stack (auth.service.type)")
    assert balanced.url == "https://llm.example.internal" and balanced.node_ports == {}
    assert balanced.external_traffic_policy == "Local"
    fixed = service_plan(with_service("prod", nodePorts={"https": 31443}, externalTrafficPolicy="Local"))
    assert (fixed.type, fixed.node_ports, fixed.external_traffic_policy) == ("NodePort", {"https": 31443}, "Local")
    assert fixed.url == "https://llm.example.internal:31443"
    inside = service_plan(with_service("dev", type="ClusterIP"))
    assert (inside.url, inside.external_traffic_policy, inside.node_ports) == (
        "http://llm-api-llm.envoy-gateway-system.svc",
        None,
        {},
    )
    behind = service_plan(with_service("prod", type="ClusterIP", url="https://llm.corp.example:8443"))
    assert (behind.url, behind.url_reason) == ("https://llm.corp.example:8443", "set in the stack (auth.service.url)")


def test_an_envoy_proxy_with_settings_renders_only_the_fields_its_type_takes() -> None:
    run = run_program(with_service("prod", type="LoadBalancer", loadBalancerClass="service.k8s.aws/nlb",
                                   annotations={"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
                                   loadBalancerSourceRanges=["10.0.0.0/8"], nodePorts={"https": 30999}))  # fmt: skip
    (proxy,) = [o for o in run.manifests if o["kind"] == "EnvoyProxy"]
    service = proxy["spec"]["provider"]["kubernetes"]["envoyService"]
    assert service == {
        "name": "llm-api-llm",
        "type": "LoadBalancer",
        "annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
        "loadBalancerClass": "service.k8s.aws/nlb",
        "loadBalancerSourceRanges": ["10.0.0.0/8"],
        "externalTrafficPolicy": "Local",
        "patch": {"type": "StrategicMerge", "value": {"spec": {"ports": [{"port": 443, "nodePort": 30999}]}}},
    }
    assert run.exports["apiUrl"] == "https://llm.example.internal"  # the load balancer listens on 443


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ({"annotations": {"bad key!": "x"}}, "auth.service.annotations: 'bad key!' is not a qualified name"),
        ({"loadBalancerSourceRanges": ["10.0.0.0/33"]}, "auth.service.loadBalancerSourceRanges[0]: '10.0.0.0/33' "
                                                        "is not a CIDR"),
        ({"type": "LoadBalancer", "loadBalancerClass": "-nope"}, "auth.service.loadBalancerClass: '-nope' is not a "
                                                                  "qualified name"),
        ({"url": "https://llm.example.com/v1"}, "auth.service.url: 'https://llm.example.com/v1' is not a base URL"),
        ({"nodePorts": {"https": 30443, "http": 30443}}, "auth.service.nodePorts: https and http are both 30443"),
        ({"type": "Ingress"}, "auth.service.type: 'Ingress' is not allowed; use one of"),
        ({"nodePorts": {"https": 70000}}, "auth.service.nodePorts.https: 70000 is out of range"),
        ({"loadBalancerClass": "service.k8s.aws/nlb"}, "auth.service.loadBalancerClass: only a LoadBalancer Service "
                                                       "takes one; the Service is NodePort (the plan default; set "
                                                       "auth.service.type)"),
        ({"loadBalancerSourceRanges": ["10.0.0.0/8"]}, "auth.service.loadBalancerSourceRanges: only a LoadBalancer"),
        ({"type": "ClusterIP", "nodePorts": {"https": 30443}}, "auth.service.nodePorts: a ClusterIP Service has no"),
        ({"type": "ClusterIP", "externalTrafficPolicy": "Local"}, "auth.service.externalTrafficPolicy: a ClusterIP"),
        ({"nodePorts": {"http": 30080}}, "auth.service.nodePorts.http: the Gateway has no http listener; set "
                                         "auth.allowPlainHttp: true"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_are_refused_naming_the_field(service: dict[str, Any], message: str) -> None:
    assert message in str(refused(with_service("prod", **service)))


def test_plan_shows_the_service_decision_and_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--stack", "prod", "--wide"]) == 0
    out = capsys.readouterr().out
    assert "api: Service envoy-gateway-system/llm-api-llm NodePort (node ports https 30443): every pool is existing " \
           "nodes (on-prem)" in out  # fmt: skip
    assert "api url: https://llm.example.internal:30443 (node port 30443 of the https listener" in out


def test_a_node_port_taken_by_the_other_listener_leaves_no_default_and_is_refused() -> None:
    config = with_service("prod", nodePorts={"http": DEFAULT_NODE_PORTS["https"]})
    config["auth"]["allowPlainHttp"] = True
    message = str(refused(config))
    assert "auth.service.nodePorts: [30443] leave no default port for the other listener; fix both" in message
