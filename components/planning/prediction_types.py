"""The plan's type for a model's predicted performance (components/planning/layout_choice.py decides it). Kept apart
from types.py so ModelPlan can hold it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PredictionPlan(BaseModel):
    """One replica of the chosen layout under the workload, as components/planning/performance.py predicts it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: int
    output_tokens: int
    concurrency: float  # users per replica the prediction is for
    workload_source: str  # "stack" (models[i].workload) or the default the plan states
    ttft_ms: float
    itl_ms: float
    output_tokens_per_s: float  # one replica
    output_tokens_per_s_per_gpu: float
    bound: str  # memory, compute or comm: what limits a decode step
    # Objectives as the prediction is judged against them (p95 ITL already divided by its factor); None without.
    objective: str | None = None
    ttft_objective_ms: float | None = None
    itl_objective_ms: float | None = None
    # The most users per replica for which the objective holds (0: not even one); None without objectives.
    max_concurrency_for_objective: int | None = None
    meets: bool | None = None  # at `concurrency`; None without objectives
