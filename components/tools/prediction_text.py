"""The plan's predicted performance per model as a table (components/planning/layout_choice.py decides it)."""

from __future__ import annotations

from components.planning.layout_options import DEFAULT_INPUT_TOKENS, DEFAULT_OUTPUT_TOKENS
from components.planning.types import ClusterPlan, ModelPlan
from components.tools.text_layout import table, wrap_line

HEADERS = ["model", "in/out tokens", "users/replica", "TTFT ms", "ITL ms", "tok/s/replica", "bound", "objective",
           "met up to"]  # fmt: skip
NOTE = (
    f"users/replica: the stack's workload at its peak; * no workload in the stack: {DEFAULT_INPUT_TOKENS} in / "
    f"{DEFAULT_OUTPUT_TOKENS} out tokens, as many users as the KV cache holds (at most max_num_seqs)"
)


def _row(m: ModelPlan) -> list[str]:
    p = m.prediction
    assert p is not None
    met = "-" if p.max_concurrency_for_objective is None else f"{p.max_concurrency_for_objective} users"
    return [
        m.name,
        f"{p.input_tokens}/{p.output_tokens}",
        f"{p.concurrency:g}" + ("*" if p.workload_source != "stack" else ""),
        f"{p.ttft_ms:.0f}",
        f"{p.itl_ms:.1f}",
        f"{p.output_tokens_per_s:.0f}",
        p.bound,
        (p.objective or "-") + (" MISSED" if p.meets is False else ""),
        met,
    ]


def prediction_lines(plan: ClusterPlan, heading: str, markdown: bool, width: int | None) -> list[str]:
    """A heading, the table and its note; nothing when no model is predicted (pooling models, GPU slices)."""
    rows = [_row(m) for m in plan.models if m.prediction is not None]
    if not rows:
        return []
    return ["", heading, table(HEADERS, rows, markdown, width), "", *wrap_line(NOTE, width)]
