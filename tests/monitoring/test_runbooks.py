"""Every alert's runbook_url points at a section of docs/runbooks.md."""

from __future__ import annotations

import re
from pathlib import Path

from components.monitoring import static_rule_groups

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks.md"


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to '-'."""
    found = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text)))
    return found


def test_every_alert_has_a_runbook_section() -> None:
    available = anchors(RUNBOOKS.read_text())
    alerts = [r for g in static_rule_groups() for r in g["rules"] if "alert" in r]
    assert alerts
    for rule in alerts:
        url = rule["annotations"]["runbook_url"]
        assert url.split("#", 1)[1] in available, f"{rule['alert']}: {url} has no section in docs/runbooks.md"
