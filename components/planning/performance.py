"""The performance model: predicted TTFT, ITL and output throughput of one replica, from first principles.

A decode step reads every weight a step touches (MoE: only the experts the batch routes to) and the batch's KV
cache from HBM, and does 2 FLOPs per active parameter per token; it takes the longer of the two at the GPU's
fitted efficiency, plus two all-reduces per layer when TP > 1 (interconnect.py), plus a fixed per-step cost
(scheduler, sampler, kernel launches). With chunked prefill (vLLM's default), the prompts of requests joining
the batch share those steps: in steady state every step also carries batch x input/output prompt tokens.
A prompt alone costs its FLOPs (2 x active params x tokens + attention) in chunks of max_num_batched_tokens.
Requests past the batch's room (max_num_seqs, or what the KV cache holds) queue for a slot.

The efficiency factors per GPU architecture are fitted to published runs by `python -m bench.perf_model`, which
writes performance_fit.yaml next to this file and reports the error on the runs it did not fit.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from components.catalog import GpuType, ModelArch
from components.planning.interconnect import LinkKind, allreduce_us, handoff_us, link_kind
from components.planning.memory import bytes_per_param, kv_bytes_per_token

FIT_FILE = Path(__file__).with_name("performance_fit.yaml")
Bound = Literal["memory", "compute", "comm"]
# The concurrency search stops here: no replica batches more (vLLM's largest default max_num_seqs is 1024).
MAX_SEARCH_CONCURRENCY = 4096
# Only the first layer's inputs and the last layer's logits leave 16 bits in FP8/int4 checkpoints.
EDGE_BYTES = 2.0


class PerformanceError(ValueError):
    """A prediction that cannot be made; the message names the input and the fix."""


@dataclass(frozen=True)
class Efficiency:
    """Fraction of peak HBM bandwidth and of dense tensor FLOPS a step reaches, and its fixed cost."""

    memory: float
    compute: float
    step_overhead_ms: float


@dataclass(frozen=True)
class Fit:
    by_class: dict[str, Efficiency]
    default: Efficiency
    comm_factor: float  # measured NCCL latency -> vLLM's (custom all-reduce, CUDA graphs)

    def efficiency(self, gpu_class: str) -> Efficiency:
        return self.by_class.get(gpu_class, self.default)


@dataclass(frozen=True)
class Hardware:
    """What the roofline needs of one GPU and how the GPUs of a replica are wired."""

    gpu_class: str  # the catalog's architecture: hopper, blackwell, ampere, ada-lovelace
    hbm_gbs: float
    bf16_tflops: float
    fp8_tflops: float
    nvlink_domain: int
    peer_to_peer: bool

    @classmethod
    def of(cls, gpu: GpuType, nvlink_domain: int | None = None, peer_to_peer: bool | None = None) -> Hardware:
        if gpu.hbm_gbs <= 0 or gpu.bf16_tflops <= 0:
            raise PerformanceError(f"gpu {gpu.id}: no perf row in components/catalog/gpus.yaml; add hbm_gbs/tflops")
        return cls(
            gpu_class=gpu.architecture,
            hbm_gbs=gpu.hbm_gbs,
            bf16_tflops=gpu.bf16_tflops,
            fp8_tflops=gpu.fp8_tflops,
            nvlink_domain=gpu.nvlink_domain if nvlink_domain is None else nvlink_domain,
            peer_to_peer=gpu.peer_to_peer if peer_to_peer is None else peer_to_peer,
        )


@dataclass(frozen=True)
class Layout:
    tp: int
    pp: int = 1
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    kv_cache_tokens: int | None = None  # what the replica's KV cache holds; None: not a limit


@dataclass(frozen=True)
class Workload:
    input_len: int
    output_len: int
    concurrency: float


@dataclass(frozen=True)
class Objective:
    ttft_ms: float | None = None
    itl_ms: float | None = None


@dataclass(frozen=True)
class Prediction:
    ttft_ms: float
    itl_ms: float
    output_tokens_per_s: float  # one replica
    output_tokens_per_s_per_gpu: float
    bound: Bound
    batch: float  # sequences decoding together
    queue_ms: float  # part of TTFT spent waiting for a slot
    max_concurrency_for_objective: int | None = None
    terms_ms: dict[str, float] = field(default_factory=dict)  # per decode step: memory, compute, comm, overhead


@functools.cache
def load_fit(path: Path = FIT_FILE) -> Fit:
    raw = yaml.safe_load(path.read_text())
    classes = {name: Efficiency(**values) for name, values in raw["by_class"].items()}
    return Fit(by_class=classes, default=Efficiency(**raw["default"]), comm_factor=float(raw["comm_factor"]))


@dataclass(frozen=True)
class _Params:
    """The model's parameters split by how a step reads them."""

    dense: float  # attention, dense MLPs, shared experts, routers: read by every token
    experts: float  # routed experts: read only when a token of the batch routes to them
    head: float  # lm_head (or the tied embedding), 16-bit


def _params(arch: ModelArch) -> _Params:
    embed = arch.vocab * arch.hidden
    head = 0 if arch.tie_embeddings else embed
    linear = max(arch.params_b * 1e9 - embed - head, 0.0)
    moe_layers = max(arch.layers - arch.dense_layers, 0)
    experts = min(moe_layers * arch.experts * 3 * arch.hidden * arch.moe_intermediate, linear) if arch.is_moe else 0
    return _Params(dense=linear - experts, experts=experts, head=embed)


def experts_touched(arch: ModelArch, tokens: float) -> float:
    """Expected fraction of a layer's routed experts that `tokens` tokens route to (k of E each, uniform)."""
    if not arch.is_moe:
        return 0.0
    miss: float = (1.0 - arch.experts_per_token / arch.experts) ** max(tokens, 1.0)
    return 1.0 - miss


def _peak_flops(hw: Hardware, weight_dtype: str) -> float:
    fp8 = weight_dtype == "fp8" and hw.fp8_tflops > 0
    return (hw.fp8_tflops if fp8 else hw.bf16_tflops) * 1e12


@dataclass(frozen=True)
class _Model:
    """One replica's costs per GPU of its most loaded stage."""

    arch: ModelArch
    hw: Hardware
    layout: Layout
    weight_dtype: str
    kv_dtype: str
    fit: Fit

    @property
    def eff(self) -> Efficiency:
        return self.fit.efficiency(self.hw.gpu_class)

    @property
    def stage_share(self) -> float:
        return math.ceil(self.arch.layers / self.layout.pp) / self.arch.layers

    @property
    def link(self) -> LinkKind:
        return link_kind(self.layout.tp, self.hw.nvlink_domain, self.hw.peer_to_peer)

    def weight_read_bytes(self, tokens: float) -> float:
        p, bpp = _params(self.arch), bytes_per_param(self.arch, self.weight_dtype)
        layers = (p.dense + p.experts * experts_touched(self.arch, tokens)) * bpp * self.stage_share
        return (layers + p.head * EDGE_BYTES) / self.layout.tp

    def flops_per_token(self, context: float) -> float:
        a, p = self.arch, _params(self.arch)
        active = p.dense + (p.experts * a.experts_per_token / a.experts if a.is_moe else 0.0)
        attention = 4.0 * a.layers * context * a.heads * a.head_dim  # QK^T and PV, 2 FLOPs per MAC
        return (2.0 * active * self.stage_share + 2.0 * p.head + attention * self.stage_share) / self.layout.tp

    def comm_ms(self, tokens: float) -> float:
        """Two all-reduces per layer of the stage, each of tokens x hidden x 2 bytes."""
        layers = math.ceil(self.arch.layers / self.layout.pp)
        call = allreduce_us(self.link, self.layout.tp, tokens * self.arch.hidden * 2.0)
        return 2 * layers * call * self.fit.comm_factor / 1e3

    def handoff_ms(self, tokens: float) -> float:
        kind: LinkKind = "host" if not self.hw.peer_to_peer else "pcie"  # stages cross NVLink domains
        hops = self.layout.pp - 1
        return hops * handoff_us(kind, tokens * self.arch.hidden * 2.0) * self.fit.comm_factor / 1e3

    def decode_step(self, batch: float, prompt_tokens: float, context: float) -> dict[str, float]:
        """One engine step of `batch` decodes plus `prompt_tokens` prefill tokens, per pipeline microbatch."""
        kv = batch * context * kv_bytes_per_token(self.arch, self.layout.tp, self.layout.pp, self.kv_dtype)
        tokens = batch + prompt_tokens
        memory = (self.weight_read_bytes(tokens) + kv) / (self.hw.hbm_gbs * 1e9 * self.eff.memory) * 1e3
        flops = self.flops_per_token(context) * batch + self.flops_per_token(context / 2) * prompt_tokens
        compute = flops / (_peak_flops(self.hw, self.weight_dtype) * self.eff.compute) * 1e3
        return {"memory": memory, "compute": compute, "comm": self.comm_ms(tokens)}

    def prefill_ms(self, input_len: int) -> float:
        """A prompt alone, in chunks of max_num_batched_tokens, through every pipeline stage."""
        chunk = min(input_len, self.layout.max_num_batched_tokens)
        chunks = math.ceil(input_len / chunk)
        t = self.decode_step(0, chunk, chunk)
        per_chunk = max(t["memory"], t["compute"]) + t["comm"] + self.eff.step_overhead_ms
        return chunks * per_chunk * self.layout.pp + self.handoff_ms(chunk)


def predict(
    arch: ModelArch,
    hw: Hardware,
    layout: Layout,
    weight_dtype: str,
    kv_dtype: str,
    workload: Workload,
    objective: Objective | None = None,
    fit: Fit | None = None,
) -> Prediction:
    """TTFT, ITL and throughput of one replica at the workload's concurrency (closed loop: each user sends its
    next request when the last one ends)."""
    _check(arch, layout, workload)
    m = _Model(arch, hw, layout, weight_dtype, kv_dtype, fit or load_fit())
    result = _steady_state(m, workload)
    if objective is not None and (objective.ttft_ms is not None or objective.itl_ms is not None):
        best = max_concurrency_for_objective(m, workload, objective)
        result = Prediction(**{**result.__dict__, "max_concurrency_for_objective": best})
    return result


def _check(arch: ModelArch, layout: Layout, workload: Workload) -> None:
    if arch.task != "generate":
        raise PerformanceError(f"model {arch.id}: a {arch.task} model generates no tokens; no TTFT/ITL to predict")
    if workload.input_len < 1 or workload.output_len < 1 or workload.concurrency <= 0:
        raise PerformanceError("workload: input_len, output_len and concurrency must be > 0")
    if layout.tp < 1 or layout.pp < 1:
        raise PerformanceError("layout: tp and pp must be >= 1")


def slots(m: _Model, workload: Workload) -> float:
    """Sequences the replica decodes at once: max_num_seqs, or fewer when the KV cache holds fewer.

    vLLM allocates KV blocks only for the tokens a step computes (KVCacheManager.allocate_slots in
    vllm/v1/core/kv_cache_manager.py) and preempts a request when a step finds none free (Scheduler.schedule in
    vllm/v1/core/sched/scheduler.py, vLLM 0.13.0); it reserves nothing for the output still to come. In steady
    state the running requests are spread over their lives, so one holds input + output/2 tokens on average."""
    room = float(m.layout.max_num_seqs)
    if m.layout.kv_cache_tokens is not None:
        held = workload.input_len + workload.output_len / 2
        room = min(room, max(m.layout.kv_cache_tokens / held, 1.0))
    return room


def _steady_state(m: _Model, w: Workload) -> Prediction:
    batch = min(w.concurrency, slots(m, w))
    micro = batch / m.layout.pp  # vLLM keeps PP stages busy with one microbatch each
    context = w.input_len + w.output_len / 2
    step = m.decode_step(micro, micro * w.input_len / w.output_len, context)
    stage = max(step["memory"], step["compute"]) + step["comm"]
    itl = m.layout.pp * stage + m.eff.step_overhead_ms + m.handoff_ms(micro)
    prefill = m.prefill_ms(w.input_len)
    ttft = prefill + itl / 2
    for _ in range(4):  # a prompt queues behind the other users' prompts (M/D/1 wait on their prefill share)
        e2e = ttft + (w.output_len - 1) * itl
        busy = min((batch - 1) * prefill / e2e, 0.95)
        ttft = prefill * (1 + busy / (2 * (1 - busy))) + itl / 2
    e2e = ttft + (w.output_len - 1) * itl
    queue = max(w.concurrency - batch, 0.0) * e2e / batch  # closed loop: wait for a slot to free
    tps = batch * w.output_len / e2e * 1e3
    terms = {**step, "overhead": m.eff.step_overhead_ms}
    bound: Bound = (
        "comm"
        if step["comm"] > max(step["memory"], step["compute"])
        else ("compute" if step["compute"] > step["memory"] else "memory")
    )
    return Prediction(
        ttft_ms=round(ttft + queue, 2),
        itl_ms=round(itl, 3),
        output_tokens_per_s=round(tps, 1),
        output_tokens_per_s_per_gpu=round(tps / (m.layout.tp * m.layout.pp), 1),
        bound=bound,
        batch=round(batch, 2),
        queue_ms=round(queue, 2),
        terms_ms={k: round(v, 3) for k, v in terms.items()},
    )


def _meets(m: _Model, w: Workload, c: int, objective: Objective) -> bool:
    p = _steady_state(m, Workload(w.input_len, w.output_len, c))
    ok_ttft = objective.ttft_ms is None or p.ttft_ms <= objective.ttft_ms
    return ok_ttft and (objective.itl_ms is None or p.itl_ms <= objective.itl_ms)


def max_concurrency_for_objective(m: _Model, w: Workload, objective: Objective) -> int:
    """The most concurrent users for which TTFT and ITL stay within the objective; 0 when one user misses it.
    TTFT and ITL only grow with concurrency, so doubling then bisecting finds the edge."""
    if not _meets(m, w, 1, objective):
        return 0
    low = 1
    while low < MAX_SEARCH_CONCURRENCY and _meets(m, w, min(low * 2, MAX_SEARCH_CONCURRENCY), objective):
        low = min(low * 2, MAX_SEARCH_CONCURRENCY)
    high = min(low * 2, MAX_SEARCH_CONCURRENCY + 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if _meets(m, w, mid, objective) else (low, mid)
    return low
