"""`python -m components size|plan` (see components/tools/cli.py)."""

import os
import sys

from components.tools.cli import main

try:
    code = main()
    sys.stdout.flush()
except BrokenPipeError:
    # The reader (`| head`) went away: stop quietly, as a pipeline expects.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 0
raise SystemExit(code)
