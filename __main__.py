"""The Pulumi program: stack config -> ClusterSpec -> ClusterPlan -> LlmCluster. Thin on purpose."""

import pulumi

from components.catalog import CatalogError, load_gpu_catalog, load_model_catalog
from components.cluster import LlmCluster, LlmClusterArgs
from components.gpu_pool import missing_sdks
from components.sizing import plan_cluster
from components.spec import SpecError, load_cluster_spec

config = pulumi.Config("llm-cluster")
try:
    spec = load_cluster_spec(config.require_object("cluster"))
    plan = plan_cluster(spec, load_gpu_catalog(), load_model_catalog())
except (SpecError, CatalogError) as exc:
    # One line per problem, each naming the field; nothing is created when the spec is wrong.
    raise pulumi.RunError(f"llm-cluster:cluster is invalid:\n{exc}") from None
if missing := missing_sdks(plan.pools):
    raise pulumi.RunError("\n".join(missing))

cluster = LlmCluster(
    "llm",
    LlmClusterArgs(
        plan=plan,
        hf_token=config.get_secret("hfToken") or "",
        grafana_admin_password=config.get_secret("grafanaAdminPassword"),
    ),
)

pulumi.export("plan", plan.model_dump(mode="json"))
pulumi.export("gpus", {p.name: {"used_max": p.gpus_used_max, "total": p.gpus_total} for p in plan.pools})
if cluster.monitoring is not None:
    pulumi.export("grafanaAdminPassword", cluster.monitoring.grafana_admin_password)
pulumi.export("clientKeys", cluster.api_gateway.client_keys)  # secret: `pulumi stack output --show-secrets`
pulumi.export("endpoints", {m.name: f"http://{m.name}.{plan.namespace}.svc:8000/v1" for m in plan.models})
