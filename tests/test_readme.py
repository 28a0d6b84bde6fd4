"""The README's quick start is what CI runs, word for word."""

from __future__ import annotations

import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    readme = (PROJECT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quick_start_is_two_commands_that_ci_runs_verbatim() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "components plan --stack dev" in commands[0]
    assert commands[1].endswith("python -m pytest")
    ci = (PROJECT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci
