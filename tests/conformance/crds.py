"""The upstream CRDs vendored in tests/conformance/upstream/ (see SOURCES.txt), indexed by apiVersion and kind."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conformance import schema

UPSTREAM = Path(__file__).resolve().parent / "upstream"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRD bundles are megabytes


@functools.cache
def sources() -> dict[str, str]:
    """File name -> its SOURCES.txt line (`file <- repo @ tag (commit) : path`)."""
    lines = (UPSTREAM / "SOURCES.txt").read_text().splitlines()
    return {line.split(" <- ")[0]: line for line in lines if line and not line.startswith("#")}


def load_yaml_documents(name: str) -> list[Any]:
    with (UPSTREAM / name).open() as handle:
        return [d for d in yaml.load_all(handle, Loader=_LOADER) if d]


@dataclass(frozen=True)
class CrdVersion:
    source: str  # vendored file name
    api_version: str
    kind: str
    served: bool
    openapi: dict[str, Any]


@functools.cache
def crd_index() -> dict[tuple[str, str], list[CrdVersion]]:
    """(apiVersion, kind) -> every vendored CRD version for it (Karpenter has two releases)."""
    index: dict[tuple[str, str], list[CrdVersion]] = {}
    for path in sorted(UPSTREAM.glob("*.yaml")):
        for doc in load_yaml_documents(path.name):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                api_version = f"{spec['group']}/{version['name']}"
                entry = CrdVersion(path.name, api_version, spec["names"]["kind"], version.get("served", False),
                                   version["schema"]["openAPIV3Schema"])  # fmt: skip
                index.setdefault((api_version, entry.kind), []).append(entry)
    return index


def validate_object(obj: dict[str, Any]) -> list[str]:
    """Every error the API server would give creating obj, against each vendored CRD for its kind."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    name = f"{key[1]} {obj.get('metadata', {}).get('namespace', '')}/{obj.get('metadata', {}).get('name', '')}"
    versions = crd_index().get(key)
    if not versions:
        return [f"{name}: no vendored CRD serves {key[0]} {key[1]} (add it to tests/conformance/upstream/)"]
    errors = []
    for crd in versions:
        if not crd.served:
            errors.append(f"{name}: {crd.source} does not serve {crd.api_version}")
            continue
        _, found = schema.validate(obj, crd.openapi)
        errors.extend(f"{name} [{crd.source}] {error}" for error in found)
    return errors
