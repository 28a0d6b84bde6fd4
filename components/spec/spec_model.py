"""The pydantic configuration every model of the stack config shares (SpecModel in models.py, and the models of
api_service.py, which models.py imports and so cannot subclass SpecModel)."""

from __future__ import annotations

from pydantic import ConfigDict
from pydantic.alias_generators import to_camel

# camelCase keys in YAML, snake_case in Python, unknown keys are errors. No NaN or infinity: every float is a size,
# a fraction or a time, and arithmetic on them must stay finite.
SPEC_MODEL_CONFIG = ConfigDict(
    alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, allow_inf_nan=False
)
