"""The stacks the GitHub workflows run on, found in stacks/: the matrices of preview.yml and deploy.yml.

    python3 .ci/stack_matrix.py [--stacks-dir DIR] >> "$GITHUB_OUTPUT"

prints two step outputs, each a JSON list:

    stacks=[...]    every stack (stacks/Pulumi.<stack>.yaml): a capacity diff on each pull request
    deployed=[...]  the stacks that reach a cluster: `pulumi preview` on pull requests and `pulumi up` on merge,
                    in promotion order (dev first, prod last, the others by name between them)

The one rule for what deploys lives here: a stack named `example-*` is documentation and a test case, offline only
(capacity diff, plan, tests), and never reaches a backend or a cluster. Every other stack deploys. Standard library
only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

STACKS_DIR = Path(__file__).resolve().parent.parent / "stacks"
EXAMPLE_PREFIX = "example-"
FIRST, LAST = "dev", "prod"
# What Pulumi accepts in a stack name; it also keeps the name inert in a shell, a PR comment and a job name.
STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class StackNameError(ValueError):
    """A stack file whose name no workflow can use; the message names the file and the fix."""


def stack_names(stacks_dir: Path = STACKS_DIR) -> list[str]:
    names = []
    for path in sorted(stacks_dir.glob("Pulumi.*.yaml")):
        name = path.name[len("Pulumi.") : -len(".yaml")]
        if not STACK_NAME.fullmatch(name):
            raise StackNameError(
                f"{path}: stack name {name!r}: use letters, digits, '-', '_' and '.', starting with a letter or digit"
            )
        names.append(name)
    return names


def deploys(stack: str) -> bool:
    """The rule: every stack deploys except the examples."""
    return not stack.startswith(EXAMPLE_PREFIX)


def promotion_order(stacks: list[str]) -> list[str]:
    return sorted(stacks, key=lambda stack: (stack == LAST, stack != FIRST, stack))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 .ci/stack_matrix.py", description=__doc__.split("\n")[0])
    parser.add_argument("--stacks-dir", type=Path, default=STACKS_DIR, help="folder of Pulumi.<stack>.yaml files")
    args = parser.parse_args(argv)
    try:
        stacks = stack_names(args.stacks_dir)
    except StackNameError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not stacks:
        print(f"error: no Pulumi.<stack>.yaml in {args.stacks_dir}; add a stack file there", file=sys.stderr)
        return 1
    deployed = promotion_order([stack for stack in stacks if deploys(stack)])
    print(f"stacks={json.dumps(stacks)}")
    print(f"deployed={json.dumps(deployed)}")
    examples = [stack for stack in stacks if not deploys(stack)]
    print(f"deploy order: {', '.join(deployed) or 'none'}; offline: {', '.join(examples) or 'none'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
