"""Shared fixtures: stacks rendered offline by the real Pulumi program under mocks."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from components.cli import STACKS_DIR, read_stack_config
from components.render import ProgramRun, run_program

STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in STACKS_DIR.glob("Pulumi.*.yaml"))


def stack_config(stack: str) -> Any:
    return read_stack_config(STACKS_DIR / f"Pulumi.{stack}.yaml")


@functools.cache
def rendered(stack: str) -> ProgramRun:
    """One offline run per stack per session (each run clears the shared mock monitor first)."""
    return run_program(stack_config(stack))


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)
