"""The llm-cluster CrossGuard policy pack: `pulumi preview --policy-pack policy`.

Only builds the pack (constructing it starts the policy gRPC server); the rules live in policy/rules.py.
"""

import sys
from pathlib import Path
from typing import Any

# The rules read the label names and route table the components write (components/) from the project root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from rules import RESOURCE_RULES, STACK_RULES, Resource, ResourceRule, StackRule


def resource_options(opts: PolicyResourceOptions | None) -> dict[str, Any]:
    """The options the rules read, under the names the offline run records them (render.py's Registration)."""
    if opts is None:
        return {}
    return {
        "protect": bool(opts.protect),
        "ignore_changes": sorted(opts.ignore_changes or []),
        "delete_before_replace": bool(opts.delete_before_replace),
    }


def resource_policy(name: str, rule: ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = Resource(args.resource_type, args.name, dict(args.props), resource_options(args.opts))
        for message in rule(resource):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=name, description=(rule.__doc__ or name).strip().split("\n")[0], validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )  # fmt: skip


def stack_policy(name: str, rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [Resource(r.resource_type, r.name, dict(r.props), resource_options(r.opts)) for r in args.resources]
        for message in rule(resources):
            report_violation(message, None)

    return StackValidationPolicy(
        name=name, description=(rule.__doc__ or name).strip().split("\n")[0], validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )  # fmt: skip


PolicyPack(
    name="llm-cluster",
    policies=[
        *(resource_policy(name, rule) for name, rule in RESOURCE_RULES.items()),
        *(stack_policy(name, rule) for name, rule in STACK_RULES.items()),
    ],
)
