"""The vLLM metric names our monitoring reads work with every supported vLLM release.

Decision: one set of dashboards, rules and adapter rules, no per-version rendering. Every series they read is
exported under the same name and labels (model_name, engine) by 0.13.0 and 0.33.0; the one 0.33 removed
(vllm:time_per_output_token_seconds, hidden by default in 0.13) is read by nothing. The tests below hold that
against each release's real package, and run the promtool unit tests over the series as each release names them;
a release that renames a series changes its MetricNames row, and these tests then name what must `or` both names.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from components.autoscaling import adapter_rules
from components.model_server import drain_script
from components.planning.engine_versions import ENGINE_VERSIONS, V0_13_0, EngineVersion
from components.stacks import load_stack, plan_for
from tests.engine.engine_run import vllm_package
from tests.monitoring.test_dashboards import DASHBOARDS_DIR
from tests.monitoring.test_rules import PROMTOOL_TIMEOUT_S, RULES, UNIT_TESTS, promtool

NAME = re.compile(r"vllm:[a-z0-9_]+")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def base_name(series: str) -> str:
    """A histogram's or counter's exposed series back to the name vLLM registers."""
    for suffix in SUFFIXES:
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def names_read() -> dict[str, set[str]]:
    """Where each vLLM metric is read: dashboards, rules, the adapter rules, the preStop drain."""
    sources = {
        "dashboards": "\n".join(p.read_text() for p in sorted(DASHBOARDS_DIR.glob("*.json"))),
        "rules": RULES.read_text(),
        "adapter": json.dumps(adapter_rules()),
        "preStop": "\n".join(drain_script(m) for m in plan_for(load_stack("staging")).models),
    }
    read: dict[str, set[str]] = {}
    for where, text in sources.items():
        for series in NAME.findall(text):
            read.setdefault(base_name(series), set()).add(where)
    return read


def test_monitoring_reads_the_gauges_and_histograms_it_is_meant_to() -> None:
    read = names_read()
    assert {"dashboards", "rules", "adapter", "preStop"} <= set().union(*read.values())
    assert {"vllm:num_requests_running", "vllm:time_to_first_token_seconds", "vllm:prompt_tokens"} <= read.keys()


@pytest.mark.parametrize("version", ENGINE_VERSIONS)
def test_every_name_read_is_in_the_releases_row(version: str) -> None:
    row = set(ENGINE_VERSIONS[version].metrics.names().values())
    missing = {name: sorted(where) for name, where in names_read().items() if name not in row}
    assert not missing, f"vLLM {version} does not export (by its MetricNames row): {missing}"
    removed = set(ENGINE_VERSIONS[version].removed_metrics) & names_read().keys()
    assert not removed, f"read, but removed in vLLM {version}: {removed}"


def registered_metrics(version: str) -> dict[str, str]:
    """name -> the block registering it, from the installed package's vllm/v1/metrics/loggers.py."""
    source = (vllm_package(version) / "v1" / "metrics" / "loggers.py").read_text()
    blocks = re.split(r"\n(?=\s+\w+ = (?:self\._(?:gauge|counter|histogram)_cls|make_per_engine))", source)
    found: dict[str, str] = {}
    for block in blocks:
        for name in re.findall(r'name="(vllm:[a-z0-9_]+)"', block):
            found[name] = block
    return found


@pytest.mark.parametrize("version", ENGINE_VERSIONS)
def test_the_real_package_exports_every_name_of_its_row(version: str) -> None:
    """Each MetricNames entry is registered by the release's PrometheusStatLogger with the model_name label."""
    registered = registered_metrics(version)
    source = (vllm_package(version) / "v1" / "metrics" / "loggers.py").read_text()
    assert 'labelnames = ["model_name", "engine"]' in source, "the series labels changed"
    missing = [n for n in ENGINE_VERSIONS[version].metrics.names().values() if n not in registered]
    assert not missing, f"vLLM {version}'s loggers.py registers none of {missing}"
    for removed in ENGINE_VERSIONS[version].removed_metrics:
        assert removed not in registered, f"{removed} is still registered by vLLM {version}"


def renamed_unit_tests(row: EngineVersion) -> str:
    """rules.test.yaml with every vLLM input series named as `row`'s release names it (from 0.13's names)."""
    mapping = {V0_13_0.metrics.names()[f]: n for f, n in row.metrics.names().items()}

    def rename(match: re.Match[str]) -> str:
        series = match.group(0)
        base = base_name(series)
        return mapping.get(base, base) + series[len(base) :]

    # Text, not a YAML round trip: PyYAML would read `values: 0x20` as the hex number 32.
    text = UNIT_TESTS.read_text().replace("- ../../components/monitoring/rules/", f"- {RULES.parent}/")
    lines = [NAME.sub(rename, line) if line.lstrip().startswith("- series:") else line for line in text.split("\n")]
    return "\n".join(lines)


@pytest.mark.parametrize("version", ENGINE_VERSIONS)
def test_promtool_unit_tests_pass_on_each_releases_series(version: str, tmp_path: Path) -> None:
    tests = tmp_path / "rules.test.yaml"
    tests.write_text(renamed_unit_tests(ENGINE_VERSIONS[version]))
    fed = set(NAME.findall(tests.read_text()))
    assert fed, "the unit tests feed no vLLM series"
    assert {base_name(s) for s in fed} <= set(ENGINE_VERSIONS[version].metrics.names().values())
    done = subprocess.run(
        [promtool(), "test", "rules", tests.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
