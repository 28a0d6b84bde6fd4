"""CEL for CRD `x-kubernetes-validations`, as the API server evaluates it (cel-python plus Kubernetes' libraries).

Kubernetes adds library functions to standard CEL (k8s.io/apiserver/pkg/cel/library). Only the ones the rules of our
CRDs use, and a few cheap neighbours, are implemented here; a rule calling anything else raises `CelUnsupported`
before it is evaluated, so an unknown function can never make a rule pass silently (CEL's `||` would absorb the error).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any, cast

import celpy
import celpy.evaluation
import lark
import re2  # type: ignore[import-untyped]  # google-re2 ships no stubs; RE2 is what Kubernetes uses
from celpy import celtypes
from celpy.evaluation import CELEvalError

CelValue = Any  # celpy's value union is wide and untyped at the edges


class CelUnsupported(Exception):
    """A rule needs a CEL feature this evaluator does not implement: the test must fail, not pass."""


def regex_find(pattern: str, text: str) -> str | None:
    """First RE2 match (Go regexp semantics, as the API server's patterns and CEL regexes), or None."""
    match = re2.search(pattern, text)
    return None if match is None else str(match.group(0))


def _find(text: str, pattern: str) -> celtypes.StringType:
    return celtypes.StringType(regex_find(pattern, text) or "")


def _find_all(text: str, pattern: str, limit: int = -1) -> celtypes.ListType:
    found = [celtypes.StringType(m.group(0)) for m in re2.finditer(pattern, text)]
    return celtypes.ListType(found if limit < 0 else found[:limit])


def _split(text: str, sep: str, limit: int = -1) -> celtypes.ListType:
    # Go's strings.SplitN: n == 0 gives no parts, n < 0 all of them.
    if limit == 0:
        return celtypes.ListType([])
    parts = text.split(sep, limit - 1) if limit > 0 else text.split(sep)
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _index_of(target: Any, item: Any, offset: int = 0) -> celtypes.IntType:
    if isinstance(target, str):
        return celtypes.IntType(target.find(item, offset))
    return celtypes.IntType(list(target).index(item) if item in target else -1)


def _last_index_of(target: Any, item: Any) -> celtypes.IntType:
    if isinstance(target, str):
        return celtypes.IntType(target.rfind(item))
    items = list(target)
    return celtypes.IntType(len(items) - 1 - items[::-1].index(item) if item in items else -1)


def _sum(items: celtypes.ListType) -> CelValue:
    return functools.reduce(lambda a, b: a + b, items, celtypes.IntType(0))


def _max(items: celtypes.ListType) -> CelValue:
    if not items:
        raise ValueError("max of an empty list")
    return max(cast(list[Any], items))


def _substring(text: str, start: int, end: int | None = None) -> celtypes.StringType:
    if start < 0 or start > len(text) or (end is not None and (end < start or end > len(text))):
        raise ValueError("substring index out of range")
    return celtypes.StringType(text[start:end])


# Kubernetes CEL libraries (strings, regex, lists), by the names the rules call.
KUBERNETES_FUNCTIONS: dict[str, Callable[..., CelValue]] = {
    "find": _find,
    "findAll": _find_all,
    "split": _split,
    "lowerAscii": lambda s: celtypes.StringType("".join(c.lower() if c.isascii() else c for c in s)),
    "upperAscii": lambda s: celtypes.StringType("".join(c.upper() if c.isascii() else c for c in s)),
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "join": lambda items, sep="": celtypes.StringType(sep.join(items)),
    "replace": lambda s, old, new, n=-1: celtypes.StringType(s.replace(old, new, n)),
    "trim": lambda s: celtypes.StringType(s.strip()),
    "substring": _substring,
    "charAt": lambda s, i: celtypes.StringType(s[i] if i < len(s) else ""),
    "isSorted": lambda items: celtypes.BoolType(list(items) == sorted(items)),
    "sum": _sum,
    "max": _max,
}  # fmt: skip
# Macros the parser hands to the evaluator itself, and standard functions cel-python ships.
_MACROS = {"has", "all", "exists", "exists_one", "map", "filter", "min", "dyn"}
KNOWN_FUNCTIONS = frozenset(_MACROS | set(celpy.evaluation.base_functions) | set(KUBERNETES_FUNCTIONS))

_ENV = celpy.Environment()


@functools.cache
def compile_rule(rule: str) -> tuple[celpy.Runner, frozenset[str]]:
    """Parse once; refuse functions we cannot evaluate. Returns the program and the identifiers it reads."""
    tree = _ENV.compile(rule)
    called: set[str] = set()
    idents: set[str] = set()
    for node in tree.iter_subtrees():
        if node.data in ("ident_arg", "member_dot_arg", "dot_ident_arg"):
            name = next(c for c in node.children if isinstance(c, lark.Token) and c.type == "IDENT")
            called.add(str(name))
        elif node.data == "ident":
            idents.update(str(c) for c in node.children if isinstance(c, lark.Token))
    unknown = sorted(called - KNOWN_FUNCTIONS)
    if unknown:
        raise CelUnsupported(f"CEL rule {rule!r} calls {', '.join(unknown)}, which this evaluator does not implement")
    return _ENV.program(tree, functions=KUBERNETES_FUNCTIONS), frozenset(idents)


def to_cel(value: Any, schema: dict[str, Any]) -> CelValue:
    """A JSON value as the API server's CEL sees it: typed by the schema (number is double, byte is bytes...)."""
    if value is None:
        return None
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else {})
            out[celtypes.StringType(key)] = to_cel(item, sub)
        return celtypes.MapType(out)
    if isinstance(value, list):
        items = schema.get("items") or {}
        return celtypes.ListType([to_cel(v, items) for v in value])
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int) and schema.get("type") != "number":
        return celtypes.IntType(value)
    if isinstance(value, int | float):
        return celtypes.DoubleType(value)
    return _string(str(value), schema.get("format"))


def _string(value: str, fmt: str | None) -> CelValue:
    if fmt == "byte":
        return celtypes.BytesType(base64.b64decode(value))
    if fmt == "date-time":
        return celtypes.TimestampType(value)
    if fmt == "duration":
        return celtypes.DurationType(value)
    return celtypes.StringType(value)


def evaluate(rule: dict[str, Any], value: Any, schema: dict[str, Any]) -> str | None:
    """Evaluate one rule on a node as on create (no oldSelf): None when it holds, else the API server's message."""
    program, idents = compile_rule(rule["rule"])
    if "oldSelf" in idents:
        if rule.get("optionalOldSelf"):
            raise CelUnsupported(f"CEL rule {rule['rule']!r} uses optionalOldSelf (optional types)")
        return None  # a transition rule: the API server does not run it when the object is created
    try:
        result = program.evaluate({"self": to_cel(value, schema)})
    except CELEvalError as exc:
        # The API server reports a rule that errors (e.g. reads an absent field) as a failure too.
        return f"{exc.args[0] if exc.args else exc} evaluating rule: {rule['rule']}"
    if not isinstance(result, celtypes.BoolType):
        return f"rule {rule['rule']!r} did not evaluate to a bool: {result!r}"
    if result:
        return None
    if "messageExpression" in rule:
        message_program, _ = compile_rule(rule["messageExpression"])
        try:
            message = message_program.evaluate({"self": to_cel(value, schema)})
        except CELEvalError:
            message = None  # the server falls back to `message` when messageExpression fails
        if isinstance(message, str) and message.strip():
            return str(message)
    return str(rule.get("message") or f"failed rule: {rule['rule']}")
