"""The KV cache as vLLM allocates it, for any mix of layer kinds (components/catalog/layers.py).

0.13.0's allocator, ported below; where a later release differs (windows holding every in-flight batch, the hybrid
allocator on for chunked local attention, the null block in the start-up check, the logged token figure, Mamba in
prefix-caching `align` mode with block-sized states), the release's row in engine_versions.py says so (KvCacheRules)
and kv_layout applies it. 0.33's hybrid block size is ported for FlashAttention on CUDA before Blackwell (16-token
kernel blocks; FlashInfer GDN prefill as on Hopper); not ported: other backend-chosen block sizes (MLA backends: 64
or 128 tokens; FlashInfer on Blackwell), where 16-token blocks are used.

A port of the arithmetic of vllm/v1/core/kv_cache_utils.py (get_kv_cache_configs, get_kv_cache_groups,
get_kv_cache_config_from_groups, get_max_concurrency_for_kv_cache_config, _report_kv_cache_config) over the
per-layer specs of vllm/v1/kv_cache_interface.py, with the page sizes vLLM derives for hybrid Mamba models
(HybridAttentionMambaModelConfig in vllm/model_executor/models/config.py). tests/engine/test_kv_cache_layout.py
runs vLLM's own functions on the same layouts and compares.

vLLM splits the memory left for the KV cache into blocks of `bytes_per_block`; one request of max_model_len
tokens takes `blocks_per_request` of them; the log's "GPU KV cache size" is blocks // groups x block tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from components.catalog import ModelArch
from components.catalog.types import LayerGroup, RecurrentState
from components.planning.engine_versions import DEFAULT_VLLM_VERSION, KvCacheRules, engine_version
from components.planning.memory import KV_BLOCK
from components.planning.types import SizingError

# Mamba / linear-attention state is held in the model's dtype (mamba_cache_dtype "auto": MambaStateDtypeCalculator
# in vllm/model_executor/layers/mamba/mamba_utils.py); the plan serves fp32 checkpoints in 16 bits.
STATE_ELEMENT_BYTES = 2
SpecKind = Literal["full", "sliding", "chunked", "mamba"]
_KIND_NAMES = {
    "full": "full attention",
    "sliding": "sliding window",
    "chunked": "chunked local attention",
    "mamba": "Mamba state",
    "linear": "linear-attention state",
    "none": "no attention",
}


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class _Spec:
    """One layer's KVCacheSpec: its kind, tokens per block, bytes per block, window or chunk size."""

    kind: SpecKind
    block: int
    page: int
    window: int = 0
    states: int = 0  # a Mamba layer in `align` mode: the block-sized states one request holds

    def max_memory(self, max_len: int, batched: int) -> int:
        """max_memory_usage_bytes: what one request of max_len tokens holds in this layer."""
        if self.states:  # MambaSpec in align mode (vllm/v1/kv_cache_interface.py at 0.33)
            return self.states * self.page
        if self.kind == "sliding":  # SlidingWindowSpec: the window plus a step's tokens, +1 unaligned block
            return (_cdiv(min(self.window - 1 + batched, max_len), self.block) + 1) * self.page
        if self.kind == "chunked":  # ChunkedLocalAttentionSpec
            return _cdiv(min(self.window + batched, max_len), self.block) * self.page
        return _cdiv(max_len, self.block) * self.page  # FullAttentionSpec; MambaSpec (block = max_model_len)


@dataclass(frozen=True)
class KvLayout:
    """The KV cache of one (TP, PP, KV dtype, max_model_len, max_num_batched_tokens) layout."""

    bytes_per_block: int  # on the stage that gets the fewest blocks; vLLM gives every stage that count
    blocks_per_request: int  # blocks one max_model_len request takes
    groups: int  # vLLM's KV cache groups (one block table each)
    block_tokens: int  # the smallest block size of the groups
    check_bytes: int  # vLLM's start-up check: one max_model_len request, summed per layer (most loaded stage)
    max_len: int = 0  # set where the release logs its token figure from the concurrency (KvCacheRules)

    def needed(self, requests: int) -> int:
        """Bytes per GPU for `requests` concurrent max_model_len requests (and never less than vLLM's check)."""
        return max(requests * self.blocks_per_request * self.bytes_per_block, self.check_bytes)

    def blocks(self, memory: float) -> int:
        return max(int(memory), 0) // self.bytes_per_block

    def tokens(self, memory: float) -> int:
        """The "GPU KV cache size: N tokens" figure vLLM logs."""
        if self.max_len:  # 0.33: get_kv_cache_capacity in vllm/v1/core/kv_cache_utils.py
            return int(self.concurrency(memory) * self.max_len)
        return self.blocks(memory) // self.groups * self.block_tokens

    def concurrency(self, memory: float) -> float:
        """The "Maximum concurrency for max_model_len tokens per request" figure vLLM logs."""
        return self.blocks(memory) / self.blocks_per_request

    @property
    def bytes_per_token(self) -> float:
        return self.bytes_per_block / self.block_tokens


def effective_groups(arch: ModelArch) -> tuple[LayerGroup, ...]:
    """The layer groups, with the plain full-attention default spelled out; () for encoders (no KV cache)."""
    if arch.attention == "encoder":
        return ()
    if arch.layer_groups:
        return arch.layer_groups
    return (LayerGroup("full", tuple(range(arch.layers)), arch.kv_heads, arch.head_dim),)


def kv_layout(
    arch: ModelArch,
    tp: int,
    pp: int,
    kv_dtype: str,
    max_len: int,
    batched: int,
    rules: KvCacheRules | None = None,
) -> KvLayout | None:
    """vLLM's KV cache for this layout under a release's allocator rules (the default release's when None);
    None when the model keeps no KV cache (encoders)."""
    rules = rules or engine_version(DEFAULT_VLLM_VERSION).kv_cache
    if rules.in_flight_batches:
        # Async scheduling (on for generative models) keeps PP + 1 batches in flight, PP without it (pooling).
        batched *= pp + 1 if arch.task == "generate" else pp
    layout = _layout_013(arch, tp, pp, kv_dtype, max_len, batched, rules)
    if layout is None:
        return None
    if rules.null_block_reserved:
        # The check takes the null block out of each stage's memory first (get_kv_cache_configs at 0.33).
        layout = replace(layout, check_bytes=layout.bytes_per_block * (layout.blocks_per_request + 1))
    if rules.tokens_from_concurrency:
        layout = replace(layout, max_len=max_len)
    return layout


def _layout_013(
    arch: ModelArch, tp: int, pp: int, kv_dtype: str, max_len: int, batched: int, rules: KvCacheRules
) -> KvLayout | None:
    if arch.attention == "encoder":
        return None
    if not arch.layer_groups:
        # Every layer the same full-attention spec (_get_kv_cache_groups_uniform_spec): each stage divides its
        # memory by its own layers, so the stage with the most layers decides.
        page = KV_BLOCK * _token_bytes(arch, arch.kv_heads, arch.head_dim, tp, 1 if kv_dtype.startswith("fp8") else 2)
        stage = max(end - start for start, end in (pp_indices(arch.layers, rank, pp) for rank in range(pp)))
        blocks = _cdiv(max_len, KV_BLOCK)
        return KvLayout(page * stage, blocks, 1, KV_BLOCK, stage * blocks * page)
    specs = _layer_specs(arch, tp, kv_dtype, max_len, rules)
    if not specs:
        return None
    stages = [range(*pp_indices(arch.layers, rank, pp)) for rank in range(pp)]
    check = max(sum(specs[i].max_memory(max_len, batched) for i in stage if i in specs) for stage in stages)
    if not rules.hybrid_chunked_local and any(s.kind == "chunked" for s in specs.values()):
        # vLLM 0.13 turns the hybrid allocator off for chunked local attention unless
        # VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE=1 (VllmConfig.__post_init__ in vllm/config/vllm.py),
        # and then sizes local layers as full attention (unify_hybrid_kv_cache_specs).
        specs = _without_hybrid_allocator(specs)
    first = next(iter(specs.values()))
    if all(s == first or (s.kind == first.kind == "full" and s.page == first.page) for s in specs.values()):
        # One spec for every layer (_get_kv_cache_groups_uniform_spec): each stage divides by its own layers.
        per_stage = [first.page * sum(1 for i in stage if i in specs) for stage in stages]
        return KvLayout(max(per_stage), _cdiv(first.max_memory(max_len, batched), first.page), 1, first.block, check)
    if _uniform_type(specs.values()):
        # One group of layers with different page sizes (UniformTypeKVCacheSpecs). Every stage divides by the
        # whole model's page, as get_kv_cache_configs hands each worker the global group spec.
        pages = max(_cdiv(s.max_memory(max_len, batched), s.page) for s in specs.values())
        return KvLayout(sum(s.page for s in specs.values()), pages, 1, first.block, check)
    return _hybrid_layout(arch, specs, stages, max_len, batched, check)


def pp_indices(layers: int, rank: int, pp: int) -> tuple[int, int]:
    """The layers [start, end) of pipeline stage `rank` (get_pp_indices in vllm/distributed/utils.py): the
    remainder goes to the stages before the last."""
    partitions = [layers // pp] * pp
    for i in range(2, layers % pp + 2):
        partitions[-i] += 1
    start = sum(partitions[:rank])
    return start, start + partitions[rank]


def _hybrid_layout(
    arch: ModelArch, specs: dict[int, _Spec], stages: list[range], max_len: int, batched: int, check: int
) -> KvLayout:
    """Several layer kinds: pages unified, layers split into equal-size groups by kind
    (unify_kv_cache_spec_page_size, _get_kv_cache_groups_uniform_page_size)."""
    page = max(s.page for s in specs.values())
    if any(page % s.page for s in specs.values()):
        sizes = sorted({s.page for s in specs.values()})
        raise SizingError(
            [
                f"{arch.id}: vLLM 0.13 cannot unify the KV page sizes of its layer kinds ({sizes} bytes per block: "
                "the largest is not a multiple of the others) and refuses to start; serve it with "
                "--disable-hybrid-kv-cache-manager in extraArgs or pick another TP"
            ]
        )
    by_spec: dict[_Spec, list[int]] = {}
    for i, s in specs.items():
        unified = replace(s, block=s.block * page // s.page, page=page)
        by_spec.setdefault(unified, []).append(i)
    counts = [len(layers) for layers in by_spec.values()]
    size = max(counts) if max(counts) < min(counts) * 1.25 else min(counts)
    groups: list[tuple[_Spec, list[int]]] = []
    for spec, layers in by_spec.items():
        n = _cdiv(len(layers), size)
        groups += [(spec, layers[i::n]) for i in range(n)]  # strided, so PP stages stay balanced
    per_stage = [page * max(sum(1 for i in layers if i in stage) for _, layers in groups) for stage in stages]
    per_request = _cdiv(sum(spec.max_memory(max_len, batched) for spec, _ in groups), page)
    return KvLayout(max(per_stage), per_request, len(groups), min(spec.block for spec, _ in groups), check)


def _uniform_type(specs: Iterable[_Spec]) -> bool:
    """UniformTypeKVCacheSpecs.is_uniform_type: one block size, and one kind (one window for local kinds)."""
    kinds = {(s.block, s.kind, s.window if s.kind != "full" else 0) for s in specs}
    return len(kinds) == 1


def _without_hybrid_allocator(specs: dict[int, _Spec]) -> dict[int, _Spec]:
    kinds = {s.kind for s in specs.values()}
    if "full" not in kinds or not kinds & {"sliding", "chunked"}:
        return specs
    return {i: _Spec("full", s.block, s.page) if s.kind in ("sliding", "chunked") else s for i, s in specs.items()}


def _layer_specs(arch: ModelArch, tp: int, kv_dtype: str, max_len: int, rules: KvCacheRules) -> dict[int, _Spec]:
    """Each layer's spec, by layer index; layers without attention or state have none."""
    element = 1 if kv_dtype.startswith("fp8") else 2
    groups = effective_groups(arch)
    attention = [g for g in groups if g.kind in ("full", "sliding", "chunked")]
    states = [g for g in groups if g.state is not None and g.kind in ("mamba", "linear")]
    block = KV_BLOCK
    padded = held = 0
    if attention and states:
        # The attention block grows (in steps of `step` tokens) until its page holds a Mamba state; the state's
        # page is padded to the attention page (0.13: HybridAttentionMambaModelConfig; 0.33:
        # Platform._align_hybrid_block_size). Without prefix caching a state takes one max_model_len block.
        step, held = KV_BLOCK, 0
        if rules.mamba_align_states:
            # Prefix caching on: align mode, states as big as attention blocks, `mamba_align_states` per request,
            # one more for gated delta nets' prefill checkpoints, which also set the block step.
            gdn = all(g.state is not None and g.state.formula == "gated_delta_net" for g in states)
            step = math.lcm(KV_BLOCK, rules.gdn_checkpoint_tokens) if gdn else KV_BLOCK
            held = rules.mamba_align_states + (1 if gdn and rules.gdn_checkpoint_tokens else 0)
        one_token = _token_bytes(arch, arch.kv_heads, arch.head_dim, tp, element)
        state = max(state_bytes(g.state, tp) for g in states if g.state is not None)
        block = KV_BLOCK * _cdiv(step * _cdiv(state, step * one_token), KV_BLOCK)
        padded = block * one_token
    specs: dict[int, _Spec] = {}
    for g in groups:
        if g.kind in ("full", "sliding", "chunked"):
            page = block * _token_bytes(arch, g.kv_heads, g.head_dim, tp, element)
            spec = _Spec(g.kind, block, page, g.window)
        elif g.state is not None:
            spec = _Spec("mamba", block if held else max_len, max(padded, state_bytes(g.state, tp)), states=held)
        else:
            continue
        specs.update((i, spec) for i in g.layers)
    return dict(sorted(specs.items()))


def _token_bytes(arch: ModelArch, kv_heads: int, head_dim: int, tp: int, element: int) -> int:
    """Bytes one token costs one attention layer on one GPU (AttentionSpec / MLAAttentionSpec page_size_bytes)."""
    if arch.attention == "mla":
        # The compressed latent is shared by all heads and replicated on every TP rank.
        return (arch.kv_lora_rank + arch.qk_rope_head_dim) * element
    return 2 * max(1, kv_heads // tp) * head_dim * element  # replicated when TP > KV heads


def state_bytes(state: RecurrentState, tp: int) -> int:
    """Bytes of one request's state in one layer on one GPU (MambaStateShapeCalculator in
    vllm/model_executor/layers/mamba/mamba_utils.py)."""
    e = STATE_ELEMENT_BYTES
    ssm = state.ssm_element_bytes or e
    if state.formula == "mamba1":
        inner = state.intermediate // tp
        return (state.conv_kernel - 1) * inner * e + inner * state.state_size * ssm
    if state.formula == "mamba2":
        # Groups that TP cannot split are replicated so each rank holds the groups its heads need.
        groups = state.groups + (0 if state.groups % tp == 0 else tp - state.groups)
        conv_dim = state.intermediate + 2 * groups * state.state_size
        heads = state.heads // tp
        return (state.conv_kernel - 1) * (conv_dim // tp) * e + heads * state.head_dim * state.state_size * ssm
    if state.formula == "gated_delta_net":
        conv_dim = 2 * state.key_heads * state.key_head_dim + state.heads * state.head_dim
        temporal = (state.heads // tp) * state.key_head_dim * state.head_dim
        return (state.conv_kernel - 1) * (conv_dim // tp) * e + temporal * e
    return (state.heads // tp) * state.head_dim * state.head_dim * e  # linear_attention


def allocator_note(arch: ModelArch, rules: KvCacheRules | None = None) -> str:
    """How vLLM treats the groups, when it is not the obvious way; "" otherwise."""
    rules = rules or engine_version(DEFAULT_VLLM_VERSION).kv_cache
    if any(g.kind == "chunked" for g in arch.layer_groups) and not rules.hybrid_chunked_local:
        return (
            "; vLLM 0.13 keeps full-length KV for the chunked layers too (its hybrid KV cache manager is off for "
            "chunked local attention unless VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE=1)"
        )
    return ""


def describe(arch: ModelArch) -> str:
    """The layer groups as the plan states them, e.g. "18 sliding window (128 tokens) + 18 full attention"."""
    parts = []
    for g in effective_groups(arch):
        name = _KIND_NAMES[g.kind]
        if g.kind in ("sliding", "chunked"):
            name += f" ({g.window} tokens)"
        if g.kind in ("full", "sliding", "chunked") and arch.attention != "mla" and g.kv_heads != arch.kv_heads:
            name += f" with {g.kv_heads} KV heads"
        parts.append(f"{g.count} {name}")
    return " + ".join(parts)
