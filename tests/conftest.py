"""Fixtures only; shared helpers live in the testbed package."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.renders import render_to
from testbed.stacks import STACKS


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session", params=STACKS)
def render(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(stack, directory) of each stack's offline render, once per test session."""
    stack = str(request.param)
    return stack, render_to(stack, tmp_path_factory.mktemp(f"render-{stack}"))
