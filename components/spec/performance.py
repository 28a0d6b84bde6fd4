"""A model's expected workload and its latency objectives (`models[i].workload`, `models[i].objectives`).

With objectives, the plan picks the layout (TP x PP) and replica count that meet them with the fewest GPUs, by the
performance model's predictions (components/planning/layout_choice.py); without, it keeps its memory rule and only
shows the predictions. Both blocks are optional.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from components.spec.spec_model import SPEC_MODEL_CONFIG

# The same bound as max_num_batched_tokens (models.py): past every published context length.
MAX_TOKENS = 2**24


class WorkloadSpec(BaseModel):
    """Mean prompt and answer of a request, and the most users sending at once (all replicas together)."""

    model_config = SPEC_MODEL_CONFIG

    input_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS)] = 1024
    output_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS)] = 256
    peak_concurrency: Annotated[int, Field(ge=1, le=1_000_000)]


class ObjectivesSpec(BaseModel):
    """Latency targets every request should meet at the workload's peak concurrency. p50 is compared with the
    predicted mean; p95 is accepted for ITL only (layout_choice.py says why)."""

    model_config = SPEC_MODEL_CONFIG

    ttft_ms: Annotated[float, Field(gt=0, le=3_600_000)] | None = None
    itl_ms: Annotated[float, Field(gt=0, le=60_000)] | None = None
    percentile: Literal["p50", "p95"] = "p50"
