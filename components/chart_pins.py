"""The pinned third-party Helm charts (charts/versions.yaml), without Pulumi: the plan reads them too (the
namespace Envoy Gateway runs its proxies in). components/charts.py installs them."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

CHARTS_DIR = Path(__file__).resolve().parent.parent / "charts"


@dataclass(frozen=True)
class ChartPin:
    name: str
    repo: str
    chart: str
    version: str
    namespace: str


@functools.cache
def chart_pin(name: str) -> ChartPin:
    pins = yaml.safe_load((CHARTS_DIR / "versions.yaml").read_text())
    return ChartPin(name=name, **pins[name])
