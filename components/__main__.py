"""`python -m components size|plan` (see components/cli.py)."""

from components.cli import main

raise SystemExit(main())
