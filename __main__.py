"""The Pulumi program: stack config -> ClusterSpec -> ClusterPlan -> LlmCluster. Thin on purpose."""

import importlib.util

import pulumi

from components.catalog import CatalogError
from components.cluster import LlmCluster, LlmClusterArgs
from components.gpu_pool import missing_sdks
from components.planning.api_service import models_by_task
from components.secret_config import SECRET_CONFIG_KEYS, gated_model_errors, plaintext_secret_errors
from components.spec import SpecError, load_cluster_spec
from components.stacks import plan_for

config = pulumi.Config("llm-cluster")
# The credential keys this stack sets, and whether Pulumi holds each as a secret; a plain one stops the run first.
secret_config = {
    key: pulumi.runtime.is_config_secret(key) for key in SECRET_CONFIG_KEYS if pulumi.runtime.get_config(key)
}
plaintext = plaintext_secret_errors(secret_config)
if plaintext:
    raise pulumi.RunError("\n".join(plaintext))
try:
    spec = load_cluster_spec(config.require_object("cluster"))
    plan = plan_for(spec)
except (SpecError, CatalogError) as exc:
    # One line per problem, each naming the field; nothing is created when the spec is wrong.
    raise pulumi.RunError(f"llm-cluster:cluster is invalid:\n{exc}") from None
problems = gated_model_errors(plan, secret_config) + missing_sdks(plan.pools)
if plan.images.vllm is not None:
    if importlib.util.find_spec("pulumi_docker") is None:
        problems.append("images.vllm: building images needs pulumi-docker; `pip install -r requirements-cloud.txt`")
    if not config.get("registryUsername") or config.get_secret("registryPassword") is None:
        problems.append(
            "images.vllm: pushing needs llm-cluster:registryUsername and the secret llm-cluster:registryPassword; "
            "set them with `pulumi config set` (--secret for the password)"
        )
if problems:
    raise pulumi.RunError("\n".join(problems))

cluster = LlmCluster(
    "llm",
    LlmClusterArgs(
        plan=plan,
        hf_token=config.get_secret("hfToken") or "",
        grafana_admin_password=config.get_secret("grafanaAdminPassword"),
        registry_username=config.get("registryUsername"),
        registry_password=config.get_secret("registryPassword"),
    ),
)

pulumi.export("plan", plan.model_dump(mode="json"))
pulumi.export("gpus", {p.name: {"used_max": p.gpus_used_max, "total": p.gpus_total} for p in plan.pools})
if cluster.monitoring is not None:
    pulumi.export("grafanaAdminPassword", cluster.monitoring.grafana_admin_password)
pulumi.export("clientKeys", cluster.api_gateway.client_keys)  # secret: `pulumi stack output --show-secrets`
# What clients use: the API's base URL (or, for a Service type without one yet, how to find it) and the names they
# send as `model`, by task. Model servers are reachable only through the API gateway (NetworkPolicies).
pulumi.export("apiUrl", plan.api_service.url)
pulumi.export("models", models_by_task(plan.models))
