"""Grafana dashboards: well-formed, datasource-agnostic, every query parses (promtool) and each dashboard
covers what operators need from it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = ROOT / "components" / "monitoring" / "dashboards"
REQUIRED = ["model-serving.json", "gateway.json", "gpus.json", "capacity.json"]
DATASOURCE_REFS = {"${datasource}", "$datasource"}
MODEL_QUERY = "label_values(vllm:num_requests_running, model_name)"
# Grafana's built-in variables and the values promtool sees in their place.
BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__range_s": "3600", "__interval_ms": "60000"}
VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)")
QUANTILES = ("0.5", "0.95", "0.99")


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((DASHBOARDS_DIR / name).read_text())
    return board


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def query_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in panels(board) if panel.get("type") != "row"]


def exprs(board: dict[str, Any]) -> list[str]:
    return [str(target["expr"]) for panel in query_panels(board) for target in panel.get("targets", [])]


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in board.get("templating", {}).get("list", [])}


def variable_query(var: dict[str, Any]) -> str:
    query = var.get("query", "")
    return str(query.get("query", "") if isinstance(query, dict) else query)


def substitute(expr: str, defined: set[str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in BUILTINS:
            return BUILTINS[name]
        assert name in defined, f"${name} is not a variable of the dashboard: {expr}"
        return "x"

    return VARIABLE.sub(value, expr)


def flat(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def has_quantiles(board: dict[str, Any], metric: str, quantiles: tuple[str, ...] = QUANTILES) -> bool:
    found = {q for e in map(flat, exprs(board)) if metric in e for q in re.findall(r"histogram_quantile\(([\d.]+),", e)}
    return set(quantiles) <= found


def uses(board: dict[str, Any], *fragments: str) -> bool:
    """Some query contains every fragment (whitespace ignored)."""
    return any(all(flat(f) in e for f in fragments) for e in map(flat, exprs(board)))


def datasource_refs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


def test_required_dashboards_exist() -> None:
    assert set(REQUIRED) <= {path.name for path in dashboard_files()}


def test_dashboard_uids_are_unique() -> None:
    uids = [load(path.name)["uid"] for path in dashboard_files()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("name", [path.name for path in dashboard_files()])
def test_dashboard_is_well_formed(name: str) -> None:
    board = load(name)
    assert board["uid"] and len(board["uid"]) <= 40
    assert board["title"]
    assert board["schemaVersion"] == 39
    assert "__inputs" not in board
    found = query_panels(board)
    assert found
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in found:
        assert panel.get("title"), panel
        assert panel.get("targets"), f"panel {panel.get('title')!r} has no targets"
        for target in panel["targets"]:
            assert str(target.get("expr", "")).strip(), f"panel {panel['title']!r} has an empty query"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


@pytest.mark.parametrize("name", [path.name for path in dashboard_files()])
def test_dashboard_uses_the_datasource_variable(name: str) -> None:
    board = load(name)
    datasource = variables(board).get("datasource")
    assert datasource is not None and datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    for ref in datasource_refs({"panels": board["panels"], "templating": board["templating"]}):
        uid = ref.get("uid") if isinstance(ref, dict) else ref
        assert uid in DATASOURCE_REFS, f"hard-coded datasource {ref!r}"


@pytest.mark.parametrize("name", REQUIRED)
def test_dashboard_has_the_model_variable(name: str) -> None:
    model = variables(load(name)).get("model")
    assert model is not None and model["type"] == "query"
    assert flat(variable_query(model)) == flat(MODEL_QUERY)


def test_every_query_parses(tmp_path: Path) -> None:
    """Each panel query and variable query, with Grafana variables filled in, is valid PromQL to promtool."""
    rules = []
    for path in dashboard_files():
        board = load(path.name)
        defined = set(variables(board))
        queries = list(exprs(board))
        for var in variables(board).values():
            match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", variable_query(var))
            if match:
                queries.append(match.group(1))
        rules += [{"expr": substitute(q, defined), "source": f"{path.name}: {q}"} for q in queries]
    assert rules
    rule_file = tmp_path / "dashboards.rules.yaml"
    rule_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboards",
                        "rules": [{"record": f"dashboard:check_{n}", "expr": r["expr"]} for n, r in enumerate(rules)],
                    }
                ]
            }
        )
    )
    promtool = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else None)
    if promtool is None:
        pytest.fail("promtool not found on PATH: install it to check the dashboard queries")
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=120, check=False
    )
    sources = "\n".join(f"dashboard:check_{n}  {r['source']}" for n, r in enumerate(rules))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{sources}"


def test_model_serving_dashboard_coverage() -> None:
    board = load("model-serving.json")
    for metric in ("vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds"):
        assert has_quantiles(board, f"{metric}_bucket"), metric
    assert has_quantiles(board, "vllm:e2e_request_latency_seconds_bucket")
    assert uses(board, "vllm:num_requests_running")
    assert uses(board, "vllm:num_requests_waiting")
    assert uses(board, "vllm:kv_cache_usage_perc")
    assert uses(board, "rate(vllm:num_preemptions_total")
    assert uses(board, "rate(vllm:prompt_tokens_total")
    assert uses(board, "rate(vllm:generation_tokens_total")
    assert uses(board, "llm_cluster:model_ttft_slo_seconds")


def test_gateway_dashboard_coverage() -> None:
    board = load("gateway.json")
    # requests
    assert uses(board, "rate(litellm_proxy_total_requests_metric_total")
    assert uses(board, "rate(vllm_router_requests_total")
    # errors
    assert uses(board, "litellm_proxy_total_requests_metric_total", 'status_code=~"5.."')
    assert uses(board, "rate(litellm_proxy_failed_requests_metric_total")
    assert uses(board, "rate(vllm_router_retries_exhausted_total")
    assert uses(board, "rate(vllm_router_request_errors_total")
    # latency
    assert has_quantiles(board, "litellm_request_total_latency_metric_bucket")
    assert has_quantiles(board, "vllm_router_generate_duration_seconds_bucket")
    # overhead
    assert has_quantiles(board, "litellm_overhead_latency_metric_bucket")


def test_gpu_dashboard_coverage() -> None:
    board = load("gpus.json")
    for metric in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_XID_ERRORS"):
        assert uses(board, metric), metric
    assert uses(board, 'job="nvidia-dcgm-exporter"')


def test_capacity_dashboard_coverage() -> None:
    board = load("capacity.json")
    assert uses(board, "kube_deployment_status_replicas_available")
    assert uses(board, "kube_horizontalpodautoscaler_status_desired_replicas")
    assert uses(board, "llm_cluster:model_min_replicas")
    # pool capacity: GPU capacity of the nodes, grouped by their llm-cluster.io/pool label
    assert uses(
        board,
        'kube_node_status_capacity{resource="nvidia_com_gpu"}',
        "*on(node)group_left(label_llm_cluster_io_pool)kube_node_labels",
        "by(label_llm_cluster_io_pool)",
    )
