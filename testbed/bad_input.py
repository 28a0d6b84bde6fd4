"""Bad input and how the project must refuse it: a stack serving one model from a config.json file, and the
check that an error names a field."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from components.catalog import CatalogError
from components.spec import ClusterSpec, SpecError
from components.stacks import StackFileError
from testbed.stacks import stack_config

PROJECT_ERRORS = (SpecError, CatalogError, StackFileError)
# The stack's top-level keys; every error line starts with one of them (or with the whole object's key), or with
# the unknown key it reports.
TOP_KEYS = sorted({f.alias or name for name, f in ClusterSpec.model_fields.items()} | {"llm-cluster:cluster"})
FIELD_LINE = re.compile(rf"^(({'|'.join(re.escape(k) for k in TOP_KEYS)})([.\[][^\n]*)?: \S|[^\n]+: unknown key; )")


def one_model_stack(config: Path) -> dict[str, Any]:
    """The minimal example stack, serving only the model of the config.json at `config`, on 2 x 8 H100."""
    raw = copy.deepcopy(stack_config("example-minimal"))
    raw["pools"] = [
        {"name": "gpu", "gpu": "H100-SXM-80GB", "gpusPerNode": 8,
         "backend": {"kind": "existing", "nodeNames": ["node-1", "node-2"]}},
    ]  # fmt: skip
    raw["models"] = [{"name": "outside", "model": "acme/outside", "pool": "gpu", "configPath": str(config)}]
    return dict(raw)


def assert_names_a_field(exc: Exception) -> None:
    """Each line of the error starts with the field path it is about, and no error spans two lines."""
    lines = exc.errors if isinstance(exc, SpecError) else str(exc).splitlines()
    assert lines, f"{type(exc).__name__} with no message"
    for line in lines:
        assert FIELD_LINE.match(line), f"error line names no field: {line!r}"
        assert "\n" not in line, f"one error split over lines (the CLI prints each line on its own): {line!r}"
