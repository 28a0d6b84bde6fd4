"""How a sized model's pods run: the workload kind, each pod's resources, probes and shutdown, and the weights
cache. Every number is a named constant here, with where it comes from, and lands in the plan with its reason."""

from __future__ import annotations

import math

from components.planning.network import weights_download
from components.planning.types import CacheKind, CachePlan, PodPlan, Sizing, WorkloadKind

# Host memory of a model server: the API server and tokenizer (~8 GiB for a long-context tokenizer and its
# request buffers) plus ~6 GiB of CPU-side tensors and pinned buffers per GPU worker process.
HOST_MEMORY_BASE_GIB = 8
HOST_MEMORY_PER_GPU_GIB = 6
# CPUs: the API server and scheduler loop, plus one busy process per GPU worker and one for its NCCL/IO
# threads; the limit allows bursts (tokenization of long prompts) at twice the request.
CPU_BASE = 2
CPU_PER_GPU = 2
CPU_LIMIT_FACTOR = 2
# /dev/shm: NCCL and vLLM's worker processes exchange tensors through it; more GPUs, more buffers.
SHM_ONE_GPU_GIB = 2
SHM_PER_GPU_GIB = 4
# A first start downloads the checkpoint, then loads it: budget 10 s per GiB (~100 MiB/s) on top of
# 10 minutes for engine start-up, CUDA graph capture and the first profiling run.
STARTUP_BASE_SECONDS = 600
STARTUP_SECONDS_PER_GIB = 10
PROBE_PERIOD_SECONDS = 10
# A rollout may take a whole startup budget per pod, plus 5 minutes of scheduling and image pull.
PROGRESS_MARGIN_SECONDS = 300
# Long streams: give in-flight requests time to finish after the endpoint is removed. vLLM 0.13 aborts
# in-flight requests on SIGTERM, so preStop drains first.
TERMINATION_GRACE_SECONDS = 300
DRAIN_DELAY_SECONDS = 15  # endpoint removal propagates to kube-proxy and the gateway within seconds
DRAIN_MARGIN_SECONDS = 15  # the drain loop ends before the kubelet's SIGKILL at the end of the grace period
# The weights cache holds the checkpoint as downloaded, plus a quarter for tokenizer files, partial
# downloads and updates, plus 2 GiB; never under 10 GiB, the smallest volume most storage classes give.
CACHE_HEADROOM = 1.25
CACHE_EXTRA_GIB = 2
CACHE_MIN_GIB = 10


def workload_for(sizing: Sizing) -> tuple[WorkloadKind, str]:
    if sizing.nodes_per_replica == 1:
        return "Deployment", "a replica fits one node: one pod per replica"
    return (
        "LeaderWorkerSet",
        f"a replica spans {sizing.nodes_per_replica} nodes: one leader and {sizing.nodes_per_replica - 1} "
        "worker pod(s) per replica, restarted together, vLLM's own multi-node launcher",
    )


def pod_for(sizing: Sizing) -> PodPlan:
    gpus = sizing.gpus_per_pod
    shm = SHM_ONE_GPU_GIB if gpus == 1 else SHM_PER_GPU_GIB * gpus
    memory = HOST_MEMORY_BASE_GIB + HOST_MEMORY_PER_GPU_GIB * gpus + shm
    cpu = CPU_BASE + CPU_PER_GPU * gpus
    startup = STARTUP_BASE_SECONDS + math.ceil(sizing.checkpoint_gib * STARTUP_SECONDS_PER_GIB)
    return PodPlan(
        gpus=gpus,
        cpu_request=cpu,
        cpu_limit=CPU_LIMIT_FACTOR * cpu,
        memory_gib=memory,
        shm_gib=shm,
        probe_period_seconds=PROBE_PERIOD_SECONDS,
        startup_seconds=startup,
        startup_failure_threshold=math.ceil(startup / PROBE_PERIOD_SECONDS),
        progress_deadline_seconds=startup + PROGRESS_MARGIN_SECONDS,
        termination_grace_seconds=TERMINATION_GRACE_SECONDS,
        drain_delay_seconds=DRAIN_DELAY_SECONDS,
        drain_seconds=TERMINATION_GRACE_SECONDS - DRAIN_DELAY_SECONDS - DRAIN_MARGIN_SECONDS,
        reasons=[
            f"memory {memory} GiB = {HOST_MEMORY_BASE_GIB} (API server, tokenizer) + {HOST_MEMORY_PER_GPU_GIB} x "
            f"{gpus} GPU worker(s) + {shm} /dev/shm (memory-backed, counts against the limit)",
            f"cpu {cpu} (limit {CPU_LIMIT_FACTOR * cpu}) = {CPU_BASE} + {CPU_PER_GPU} x {gpus} GPU worker(s)",
            f"startup budget {startup} s = {STARTUP_BASE_SECONDS} s start-up + {STARTUP_SECONDS_PER_GIB} s/GiB x "
            f"{sizing.checkpoint_gib:g} GiB checkpoint to download and load",
            f"shutdown: preStop waits {DRAIN_DELAY_SECONDS} s, then drains running and waiting requests for up to "
            f"{TERMINATION_GRACE_SECONDS - DRAIN_DELAY_SECONDS - DRAIN_MARGIN_SECONDS} s before vLLM's SIGTERM",
        ],
    )


def cache_for(
    sizing: Sizing, pool_nodes: int, weights_cache: CacheKind, storage_class: str, protect: bool, source: str
) -> CachePlan:
    """The weights cache. Its claim never depends on the replica count: changing an access mode replaces the
    claim, and with it the downloaded weights, so the mode follows the pool (pods on one node or many)."""
    size = max(CACHE_MIN_GIB, math.ceil(sizing.checkpoint_gib * CACHE_HEADROOM) + CACHE_EXTRA_GIB)
    download, download_reason = weights_download(weights_cache, source)
    if weights_cache == "per-pod":
        return CachePlan(
            kind="per-pod",
            access_mode="ReadWriteOnce",
            size_gib=size,
            storage_class=storage_class,
            reason="weightsCache: per-pod: each pod downloads into its own ephemeral claim",
            protect=False,  # ephemeral: it lives and dies with its pod
            download=download,
            download_reason=download_reason,
        )
    many = pool_nodes > 1
    return CachePlan(
        kind="shared",
        # ReadWriteOnce volumes mount on one node at a time; pods of a pool with several nodes may land on any.
        access_mode="ReadWriteMany" if many else "ReadWriteOnce",
        size_gib=size,
        storage_class=storage_class,
        reason=f"one claim shared by the model's pods on {'any node of the pool' if many else 'its one node'}; "
        f"{size} GiB = checkpoint x {CACHE_HEADROOM} + {CACHE_EXTRA_GIB} GiB"
        + ("" if protect else "; unprotected for this change (allowDataLoss)"),
        protect=protect,
        download=download,
        download_reason=download_reason,
    )
