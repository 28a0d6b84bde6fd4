"""The LLM gateway, the API gateway and the network policies as the program renders them for every stack."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from components.api_gateway import CLIENT_HEADER, CLIENT_KEYS_SECRET, GATEWAY, UPSTREAM_CREDENTIAL
from components.gateway import CONFIG_HASH_ANNOTATION
from components.gateway_config import AUTH_MODULE, INFERENCE_KEY_ENV, INFERENCE_ROUTES_ENV
from components.spec import SpecError, load_cluster_spec
from components.stacks import load_stack, plan_for
from components.tools.render import EchoMocks, run_program
from testbed.stacks import STACKS, rendered, stack_config

# How the Pulumi SDK marks a secret on the wire: what reaches the state and the preview encrypted or masked.
PULUMI_SECRET = "4dabf18193072939515e22adb298388d"


def objects(stack: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in rendered(stack).manifests if o["kind"] == kind}


def gateway_kind(stack: str) -> str:
    """The kind the plan decides (the stack may leave it out)."""
    return plan_for(load_stack(stack)).gateway.kind


@pytest.mark.parametrize("stack", STACKS)
def test_llm_gateway_deployment_service_pdb_and_cpu_hpa(stack: str) -> None:
    config = stack_config(stack).get("gateway", {})
    deployment = objects(stack, "Deployment")["llm-gateway"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port = plan_for(load_stack(stack)).gateway.port
    assert {"name": "http", "containerPort": port, "protocol": "TCP"} in container["ports"]
    assert container["image"].rpartition(":")[2] not in ("", "latest")
    assert container["securityContext"]["runAsNonRoot"] is True
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["readinessProbe"]["httpGet"]["port"] == port
    hpa = objects(stack, "HorizontalPodAutoscaler")["llm-gateway"]["spec"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (config.get("minReplicas", 2), config.get("maxReplicas", 4))
    assert objects(stack, "PodDisruptionBudget")["llm-gateway"]["spec"]["maxUnavailable"] == 1
    assert objects(stack, "Service")["llm-gateway"]["spec"]["ports"][0]["port"] == port


@pytest.mark.parametrize("stack", [s for s in STACKS if gateway_kind(s) == "litellm"])
def test_litellm_runs_without_a_database_with_its_keys_from_secrets_and_its_auth_hook(stack: str) -> None:
    (container,) = objects(stack, "Deployment")["llm-gateway"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert "DATABASE_URL" not in env
    assert env["LITELLM_MASTER_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "litellm-master-key"
    assert env[INFERENCE_KEY_ENV]["valueFrom"]["secretKeyRef"]["name"] == "litellm-inference-key"
    assert env[INFERENCE_ROUTES_ENV]["value"] == ",".join(plan_for(load_stack(stack)).gateway.routes)
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"]["value"] == "True"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    files = objects(stack, "ConfigMap")["llm-gateway-config"]["data"]
    assert set(files) == {"config.yaml", AUTH_MODULE.name}
    assert files[AUTH_MODULE.name] == AUTH_MODULE.read_text()  # the hook ships from its source, unchanged
    assert "custom_auth: litellm_auth.user_api_key_auth" in files["config.yaml"]
    assert "hosted_vllm/" in files["config.yaml"] and "sk-" not in files["config.yaml"]  # no key in a ConfigMap
    secrets = objects(stack, "Secret")
    assert secrets["litellm-inference-key"]["stringData"] == {"inference-key": "<secret>"}
    assert secrets["litellm-master-key"]["stringData"] == {"master-key": "<secret>"}


def test_envoy_injects_the_inference_key_and_never_the_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """example-gke (LiteLLM) run once more with each generated value named after its resource, so the injected
    credential shows which key it holds; every key-holding Secret is a Pulumi secret, and only LiteLLM's pod names
    the master key's Secret."""
    echo = EchoMocks.new_resource

    def named(self: EchoMocks, args: Any) -> tuple[str, dict[str, Any]]:
        resource_id, state = echo(self, args)
        if args.typ.startswith("random:"):
            state["result"] = f"<{args.name}>"
        return resource_id, state

    monkeypatch.setattr(EchoMocks, "new_resource", named)
    run = run_program(stack_config("example-gke"))
    secrets = {r.inputs["metadata"]["name"]: r.inputs["stringData"] for r in run.of_type("kubernetes:core/v1:Secret")}
    assert all(PULUMI_SECRET in data for data in secrets.values())
    assert secrets[UPSTREAM_CREDENTIAL]["value"] == {"credential": "Bearer sk-<llm-gateway-inference-key>"}
    assert secrets["litellm-inference-key"]["value"] == {"inference-key": "sk-<llm-gateway-inference-key>"}
    assert secrets["litellm-master-key"]["value"] == {"master-key": "sk-<llm-gateway-master-key>"}
    naming_master = {
        f"{o['kind']}/{o['metadata']['name']}" for o in run.manifests if "litellm-master-key" in json.dumps(o)
    }
    assert naming_master == {"Secret/litellm-master-key", "Deployment/llm-gateway"}


@pytest.mark.parametrize("stack", [s for s in STACKS if gateway_kind(s) == "vllm-router"])
def test_vllm_router_discovers_pods_with_a_namespaced_role(stack: str) -> None:
    deployment = objects(stack, "Deployment")["llm-gateway"]["spec"]["template"]["spec"]
    args = deployment["containers"][0]["args"]
    assert args[args.index("--host") + 1] == "0.0.0.0" and args[args.index("--prometheus-host") + 1] == "0.0.0.0"
    assert "--service-discovery" in args and args[args.index("--selector") + 1] == "llm-cluster.io/role=server"
    models = stack_config(stack)["models"]
    assert ("--enable-igw" in args) == (len(models) > 1)
    assert deployment["serviceAccountName"] == "llm-gateway"
    (role,) = objects(stack, "Role").values()
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    (binding,) = objects(stack, "RoleBinding").values()
    assert binding["subjects"][0]["name"] == "llm-gateway"


@pytest.mark.parametrize("stack", STACKS)
def test_api_gateway_owns_client_keys_and_rate_limits(stack: str) -> None:
    config = stack_config(stack)
    clients = [c["name"] for c in config["auth"]["clients"]]
    keys = objects(stack, "Secret")[CLIENT_KEYS_SECRET]["stringData"]
    assert sorted(keys) == sorted(clients) and set(keys.values()) == {"<secret>"}
    policy = objects(stack, "SecurityPolicy")[GATEWAY]["spec"]
    assert policy["apiKeyAuth"]["sanitize"] is True
    assert policy["apiKeyAuth"]["forwardClientIDHeader"] == CLIENT_HEADER
    assert policy["apiKeyAuth"]["credentialRefs"] == [{"name": CLIENT_KEYS_SECRET}]
    assert policy["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": GATEWAY}]
    limited = {c["name"]: c["rateLimit"] for c in config["auth"]["clients"] if "rateLimit" in c}
    limits = objects(stack, "BackendTrafficPolicy")
    if limited:
        # The plan's scope (tests/test_rate_limits.py): global where Envoy runs more than one replica.
        (rules,) = [scope["rules"] for scope in limits[GATEWAY]["spec"]["rateLimit"].values()]
        got = {r["clientSelectors"][0]["headers"][0]["value"]: r["limit"] for r in rules}
        assert got == {n: {"requests": r["requests"], "unit": r.get("unit", "Minute")} for n, r in limited.items()}
    route = objects(stack, "HTTPRoute")[GATEWAY]["spec"]
    routes = plan_for(load_stack(stack)).gateway.routes
    assert route["rules"][0]["matches"] == [{"path": {"type": "Exact", "value": p}} for p in routes]
    assert int(route["rules"][0]["timeouts"]["request"].removesuffix("s")) > 600  # long streams
    listeners = {item["name"]: item for item in objects(stack, "Gateway")[GATEWAY]["spec"]["listeners"]}
    if config["auth"].get("tlsSecretName"):
        assert listeners["https"]["tls"]["certificateRefs"] == [
            {"kind": "Secret", "name": config["auth"]["tlsSecretName"]}
        ]
    assert ("http" in listeners) == bool(config["auth"].get("allowPlainHttp"))
    injected = UPSTREAM_CREDENTIAL in objects(stack, "HTTPRouteFilter")
    assert injected == (gateway_kind(stack) == "litellm")
    if injected:  # a client's own x-litellm-api-key would displace the injected key
        assert {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["x-litellm-api-key"]}} in route[
            "rules"
        ][0]["filters"]
    assert rendered(stack).exports["clientKeys"] is not None


@pytest.mark.parametrize("stack", [s for s in STACKS if gateway_kind(s) == "vllm-router"])
def test_only_envoy_reaches_the_routers_api_port(stack: str) -> None:
    """vllm-router checks no key and serves worker management on its API port (tests/test_router_live.py): only
    Envoy's pods reach that port; Prometheus reaches the separate metrics port only."""
    plan = plan_for(load_stack(stack))
    assert plan.gateway.metrics_port != plan.gateway.port
    ingress = objects(stack, "NetworkPolicy")["llm-gateway"]["spec"]["ingress"]
    api = [rule for rule in ingress if {"protocol": "TCP", "port": plan.gateway.port} in rule["ports"]]
    assert len(api) == 1 and len(api[0]["from"]) == 1
    assert api[0]["from"][0]["podSelector"]["matchLabels"]["gateway.envoyproxy.io/owning-gateway-name"] == GATEWAY


@pytest.mark.parametrize("stack", STACKS)
def test_network_policies_let_only_the_designed_paths_through(stack: str) -> None:
    policies = {name: o["spec"] for name, o in objects(stack, "NetworkPolicy").items()}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    gateway = policies["llm-gateway"]
    envoy = gateway["ingress"][0]["from"][0]
    assert envoy["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "envoy-gateway-system"}
    assert envoy["podSelector"]["matchLabels"]["gateway.envoyproxy.io/owning-gateway-name"] == GATEWAY
    servers = policies["model-servers"]
    assert servers["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "llm-gateway"}}}
    ]
    # Prometheus's server pods only: any other pod of the monitoring namespace could call every model without a key.
    prometheus = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "prometheus",
                "app.kubernetes.io/managed-by": "prometheus-operator",
            }
        },
    }
    assert servers["ingress"][1]["from"] == [prometheus] and gateway["ingress"][1]["from"] == [prometheus]
    for policy in policies.values():  # no rule admits a whole namespace
        for rule in policy.get("ingress", []):
            assert all("podSelector" in peer for peer in rule["from"]), policy
    multi = [m["name"] for m in rendered(stack).exports["plan"]["models"] if m["nodes_per_replica"] > 1]
    assert sorted(n.removeprefix("group-") for n in policies if n.startswith("group-")) == sorted(multi)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["auth"]["clients"].append({"name": "tests"}), "auth.clients[1].name: 'tests' is used twice"),
        (
            lambda c: c["auth"]["clients"][0].update(rateLimit={"requests": 0}),
            "auth.clients[0].rateLimit.requests: 0 is out of range; use a value >= 1",
        ),
        (
            lambda c: c.update(gateway={"kind": "nginx"}),
            "gateway.kind: 'nginx' is not allowed; use one of 'litellm' or",
        ),
        (
            lambda c: c.update(gateway={"fallbacks": {"m": ["ghost"]}}),
            "gateway.fallbacks.m: 'ghost' is not a served model",
        ),
        (lambda c: c["auth"].update(clients=[]), "auth.clients: list at least one client"),
    ],
)
def test_bad_gateway_and_auth_input(change: Any, message: str) -> None:
    config = {
        "storageClass": "fast",
        "pools": [
            {"name": "p", "gpu": "L4-24GB", "gpusPerNode": 1, "backend": {"kind": "existing", "nodeNames": ["n"]}}
        ],
        "models": [{"name": "m", "model": "BAAI/bge-reranker-v2-m3", "pool": "p"}],
        "auth": {"allowPlainHttp": True, "clients": [{"name": "tests"}]},
    }
    change(config)
    with pytest.raises(SpecError) as caught:
        load_cluster_spec(config)
    assert any(line.startswith(message) for line in caught.value.errors), caught.value.errors


# The gateway kind and its route table as the plan decides them: tests/test_gateway_kind.py.


@pytest.mark.parametrize("stack", [s for s in STACKS if gateway_kind(s) == "litellm"])
def test_litellm_pods_roll_when_their_config_changes(stack: str) -> None:
    """LiteLLM reads config.yaml and its auth hook once at start; the pod template carries their digest."""
    data = objects(stack, "ConfigMap")["llm-gateway-config"]["data"]
    template = objects(stack, "Deployment")["llm-gateway"]["spec"]["template"]
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    assert template["metadata"]["annotations"] == {CONFIG_HASH_ANNOTATION: digest}
