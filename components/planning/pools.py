"""Pools: their shape from the catalog and the backend, and the placement of every replica on their nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from components.catalog import CloudInstance, GpuType
from components.planning.types import (
    GpuShape,
    ModelPlan,
    SizingError,
    or_list,
)
from components.spec import (
    ExistingBackendSpec,
    GkeBackendSpec,
    GpuPoolSpec,
    KarpenterBackendSpec,
    OvhBackendSpec,
)


@dataclass(frozen=True)
class PoolShape:
    index: int
    spec: GpuPoolSpec
    gpu: GpuType
    shape: GpuShape
    instance_type: str | None
    instance_types: tuple[str, ...]
    accelerator: str | None
    min_nodes: int
    max_nodes: int


_BACKEND_CLOUD = {"karpenter": "aws", "gke": "gcp", "ovh": "ovh"}


def cloud_shapes(pool: GpuPoolSpec, at: str, gpu: GpuType, gpus: dict[str, GpuType]) -> list[CloudInstance]:
    """The catalog's instance types the pool's cloud backend may use for its GPU and GPUs per node."""
    backend, gpn = pool.backend, pool.gpus_per_node
    cloud = _BACKEND_CLOUD[backend.kind]
    offered = gpu.instances_on(cloud)  # type: ignore[arg-type]
    if not offered:
        others = [g.id for g in gpus.values() if g.instances_on(cloud)]  # type: ignore[arg-type]
        raise SizingError(
            [f"{at}.gpu: {gpu.id} is not offered on {backend.kind} ({cloud}); GPUs it offers: {', '.join(others)}"]
        )
    wanted: list[str] = []
    if isinstance(backend, KarpenterBackendSpec):
        wanted = backend.instance_types
    elif isinstance(backend, GkeBackendSpec) and backend.machine_type:
        wanted = [backend.machine_type]
    elif isinstance(backend, OvhBackendSpec) and backend.flavor:
        wanted = [backend.flavor]
    by_type = {i.type: i for i in offered}
    for name in wanted:
        if name not in by_type:
            raise SizingError(
                [f"{at}.backend: {name!r} is not offered on {cloud} with {gpu.id}; use one of {', '.join(by_type)}"]
            )
    chosen = [by_type[n] for n in wanted] or [i for i in offered if gpn is None or i.gpus == gpn]
    if not chosen:
        counts = sorted({i.gpus for i in offered})
        raise SizingError([f"{at}.gpusPerNode: no {cloud} shape has {gpn} x {gpu.id}; use {or_list(counts)}"])
    if gpn is None and len({i.gpus for i in chosen}) > 1:
        raise SizingError(
            [
                f"{at}.gpusPerNode: {cloud} offers {gpu.id} with "
                f"{or_list(sorted({i.gpus for i in chosen}))} GPUs per node; say how many"
            ]
        )
    if gpn is not None and any(i.gpus != gpn for i in chosen):
        raise SizingError([f"{at}.gpusPerNode: {gpn} does not match {chosen[0].type} ({chosen[0].gpus} GPUs)"])
    if not isinstance(backend, KarpenterBackendSpec):
        chosen = chosen[:1]  # a GKE or OVHcloud node pool has one machine type; the catalog lists smallest first
    return chosen


def resolve_pool(pool: GpuPoolSpec, index: int, gpus: dict[str, GpuType]) -> PoolShape:
    at = f"pools[{index}]"
    gpu = gpus.get(pool.gpu)
    if gpu is None:
        raise SizingError([f"{at}.gpu: unknown GPU {pool.gpu!r}; known GPUs: {', '.join(gpus)}"])
    gpn, domain = pool.gpus_per_node, pool.nvlink_domain
    chosen: list[CloudInstance] = []
    if isinstance(pool.backend, ExistingBackendSpec):
        assert gpn is not None  # the spec requires it for existing nodes
        min_nodes = max_nodes = len(pool.backend.node_names)
    else:
        chosen = cloud_shapes(pool, at, gpu, gpus)
        gpn = chosen[0].gpus
        domain = domain or min(i.nvlink_domain for i in chosen)
        if pool.nodes is not None:
            min_nodes = max_nodes = pool.nodes
        else:
            min_nodes, max_nodes = pool.min_nodes or 0, pool.max_nodes or 0
    if domain and gpn % domain:
        raise SizingError([f"{at}.nvlinkDomain: {domain} does not divide {gpn} GPUs per node"])
    return PoolShape(
        index, pool, gpu, GpuShape.of(gpu, gpn, domain),
        chosen[0].type if len(chosen) == 1 else None,
        tuple(i.type for i in chosen),
        chosen[0].accelerator if chosen else None,
        min_nodes, max_nodes,
    )  # fmt: skip


NodeState = tuple[int, ...]  # free GPUs per NVLink domain, sorted


def _take(state: NodeState, tp: int, pp: int, domain: int) -> NodeState | None:
    """Place one single-node replica's stages on a node; each TP group inside one domain when it can be."""
    free = list(state)
    if tp <= domain:
        for _ in range(pp):
            fitting = [i for i, f in enumerate(free) if f >= tp]
            if not fitting:
                return None
            best = min(fitting, key=lambda i: free[i])  # best fit keeps whole domains for wide TP groups
            free[best] -= tp
    else:
        need = tp * pp
        if sum(free) < need:
            return None
        for i in sorted(range(len(free)), key=lambda i: -free[i]):
            used = min(free[i], need)
            free[i] -= used
            need -= used
    return tuple(sorted(free))


@dataclass
class _Pool:
    """Nodes of one pool grouped by state, so placement costs O(replicas x distinct states)."""

    empty: NodeState
    states: dict[NodeState, int]

    @classmethod
    def of(cls, nodes: int, gpn: int, domain: int) -> _Pool:
        empty = tuple([domain] * (gpn // domain))
        return cls(empty, {empty: nodes} if nodes else {})

    def place(self, tp: int, pp: int, nodes_per_replica: int, domain: int) -> bool:
        if nodes_per_replica > 1:
            if self.states.get(self.empty, 0) < nodes_per_replica:
                return False
            self._move(self.empty, tuple([0] * len(self.empty)), nodes_per_replica)
            return True
        for state in sorted(self.states, key=sum):  # best fit: the fullest node that still fits
            after = _take(state, tp, pp, domain)
            if after is not None:
                self._move(state, after, 1)
                return True
        return False

    def _move(self, old: NodeState, new: NodeState, count: int) -> None:
        self.states[old] -= count
        if not self.states[old]:
            del self.states[old]
        self.states[new] = self.states.get(new, 0) + count

    def used(self, nodes: int, gpn: int) -> tuple[int, int]:
        free_gpus = sum(sum(s) * n for s, n in self.states.items())
        return nodes * gpn - free_gpus, nodes - self.states.get(self.empty, 0)


def place_replicas(
    pool: PoolShape, models: list[tuple[int, ModelPlan]], which: Literal["min", "max"]
) -> tuple[int, int, list[str]]:
    """Place every model's min or max replicas on the pool's max nodes.

    Returns (GPUs used, nodes used, errors). On shortfall the pool is grown node by node to say how
    many nodes would be needed.
    """
    shape = pool.shape
    nodes = pool.max_nodes
    state = _Pool.of(nodes, shape.gpus_per_node, shape.nvlink_domain)
    order = sorted(models, key=lambda im: (-im[1].nodes_per_replica, -im[1].gpus_per_replica, im[0]))
    short: dict[int, int] = {}
    for index, plan in order:
        count = plan.min_replicas if which == "min" else plan.max_replicas
        for _ in range(count):
            while not state.place(plan.tp, plan.pp, plan.nodes_per_replica, shape.nvlink_domain):
                state.states[state.empty] = state.states.get(state.empty, 0) + 1
                nodes += 1
                short[index] = short.get(index, 0) + 1
    gpus_used, nodes_used = state.used(nodes, shape.gpus_per_node)
    errors = []
    if short:
        names = ", ".join(f"models[{i}] ({next(p.name for j, p in models if j == i)})" for i in sorted(short))
        errors.append(
            f"pools[{pool.index}].{_size_field(pool)}: "
            f"{which} replicas of {names} do not fit {pool.max_nodes} node(s) of {shape.gpus_per_node} x "
            f"{shape.gpu_id}; they need {nodes} nodes ({nodes - pool.max_nodes} more, "
            f"{gpus_used - pool.max_nodes * shape.gpus_per_node} GPUs short): add nodes or lower the replicas"
        )
    return gpus_used, nodes_used, errors


def resolved_backend(
    pool: PoolShape,
) -> ExistingBackendSpec | KarpenterBackendSpec | GkeBackendSpec | OvhBackendSpec:
    """The backend spec with its defaults decided: GKE installs the driver unless the GPU Operator does."""
    backend = pool.spec.backend
    if isinstance(backend, GkeBackendSpec) and backend.driver_version is None:
        version = "INSTALLATION_DISABLED" if pool.spec.install_driver else "DEFAULT"
        return backend.model_copy(update={"driver_version": version})
    if isinstance(backend, KarpenterBackendSpec) and not backend.instance_types:
        return backend.model_copy(update={"instance_types": list(pool.instance_types)})
    if isinstance(backend, OvhBackendSpec) and backend.flavor is None:
        return backend.model_copy(update={"flavor": pool.instance_type})
    return backend


def _size_field(pool: PoolShape) -> str:
    """The stack field that sets how many nodes a pool has."""
    if isinstance(pool.spec.backend, ExistingBackendSpec):
        return "backend.nodeNames"
    return "nodes" if pool.spec.nodes is not None else "maxNodes"
