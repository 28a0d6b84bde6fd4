"""plan_cluster: a whole stack, sized and placed; the only entry point the program, CLI and tests use."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from components.catalog import CatalogError, GpuType, ModelArch, load_hf_config
from components.planning.api_service import resolve_api_service
from components.planning.defaults import (
    resolve_autoscaling,
    resolve_gateway,
)
from components.planning.engine_versions import DEFAULT_VLLM_VERSION, engine_version, version_errors
from components.planning.layout_choice import LayoutChoice, plan_layout, predicted_target
from components.planning.network import resolve_network, weights_endpoint, weights_env
from components.planning.pools import PoolShape, place_replicas, resolve_pool, resolved_backend
from components.planning.rate_limits import resolve_rate_limits
from components.planning.serving import cache_for, pod_for, workload_for
from components.planning.sharing import place_shared_pool, share_model, with_sharing
from components.planning.types import (
    ClusterPlan,
    ModelPlan,
    PoolPlan,
    Sizing,
    SizingError,
    SizingRequest,
)
from components.spec import (
    ClusterSpec,
    ExistingBackendSpec,
    ModelSpec,
)


def model_arch(model: ModelSpec, index: int, models: dict[str, ModelArch], base_dir: Path) -> ModelArch:
    at = f"models[{index}]"
    if model.config_path:
        try:
            return load_hf_config(base_dir / model.config_path, model.model, model.params_b)
        except CatalogError as exc:
            raise SizingError([f"{at}.configPath: {exc}"]) from None
    try:
        arch = models.get(model.model)
    except CatalogError as exc:  # a catalog row refused for want of its real config.json
        raise SizingError([f"{at}.model: {exc}"]) from None
    if arch is None:
        raise SizingError(
            [
                f"{at}.model: {model.model!r} is not in the model catalog; add configPath: <path to its "
                f"config.json> (from https://huggingface.co/{model.model}/blob/main/config.json) or a row "
                "to components/catalog/models.yaml"
            ]
        )
    if model.params_b:
        arch = replace(arch, params_b=model.params_b)
    return arch


def weights_storage_class(spec: ClusterSpec) -> str:
    """The class of the weights caches: weightsStorageClass, else the stack's storageClass."""
    return spec.weights_storage_class or spec.storage_class or ""


def model_plan(
    spec: ClusterSpec,
    model: ModelSpec,
    sizing: Sizing,
    pool_nodes: int,
    gated: bool,
    choice: LayoutChoice | None = None,
) -> ModelPlan:
    workload, workload_reason = workload_for(sizing)
    cache = cache_for(
        sizing,
        pool_nodes,
        spec.weights_cache,
        weights_storage_class(spec),
        protect=model.name not in spec.allow_data_loss,
        source=spec.weights_source.kind,
    )
    return ModelPlan(
        **{**sizing.model_dump(), "env": {**sizing.env, **weights_env(cache.download, weights_endpoint(spec))}},
        name=model.name,
        revision=model.revision,
        pool=model.pool,
        image=engine_version(sizing.vllm_version).image,
        # Replicas the layout choice counted from the peak when the stack pins none (layout_choice.py).
        min_replicas=choice.replicas if choice and choice.replicas else model.min_replicas,
        max_replicas=choice.replicas if choice and choice.replicas else model.max_replicas,
        autoscaling=predicted_target(resolve_autoscaling(model.autoscaling, sizing, spec.autoscaling), model, choice)
        if choice
        else resolve_autoscaling(model.autoscaling, sizing, spec.autoscaling),
        slo=model.slo,
        workload=workload,
        workload_reason=workload_reason,
        pod=pod_for(sizing),
        cache=cache,
        secret_env=model.secret_env,
        gated=gated,
        prediction=choice.prediction if choice else None,
    )


def plan_models(
    spec: ClusterSpec, pools: dict[str, PoolShape], models: dict[str, ModelArch], base_dir: Path
) -> tuple[list[tuple[int, ModelPlan]], list[str], dict[str, str]]:
    """Every model sized on its pool (on a slice of a shared GPU when it fits one), with its index in the stack;
    the errors of those that cannot run; why each model of a sharing pool keeps whole GPUs."""
    planned: list[tuple[int, ModelPlan]] = []
    errors: list[str] = []
    whole: dict[str, str] = {}
    for i, model in enumerate(spec.models):
        pool = pools.get(model.pool)
        if pool is None:
            continue  # the pool's own error is already listed
        try:
            arch = model_arch(model, i, models, base_dir)
            request = SizingRequest.from_spec(model, arch, i, spec.vllm_version)
            choice = plan_layout(request, model, pool, i)
            sizing = choice.sizing
            sharing = None
            if sizing.fits:
                sizing, sharing, whole[model.name] = share_model(model, i, request, sizing, pool)
        except SizingError as exc:
            errors += exc.errors
            continue
        if not sizing.fits:
            errors.append(f"models[{i}] ({model.name}) on pool {model.pool!r}: {sizing.reasons[0]}")
            continue
        # On a slice of a shared GPU the engine's speed depends on its neighbours: nothing is predicted.
        kept = choice if sharing is None else LayoutChoice(sizing, None, choice.replicas)
        plan = model_plan(spec, model, sizing, pool.max_nodes, arch.gated, kept)
        planned.append((i, with_sharing(plan, sharing, whole.get(model.name, ""))))
    return planned, errors, whole


def pool_plan(
    name: str, pool: PoolShape, on_pool: list[tuple[int, ModelPlan]], whole: dict[str, str]
) -> tuple[PoolPlan, list[str]]:
    """The pool with its min and max replicas placed on its nodes (slices on its shared nodes); the shortfall."""
    sharing = None
    if pool.spec.sharing is not None:
        (gpus_min, gpus_max, nodes_min, nodes_max), sharing, shortfall = place_shared_pool(name, pool, on_pool, whole)
    else:
        gpus_min, nodes_min, _ = place_replicas(pool, on_pool, "min")
        gpus_max, nodes_max, shortfall = place_replicas(pool, on_pool, "max")
    backend = pool.spec.backend
    plan = PoolPlan(
        name=name,
        gpu=pool.gpu.id,
        gfd_product=pool.gpu.gfd_product,
        backend=resolved_backend(pool),
        instance_types=list(pool.instance_types),
        accelerator=pool.accelerator,
        compact_placement=any(p.nodes_per_replica > 1 for _, p in on_pool),
        node_names=list(backend.node_names) if isinstance(backend, ExistingBackendSpec) else [],
        taint=pool.spec.taint,
        install_driver=pool.spec.install_driver,
        install_toolkit=pool.spec.install_toolkit,
        instance_type=pool.instance_type,
        gpus_per_node=pool.shape.gpus_per_node,
        nvlink_domain=pool.shape.nvlink_domain,
        peer_to_peer=pool.shape.peer_to_peer,
        min_nodes=pool.min_nodes,
        max_nodes=pool.max_nodes,
        gpus_total=pool.max_nodes * pool.shape.gpus_per_node,
        gpus_used_min=gpus_min,
        gpus_used_max=gpus_max,
        nodes_used_min=nodes_min,
        nodes_used_max=nodes_max,
        models=[p.name for _, p in on_pool],
        sharing=sharing,
    )
    return plan, shortfall


def plan_cluster(
    spec: ClusterSpec,
    gpus: dict[str, GpuType],
    models: dict[str, ModelArch],
    base_dir: Path = Path("."),
) -> ClusterPlan:
    """Size every model on its pool and place the replicas; raise SizingError listing every problem."""
    errors: list[str] = version_errors(spec)
    if errors:  # every model's arguments depend on its release
        raise SizingError(errors)
    pools: dict[str, PoolShape] = {}
    for i, pool_spec in enumerate(spec.pools):
        try:
            pools[pool_spec.name] = resolve_pool(pool_spec, i, gpus)
        except SizingError as exc:
            errors += exc.errors
    planned, model_errors, whole = plan_models(spec, pools, models, base_dir)
    errors += model_errors
    pool_plans: list[PoolPlan] = []
    if not errors:
        for name, pool in pools.items():
            plan, shortfall = pool_plan(name, pool, [(i, p) for i, p in planned if p.pool == name], whole)
            pool_plans.append(plan)
            errors += shortfall
    try:
        gateway = resolve_gateway(spec.gateway, [p for _, p in planned])
    except SizingError as exc:
        errors += exc.errors
    try:
        network = resolve_network(spec)
    except SizingError as exc:
        errors += exc.errors
    try:
        rate_limits = resolve_rate_limits(spec.auth)
    except SizingError as exc:
        errors += exc.errors
    try:
        api_service = resolve_api_service(spec)
    except SizingError as exc:
        errors += exc.errors
    if errors:
        raise SizingError(errors)
    return ClusterPlan(
        vllm_version=spec.vllm_version or DEFAULT_VLLM_VERSION,
        kubernetes_version=spec.kubernetes_version,
        namespace=spec.namespace,
        storage_class=spec.storage_class,
        weights_storage_class=weights_storage_class(spec),
        weights_cache=spec.weights_cache,
        pools=pool_plans,
        models=[p for _, p in planned],
        gateway=gateway,
        auth=spec.auth,
        autoscaling=spec.autoscaling,
        monitoring=spec.monitoring,
        images=spec.images,
        network=network,
        rate_limits=rate_limits,
        api_service=api_service,
        protect_namespace="namespace" not in spec.allow_data_loss,
        protect_monitoring="monitoring" not in spec.allow_data_loss,
        warnings=[f"pool {p.name!r} serves no model" for p in pool_plans if not p.models],
    )
