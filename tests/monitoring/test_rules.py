"""Alert and recording rules: promtool accepts them and their unit tests pass; every alert is labelled,
documented and has a firing and a quiet unit test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "components" / "monitoring" / "rules" / "llm-cluster.rules.yaml"
UNIT_TESTS = Path(__file__).with_name("rules.test.yaml")
RUNBOOK = "https://github.com/llm-cluster/llm-cluster/blob/main/docs/runbooks.md#"
PROMTOOL_TIMEOUT_S = 120

REQUIRED_ALERTS = {
    "ModelServerDown",
    "ModelServerAbsent",
    "ModelNoReadyReplica",
    "ModelTTFTAboveSLO",
    "ModelRequestsWaitingTooLong",
    "ModelKVCacheNearlyFull",
    "ModelPreemptionsRising",
    "GpuXidError",
    "GpuMemoryHigh",
    "SharedGpuMemoryPressure",
    "GpuTemperatureHigh",
    "GatewayErrorRatioHigh",
    "GatewayOverheadHigh",
    "HpaAtMaxReplicas",
    "PersistentVolumeNearlyFull",
    "RateLimitsNotEnforced",
}
GROUPS = ["model-servers", "gpus", "gateway", "rate-limits", "capacity"]


def promtool() -> str:
    """The promtool binary; its absence fails the test (the rules are untested without it)."""
    path = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else None)
    if path is None:
        pytest.fail(
            "promtool not found on PATH: install it (Debian/Ubuntu: `apt-get install prometheus`, or the promtool "
            "binary from a Prometheus release) to check and unit-test the alert rules"
        )
    return path


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S, check=False
    )


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def alert_rule_tests() -> list[dict[str, Any]]:
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    return [case for test in doc["tests"] for case in test.get("alert_rule_test", [])]


def rule_id(rule: dict[str, Any]) -> str:
    extra = {k: v for k, v in rule.get("labels", {}).items() if k != "severity"}
    return f"{rule['alert']}{extra}" if extra else str(rule["alert"])


def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", str(RULES), cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    # rule_files in the unit tests are relative to the test file.
    result = run_promtool("test", "rules", UNIT_TESTS.name, cwd=UNIT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_load_the_shipped_rule_file() -> None:
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    assert [(UNIT_TESTS.parent / f).resolve() for f in doc["rule_files"]] == [RULES.resolve()]


def test_one_group_per_area() -> None:
    assert [group["name"] for group in rule_groups()] == GROUPS


def test_alert_names_are_the_required_set() -> None:
    assert {rule["alert"] for rule in alert_rules()} == REQUIRED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=rule_id)
def test_alert_has_severity_and_annotations(rule: dict[str, Any]) -> None:
    assert rule.get("labels", {}).get("severity") in {"critical", "warning"}
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert str(annotations.get(key, "")).strip(), f"{rule['alert']} has no {key}"
    assert annotations["runbook_url"] == RUNBOOK + rule["alert"].lower()


def test_recording_rules_follow_the_naming_convention() -> None:
    records = [rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule]
    assert records
    for record in records:
        assert record.startswith("llm_cluster:") and record.count(":") == 2, record


@pytest.mark.parametrize("alert", sorted(REQUIRED_ALERTS))
def test_alert_has_a_firing_and_a_quiet_unit_test(alert: str) -> None:
    cases = [case for case in alert_rule_tests() if case["alertname"] == alert]
    assert any(case.get("exp_alerts") for case in cases), f"no unit test where {alert} fires"
    assert any(not case.get("exp_alerts") for case in cases), f"no unit test where {alert} stays quiet"


@pytest.mark.parametrize("rule", alert_rules(), ids=rule_id)
def test_every_rule_of_an_alert_fires_in_a_unit_test(rule: dict[str, Any]) -> None:
    """Alerts with several rules (per gateway kind, per severity) have each rule fire somewhere."""
    static = rule.get("labels", {})
    fired = [
        alert["exp_labels"]
        for case in alert_rule_tests()
        if case["alertname"] == rule["alert"]
        for alert in case.get("exp_alerts") or []
    ]
    assert any(static.items() <= labels.items() for labels in fired), f"no unit test fires {rule_id(rule)}"


def test_unit_tests_compare_annotations() -> None:
    for case in alert_rule_tests():
        for alert in case.get("exp_alerts") or []:
            assert set(alert.get("exp_annotations", {})) == {"summary", "description", "runbook_url"}, case
