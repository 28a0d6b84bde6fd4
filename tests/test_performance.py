"""The performance model (components/planning/performance.py): its physics, its calibration data, the report the
benchmark writes, and the `predicted` object of `size --json`."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from bench import perf_model
from components.catalog import ModelArch, load_gpu_catalog
from components.planning.performance import (
    Hardware,
    Layout,
    Objective,
    PerformanceError,
    Workload,
    experts_touched,
    load_fit,
    predict,
)
from components.tools import cli

ROOT = Path(__file__).parents[1]
DENSE = ModelArch(
    id="dense-70b", task="generate", architecture="LlamaForCausalLM", attention="gqa", params_b=70.55, layers=80,
    hidden=8192, heads=64, kv_heads=8, head_dim=128, intermediate=28672, vocab=128256, tie_embeddings=False,
    max_position=131072, checkpoint_dtype="bf16",
)  # fmt: skip
# Same total parameters, but 64 routed experts of which 4 serve each token.
MOE = replace(DENSE, id="moe-70b", experts=64, experts_per_token=4, moe_intermediate=2048, intermediate=2048)
H100 = Hardware.of(load_gpu_catalog()["H100-SXM-80GB"])
CHAT = Workload(input_len=1024, output_len=256, concurrency=1)


def _predict(arch: ModelArch = DENSE, hw: Hardware = H100, tp: int = 2, concurrency: float = 1) -> float:
    return predict(arch, hw, Layout(tp=tp), "bf16", "auto", replace(CHAT, concurrency=concurrency)).itl_ms


def test_more_bandwidth_is_never_slower() -> None:
    """Decode and throughput never get slower; TTFT of one user neither. (With many users, faster decoding brings
    their next prompts sooner, so a prompt may queue longer behind theirs: closed-loop TTFT is not monotonic.)"""
    faster = replace(H100, hbm_gbs=H100.hbm_gbs * 1.5)
    for c in (1, 8, 64, 256):
        slow = predict(DENSE, H100, Layout(tp=2), "bf16", "auto", replace(CHAT, concurrency=c))
        fast = predict(DENSE, faster, Layout(tp=2), "bf16", "auto", replace(CHAT, concurrency=c))
        assert fast.itl_ms <= slow.itl_ms
        assert fast.output_tokens_per_s >= slow.output_tokens_per_s
        assert c > 1 or fast.ttft_ms <= slow.ttft_ms


def test_more_concurrency_never_lowers_itl() -> None:
    itls = [_predict(concurrency=c) for c in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 2048)]
    assert itls == sorted(itls)


def test_moe_reads_only_the_experts_its_batch_routes_to() -> None:
    assert _predict(MOE) < _predict(DENSE)  # one user touches 4 of 64 experts per layer
    touched = [experts_touched(MOE, t) for t in (1, 4, 16, 64, 256)]
    assert touched == sorted(touched) and touched[0] == pytest.approx(4 / 64) and touched[-1] > 0.99


def test_tp_over_pcie_costs_more_all_reduce_than_over_nvlink() -> None:
    def comm(hw: Hardware) -> float:
        p = predict(DENSE, hw, Layout(tp=4), "bf16", "auto", replace(CHAT, concurrency=32))
        return p.terms_ms["comm"]

    nvlink = comm(H100)
    pcie = comm(replace(H100, nvlink_domain=1))
    host = comm(replace(H100, nvlink_domain=1, peer_to_peer=False))
    assert 0 < nvlink < pcie <= host


def test_objective_search_returns_the_edge() -> None:
    target = 2 * _predict(concurrency=1)
    p = predict(DENSE, H100, Layout(tp=2), "bf16", "auto", CHAT, Objective(itl_ms=target))
    edge = p.max_concurrency_for_objective
    assert edge is not None and edge >= 1
    assert _predict(concurrency=edge) <= target < _predict(concurrency=edge + 1)


def test_pooling_models_have_no_prediction() -> None:
    with pytest.raises(PerformanceError, match="generates no tokens"):
        predict(replace(DENSE, task="embed"), H100, Layout(tp=1), "bf16", "auto", CHAT)


def test_every_calibration_run_has_its_source_and_numbers() -> None:
    data = yaml.safe_load((ROOT / "bench/reference/perf_runs.yaml").read_text())
    assert sum(1 for run in data["runs"] if not run.get("excluded")) >= 40
    for run in data["runs"]:
        source = data["sources"][run["source"]]
        assert source["url"].startswith("https://") and source["engine"], run["id"]
        assert run["quote"] and run["measured"], run["id"]
        assert set(run["measured"]) <= set(perf_model.METRICS), run["id"]
        assert run["gpu"] in load_gpu_catalog(), run["id"]
    ids = [run["id"] for run in data["runs"]]
    assert len(ids) == len(set(ids))


def test_the_report_shows_what_the_script_computes() -> None:
    cases = perf_model.load_cases()
    fit = load_fit()
    report = perf_model.evaluate(cases, fit)
    assert (ROOT / "bench/results/perf_model.md").read_text() == perf_model.render(report, fit)
    assert report["counts"]["test"] > 0 and all(r["split"] != "test" or r["ape"] for r in report["rows"])


def test_size_json_reports_the_prediction() -> None:
    config = ROOT / "components/catalog/configs/Qwen/Qwen3-32B/config.json"
    argv = ["size", "--config", str(config), "--model", "Qwen/Qwen3-32B", "--params-b", "32.76",
            "--gpu", "H100-SXM-80GB", "--json", "--input-len", "2000", "--output-len", "300",
            "--concurrency", "30", "--itl-ms", "40"]  # fmt: skip
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(argv) == 0
    predicted = json.loads(out.getvalue())["predicted"]
    assert predicted["concurrency"] == 30 and predicted["input_len"] == 2000
    assert predicted["ttft_ms"] > 0 and predicted["itl_ms"] > 0 and predicted["output_tokens_per_s"] > 0
    assert isinstance(predicted["max_concurrency_for_objective"], int)


def test_kv_room_counts_the_tokens_a_request_holds_on_average() -> None:
    """vLLM allocates KV blocks as tokens are computed and reserves none for the output to come, so a running
    request holds input + output/2 tokens on average: 30,000 tokens hold 30,000 / (1024 + 128) = 26 requests."""
    layout = Layout(tp=2, kv_cache_tokens=30_000)
    p = predict(DENSE, H100, layout, "bf16", "auto", replace(CHAT, concurrency=100))
    assert p.batch == pytest.approx(30_000 / (1024 + 256 / 2), rel=1e-3)
    assert p.queue_ms > 0  # the other users wait for a slot


def test_no_calibration_run_beats_the_physics_floor() -> None:
    """Every run kept for fit or test took at least its prompt's FLOPs at the GPU's peak to return a first token;
    the ones that did not are excluded and say why."""
    for case in perf_model.load_cases():
        ttft = case.row["measured"].get("ttft_ms")
        if ttft is None:
            continue
        floor = perf_model.ttft_floor_ms(case.arch, case.hw, case.row)
        assert case.split == "excluded" or ttft >= floor, case.id
        assert ttft >= floor or "floor" in case.row["excluded"] or "source" in case.row["excluded"], case.id


def test_every_gpu_perf_figure_cites_what_was_read() -> None:
    rows = yaml.safe_load((ROOT / "components/catalog/gpus.yaml").read_text())["gpus"]
    for row in rows:
        if "perf" in row:
            assert row["perf_source"].startswith("read ") and "https://" in row["perf_source"], row["id"]
