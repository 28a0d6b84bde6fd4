"""A custom resource checked against its CRD's structural schema the way the API server does on create.

Order as in the server: unknown fields (which it would prune silently; here an error naming the path), then
OpenAPI defaults (recursively, into list items and map values), then the value validations of the schema
(types, formats, enums, bounds, lengths, patterns, item counts, list-type set/map uniqueness, required) and the
`x-kubernetes-validations` CEL rules of every node that is present. Messages follow the API server's wording.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import re
from datetime import datetime
from typing import Any

from tests.conformance import cel

Schema = dict[str, Any]
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# What the API server accepts in the metadata of a new object (ObjectMeta fields a client may set).
OBJECT_META = {"name", "generateName", "namespace", "labels", "annotations", "finalizers", "ownerReferences"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,), "integer": (int,),
    "number": (int, float),
}  # fmt: skip


def apply_defaults(value: Any, schema: Schema) -> Any:
    """OpenAPI `default`s filled in where a field is absent, then recursively below (defaults included)."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[key] = apply_defaults(item, sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Checker:
    """Collects every violation of one object (not only the first), each as `path: message`."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path or '<root>'}: {message}")

    def check(self, value: Any, schema: Schema, path: str, structural: bool = True) -> None:
        """`structural` is off inside allOf/anyOf/oneOf/not, which only add value validations."""
        if value is None:
            if not schema.get("nullable") and structural:
                self.fail(path, "null value: the API server drops it (field is not nullable)")
            return
        if not self._type_ok(value, schema, path):
            return
        self._check_common(value, schema, path)
        if isinstance(value, dict):
            self._check_object(value, schema, path, structural)
        elif isinstance(value, list):
            self._check_array(value, schema, path, structural)
        elif isinstance(value, str):
            self._check_string(value, schema, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._check_number(value, schema, path)
        self._check_junctors(value, schema, path)
        if structural:
            self._check_rules(value, schema, path)

    def _type_ok(self, value: Any, schema: Schema, path: str) -> bool:
        if schema.get("x-kubernetes-int-or-string"):
            if isinstance(value, bool) or not isinstance(value, int | str):
                self.fail(path, f"Invalid value: {_show(value)}: must be an integer or a string (int-or-string)")
                return False
            return True
        wanted = schema.get("type")
        if wanted is None:
            return True
        if wanted not in _JSON_TYPES:
            raise ValueError(f"{path}: schema type {wanted!r} is not an OpenAPI type")
        is_bool_number = isinstance(value, bool) and wanted in ("integer", "number")  # JSON true is not 1
        ok = isinstance(value, _JSON_TYPES[wanted]) and not is_bool_number
        if wanted == "integer" and isinstance(value, float):
            ok = value.is_integer()
        if not ok:
            self.fail(path, f"Invalid value: {_show(value)}: {path} in body must be of type {wanted}")
        return ok

    def _check_common(self, value: Any, schema: Schema, path: str) -> None:
        enum = schema.get("enum")
        if enum is not None and value not in enum:
            supported = ", ".join(_show(e) for e in enum)
            self.fail(path, f"Unsupported value: {_show(value)}: supported values: {supported}")

    def _check_object(self, value: dict[str, Any], schema: Schema, path: str, structural: bool) -> None:
        props: dict[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in schema.get("required") or []:
            if key not in value:
                self.fail(_join(path, key), "Required value")
        count = len(value)
        if "maxProperties" in schema and count > schema["maxProperties"]:
            self.fail(path, f"Too many: {count}: must have at most {schema['maxProperties']} items")
        if "minProperties" in schema and count < schema["minProperties"]:
            self.fail(path, f"{path} in body should have at least {schema['minProperties']} properties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        # The root and embedded resources carry apiVersion/kind/metadata whatever their schema lists.
        envelope = path == "" or schema.get("x-kubernetes-embedded-resource", False)
        for key, item in value.items():
            if path == "" and key == "metadata":
                continue  # ObjectMeta: checked by _check_metadata, not by the CRD schema
            if key in props:
                self.check(item, props[key], _join(path, key), structural)
            elif isinstance(extra, dict):
                self.check(item, extra, f"{path}[{key}]", structural)
            elif structural and not preserve and not (envelope and key in ("apiVersion", "kind", "metadata")):
                self.fail(_join(path, key), f'unknown field "{_join(path, key)}": the API server would prune it')
        if path == "" and isinstance(value.get("metadata"), dict) and structural:
            self._check_metadata(value["metadata"])

    def _check_metadata(self, meta: dict[str, Any]) -> None:
        for key in meta:
            if key not in OBJECT_META:
                self.fail(f"metadata.{key}", f'unknown field "metadata.{key}"')
        name = meta.get("name", "")
        if len(name) > 253 or not DNS_SUBDOMAIN.match(name):
            self.fail("metadata.name", f"Invalid value: {_show(name)}: a lowercase RFC 1123 subdomain must consist of "
                      "lower case alphanumeric characters, '-' or '.'")  # fmt: skip
        for kind in ("labels", "annotations"):
            for key, text in (meta.get(kind) or {}).items():
                prefix, _, local = key.rpartition("/")
                if not QUALIFIED_NAME.match(local) or len(local) > 63 or (prefix and not DNS_SUBDOMAIN.match(prefix)):
                    self.fail(f"metadata.{kind}", f"Invalid value: {_show(key)}: name part must be a qualified name")
                if kind == "labels" and (len(str(text)) > 63 or not LABEL_VALUE.match(str(text))):
                    self.fail("metadata.labels", f"Invalid value: {_show(text)}: not a valid label value")

    def _check_array(self, value: list[Any], schema: Schema, path: str, structural: bool) -> None:
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            self.fail(path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            self.fail(path, f"{path} in body should have at least {schema['minItems']} items")
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                self.check(item, items, f"{path}[{i}]", structural)
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            self._unique(path, value, _show)
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            self._unique(path, value, lambda i: _show([i.get(k) for k in keys] if isinstance(i, dict) else i))

    def _unique(self, path: str, value: list[Any], key: Any) -> None:
        seen: set[str] = set()
        for i, item in enumerate(value):
            k = key(item)
            if k in seen:
                self.fail(f"{path}[{i}]", f"Duplicate value: {k}")
            seen.add(k)

    def _check_string(self, value: str, schema: Schema, path: str) -> None:
        length = len(value)  # code points, as Go's utf8.RuneCountInString
        if "maxLength" in schema and length > schema["maxLength"]:
            self.fail(path, f"Too long: may not be longer than {schema['maxLength']}")
        if "minLength" in schema and length < schema["minLength"]:
            self.fail(path, f"{path} in body should be at least {schema['minLength']} chars long")
        pattern = schema.get("pattern")
        if pattern is not None and cel.regex_find(pattern, value) is None:
            self.fail(path, f"Invalid value: {_show(value)}: {path} in body should match '{pattern}'")
        fmt = schema.get("format")
        if fmt is not None and schema.get("type") == "string" and not _format_ok(fmt, value):
            self.fail(path, f'Invalid value: {_show(value)}: {path} in body must be of type {fmt}: "{value}"')

    def _check_number(self, value: float, schema: Schema, path: str) -> None:
        fmt = schema.get("format")
        if fmt in INT_RANGES:
            low, high = INT_RANGES[fmt]
            if not low <= value <= high:
                self.fail(path, f'Invalid value: {_show(value)}: {path} in body must be of type {fmt}: "{value}"')
        elif fmt not in (None, "float", "double"):
            raise ValueError(f"{path}: numeric format {fmt!r} is not implemented")
        if "maximum" in schema:
            limit, strict = schema["maximum"], schema.get("exclusiveMaximum", False)
            if value > limit or (strict and value == limit):
                word = "less than" if strict else "less than or equal to"
                self.fail(path, f"Invalid value: {_show(value)}: {path} in body should be {word} {limit}")
        if "minimum" in schema:
            limit, strict = schema["minimum"], schema.get("exclusiveMinimum", False)
            if value < limit or (strict and value == limit):
                word = "greater than" if strict else "greater than or equal to"
                self.fail(path, f"Invalid value: {_show(value)}: {path} in body should be {word} {limit}")
        if "multipleOf" in schema and value % schema["multipleOf"]:
            self.fail(path, f"{path} in body should be a multiple of {schema['multipleOf']}")

    def _matches(self, value: Any, schema: Schema, path: str) -> list[str]:
        sub = Checker()
        sub.check(value, schema, path, structural=False)
        return sub.errors

    def _check_junctors(self, value: Any, schema: Schema, path: str) -> None:
        for sub in schema.get("allOf") or []:
            self.errors.extend(self._matches(value, sub, path))
        if "anyOf" in schema and all(self._matches(value, s, path) for s in schema["anyOf"]):
            self.fail(path, "Invalid value: must validate at least one schema (anyOf)")
        if "oneOf" in schema and sum(not self._matches(value, s, path) for s in schema["oneOf"]) != 1:
            self.fail(path, "Invalid value: must validate one and only one schema (oneOf)")
        if "not" in schema and not self._matches(value, schema["not"], path):
            self.fail(path, "Invalid value: must not validate the schema (not)")

    def _check_rules(self, value: Any, schema: Schema, path: str) -> None:
        for rule in schema.get("x-kubernetes-validations") or []:
            message = cel.evaluate(rule, value, schema)
            if message is not None:
                where = path + rule.get("fieldPath", "") if rule.get("fieldPath") else path
                self.fail(where, f'Invalid value: "{schema.get("type", "object")}": {message}')


def _format_ok(fmt: str, value: str) -> bool:
    """The string formats the API server checks (kube-openapi's strfmt registry) that our CRDs use."""
    try:
        if fmt == "byte":
            base64.b64decode(value, validate=True)
        elif fmt in ("date-time", "datetime"):
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif fmt == "date":
            datetime.strptime(value, "%Y-%m-%d")
        elif fmt == "ipv4":
            ipaddress.IPv4Address(value)
        elif fmt == "ipv6":
            ipaddress.IPv6Address(value)
        elif fmt == "cidr":
            ipaddress.ip_network(value, strict=False)
        elif fmt not in ("int32", "int64", "password"):
            raise ValueError(f"string format {fmt!r} is not implemented")  # never pass an unchecked format
    except (binascii.Error, ValueError) as exc:
        if "not implemented" in str(exc):
            raise
        return False
    return True


def validate(obj: dict[str, Any], schema: Schema) -> tuple[dict[str, Any], list[str]]:
    """Unknown fields first (on what we sent), then defaults, then values and CEL; returns (defaulted, errors)."""
    checker = Checker()
    defaulted = apply_defaults(copy.deepcopy(obj), schema)
    checker.check(defaulted, schema, "")
    return defaulted, checker.errors
