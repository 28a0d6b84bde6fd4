"""`python -m components size|plan|catalog` (see components/tools/cli.py; `llm-cluster` from any directory)."""

from components.tools.cli import run

raise SystemExit(run())
