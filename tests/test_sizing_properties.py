"""Properties every sizing must keep, over the catalog's models and arbitrary GPUs (issue 14, point 7):
more GPU memory never needs more GPUs, and a shorter max_model_len never needs more."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from components.catalog import load_model_catalog
from components.planning.sizing import size_model
from components.planning.types import GpuShape, Sizing, SizingError, SizingRequest

MODELS = load_model_catalog()
SIZEABLE = sorted(m for m in MODELS if MODELS.get(m) is not None)
LENGTHS = (2048, 4096, 8192, 16384, 32768)


def shape(memory_gib: int) -> GpuShape:
    """An 8-GPU NVLink node of a GPU with this much memory (the catalog's other facts held fixed)."""
    return GpuShape(
        gpu_id=f"custom-{memory_gib}",
        gpu_name="custom",
        memory_mib=memory_gib * 1024,
        gpus_per_node=8,
        nvlink_domain=8,
        peer_to_peer=True,
        native_fp8=True,
        compute_capability="9.0",
    )


def sized(model: str, memory_gib: int, max_model_len: int) -> Sizing | None:
    arch = MODELS[model]
    try:
        s = size_model(
            SizingRequest(arch=arch, max_model_len=min(max_model_len, arch.max_position)), shape(memory_gib), 4
        )
    except SizingError:
        return None
    return s if s.fits else None


@settings(max_examples=400, derandomize=True, deadline=None, database=None)
@given(
    model=st.sampled_from(SIZEABLE),
    memory=st.integers(min_value=16, max_value=192),
    more=st.integers(min_value=1, max_value=96),
    length=st.sampled_from(LENGTHS),
)
def test_more_memory_never_needs_more_gpus(model: str, memory: int, more: int, length: int) -> None:
    small, big = sized(model, memory, length), sized(model, memory + more, length)
    if small is not None:
        assert big is not None, f"{model} fits {memory} GiB GPUs but not {memory + more} GiB ones at {length}"
        assert big.gpus_per_replica <= small.gpus_per_replica, (model, memory, more, length)


@settings(max_examples=400, derandomize=True, deadline=None, database=None)
@given(
    model=st.sampled_from(SIZEABLE),
    memory=st.integers(min_value=16, max_value=192),
    longer=st.sampled_from(LENGTHS),
    shorter=st.sampled_from(LENGTHS),
)
def test_a_shorter_context_never_needs_more_gpus(model: str, memory: int, longer: int, shorter: int) -> None:
    if shorter > longer:
        longer, shorter = shorter, longer
    long, short = sized(model, memory, longer), sized(model, memory, shorter)
    if long is not None:
        assert short is not None, f"{model} fits {longer} tokens on {memory} GiB GPUs but not {shorter}"
        assert short.gpus_per_replica <= long.gpus_per_replica, (model, memory, longer, shorter)
