"""Fixtures only; shared helpers live in the testbed package."""

from __future__ import annotations

import pytest

from testbed.stacks import STACKS


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)
