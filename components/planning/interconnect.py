"""What one all-reduce (or pipeline hand-off) costs on each kind of GPU link, for the performance model.

Measured, not assumed: ../shared/reference/allreduce-8xH200.md (torch.distributed + NCCL on one 8x H200 host,
bf16, median of 20). `nvlink` is NCCL's default path over NVSwitch; `host` is NCCL_P2P_DISABLE=1, the path that
GPUs without usable peer-to-peer (RTX 4090) get. PCIe with working P2P was not measured: it is the NVLink curve
with its bandwidth capped at what a PCIe Gen4 x16 peer copy reaches.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

LinkKind = Literal["nvlink", "pcie", "host"]

KIB = 1024
MIB = 1024 * KIB
# (TP group, message bytes) -> median latency in microseconds, from allreduce-8xH200.md.
MEASURED_US: dict[str, dict[int, list[tuple[int, float]]]] = {
    "nvlink": {
        2: [(256 * KIB, 66.5), (2 * MIB, 62.3), (16 * MIB, 113.1), (64 * MIB, 297.6)],
        4: [(256 * KIB, 78.9), (2 * MIB, 70.0), (16 * MIB, 148.0), (64 * MIB, 409.6)],
        8: [(256 * KIB, 58.4), (2 * MIB, 67.4), (16 * MIB, 149.8), (64 * MIB, 404.1)],
    },
    "host": {
        2: [(256 * KIB, 75.9), (2 * MIB, 126.0), (16 * MIB, 697.8), (64 * MIB, 2453.8)],
        4: [(256 * KIB, 93.3), (2 * MIB, 265.6), (16 * MIB, 1423.9), (64 * MIB, 5806.7)],
        8: [(256 * KIB, 100.8), (2 * MIB, 344.9), (16 * MIB, 2006.5), (64 * MIB, 10158.7)],
    },
}
# A PCIe Gen4 x16 peer-to-peer copy between GPUs under one switch: "Good (same switch): > 25 GB/s"
# (ai-hpc.github.io ai-hardware-engineer-roadmap, L40S-x12-Inference/05-Benchmarks, P2P bandwidth check).
PCIE_P2P_GBS = 25.0


def link_kind(tp: int, nvlink_domain: int, peer_to_peer: bool) -> LinkKind:
    """The path a TP group's all-reduce takes: NVLink inside the domain, else PCIe P2P, else staged in host memory."""
    if tp <= nvlink_domain and nvlink_domain > 1:
        return "nvlink"
    return "pcie" if peer_to_peer else "host"


def _interpolate(points: list[tuple[int, float]], size: float) -> float:
    """Log-log interpolation of the measured curve; below the smallest message the latency floor holds."""
    if size <= points[0][0]:
        return points[0][1]
    for (s0, t0), (s1, t1) in itertools.pairwise(points):
        if size <= s1:
            w = math.log(size / s0) / math.log(s1 / s0)
            return math.exp(math.log(t0) + w * (math.log(t1) - math.log(t0)))
    (s0, t0), (s1, t1) = points[-2], points[-1]
    return t1 * size / s1  # past 64 MiB: bandwidth-bound, linear in size


def _group(tp: int) -> int:
    return 2 if tp <= 2 else 4 if tp <= 4 else 8  # groups past 8 keep the 8-GPU curve


def allreduce_us(kind: LinkKind, tp: int, size_bytes: float) -> float:
    """Latency of one all-reduce of `size_bytes` over `tp` GPUs, as measured (NCCL outside a CUDA graph)."""
    if tp <= 1:
        return 0.0
    group = _group(tp)
    if kind == "pcie":
        nvlink = _interpolate(MEASURED_US["nvlink"][group], size_bytes)
        floor = MEASURED_US["nvlink"][group][0][1]
        ring = size_bytes * 2 * (tp - 1) / tp / (PCIE_P2P_GBS * 1e3)  # bytes / (GB/s) -> microseconds
        return max(nvlink, floor + ring)
    return _interpolate(MEASURED_US[kind][group], size_bytes)


def handoff_us(kind: LinkKind, size_bytes: float) -> float:
    """One pipeline-stage hand-off of the activations: costed as a two-GPU all-reduce of the same size."""
    return allreduce_us(kind, 2, size_bytes)
