"""Every stack file, and each one run once through the real Pulumi program under mocks."""

from __future__ import annotations

import functools
from typing import Any

from components.stacks import read_stack_config, stack_file, stack_names
from components.tools.render import ProgramRun, run_program

STACKS = stack_names()


def stack_config(stack: str) -> Any:
    return read_stack_config(stack_file(stack))


@functools.cache
def rendered(stack: str) -> ProgramRun:
    """One offline run per stack per session (each run clears the shared mock monitor first)."""
    return run_program(stack_config(stack))


def one_pool_spec(models: list[dict[str, Any]], nodes: int = 1) -> dict[str, Any]:
    """A stack config of one existing H100 pool (8 per node) serving `models`: what sizing and planning tests vary."""
    return {
        "storageClass": "fast",
        "auth": {"allowPlainHttp": True, "clients": [{"name": "tests"}]},
        "pools": [
            {
                "name": "h100",
                "gpu": "H100-SXM-80GB",
                "gpusPerNode": 8,
                "backend": {"kind": "existing", "nodeNames": [f"n{i}" for i in range(nodes)]},
            }
        ],
        "models": models,
    }
