"""Shared fixtures: the Pulumi program run offline under mocks (one Mocks for the whole session)."""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pulumi
import pytest
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

PROJECT = Path(__file__).resolve().parent.parent


class EchoMocks(pulumi.runtime.Mocks):
    """Resources echo their inputs as state, so tests read back what the program asked for."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


MONITOR = MockMonitor(EchoMocks())
pulumi.runtime.set_mocks(EchoMocks(), project="llm-cluster", stack="test", preview=False, monitor=MONITOR)

ProgramRunner = Callable[[object], dict[str, Any]]


@pytest.fixture
def run_program() -> ProgramRunner:
    """Run __main__.py with `llm-cluster:cluster` set to the given object; return its exports."""

    def run(cluster: object) -> dict[str, Any]:
        pulumi.runtime.set_all_config({"llm-cluster:cluster": json.dumps(cluster)})
        exports: dict[str, Any] = {}

        def program() -> None:
            runpy.run_path(str(PROJECT / "__main__.py"), run_name="__main__")

        with patch("pulumi.export", side_effect=exports.__setitem__):
            _sync_await(run_pulumi_func(program))
        return exports

    return run
