"""Every shipped config.json read by our reader (components/catalog/hf_config.py through transformers 4.57.6, what
vLLM 0.13 uses) against the config each supported vLLM release builds itself (tests/engine/config_probe.py, run in
the release's venv: vLLM 0.13.0 with transformers 4.57.6, vLLM 0.33.0 with transformers 5.x).

The sizing fields must agree for every release: layers, hidden size, attention and KV heads, head size, vocabulary,
positions, and which layers are sliding-window or chunked (with their window). They do for every shipped config
under both releases, so the reader stays version-independent: transformers 5's configuration classes fill in the
same values as 4.57.6's for these model types (test_releases_agree_on_every_shipped_config shows it). A config the
release refuses without remote code (Nemotron-Super's DeciLM) is compared as far as vLLM reads it: not at all."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.catalog import ModelArch
from components.catalog.hf_config import load_hf_config
from components.planning.engine_versions import ENGINE_VERSIONS
from components.planning.kv_cache import effective_groups
from tests.engine.engine_run import vllm_python

PROBE = Path(__file__).with_name("config_probe.py")
ROOT = Path(__file__).parents[2]
CONFIGS = sorted(
    path.parent
    for base in (ROOT / "components/catalog/configs", ROOT / "tests/catalog/configs")
    for path in base.glob("**/config.json")
    if path.parent.name != "1_Pooling"  # sentence-transformers' pooling settings, not a model config
)
IDS = [str(d.relative_to(d.parents[1])) for d in CONFIGS]
VERSIONS = list(ENGINE_VERSIONS)
# transformers' names of the layer kinds (layer_types) and ours (components/catalog/layers.py).
KINDS = {"full_attention": "full", "sliding_attention": "sliding", "chunked_attention": "chunked"}


@functools.cache
def _probe(version: str) -> dict[str, Any]:
    """Every shipped config as the release builds it (one probe run per release and session)."""
    done = subprocess.run(
        [str(vllm_python(version)), str(PROBE)],
        input=json.dumps([str(d) for d in CONFIGS]),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["versions"]["vllm"] == version
    return answer


@pytest.fixture(scope="module", params=VERSIONS)
def built(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, _probe(request.param)


def _ours(directory: Path) -> ModelArch:
    return load_hf_config(directory / "config.json", str(directory.relative_to(directory.parents[1])))


def _layer_kinds(arch: ModelArch) -> list[tuple[str, int]]:
    kinds = [("full", 0)] * arch.layers
    for group in effective_groups(arch):
        for i in group.layers:
            kinds[i] = (group.kind, group.window) if group.kind in ("sliding", "chunked") else ("full", 0)
    return kinds


def _their_layer_kinds(cfg: dict[str, Any]) -> list[tuple[str, int]]:
    windows = {"sliding": cfg["sliding_window"] or 0, "chunked": cfg["attention_chunk_size"] or 0, "full": 0}
    types = cfg["layer_types"] or ["full_attention"] * cfg["layers"]
    return [(KINDS[t], windows[KINDS[t]]) for t in (types[i] for i in range(cfg["layers"]))]


@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=IDS)
def test_sizing_fields_are_what_vllm_builds(built: tuple[str, dict[str, Any]], index: int) -> None:
    version, answer = built
    cfg = answer["configs"][index]
    if "error" in cfg:
        # Only remote-code configs may be refused: vLLM builds them with the checkpoint's own code, which our
        # reader does not run either (it reads them as written and says so in the model's notes).
        assert "custom code" in cfg["error"], cfg
        assert any("read as written" in note for note in _ours(CONFIGS[index]).notes), (version, IDS[index])
        return
    arch = _ours(CONFIGS[index])
    ours = {
        "layers": arch.layers,
        "hidden": arch.hidden,
        "heads": arch.heads,
        "vocab": arch.vocab,
        "max_position": arch.max_position,
    }
    theirs = {key: cfg[key] for key in ours}
    if cfg["model_type"] in ("roberta", "xlm-roberta"):
        # vLLM starts RoBERTa positions at pad_token_id + 1 (vllm/model_executor/models/roberta.py, both releases),
        # so fewer tokens fit than max_position_embeddings: our reader states the usable count.
        theirs["max_position"] -= cfg["pad_token_id"] + 1
    if arch.attention != "mla":  # MLA's KV is the latent (kv_lora_rank), not kv_heads x head_dim
        ours |= {"kv_heads": arch.kv_heads, "head_dim": arch.head_dim}
        theirs |= {"kv_heads": cfg["kv_heads"], "head_dim": cfg["head_dim"]}
    assert ours == theirs, f"vLLM {version} (transformers {answer['versions']['transformers']})"
    if arch.attention not in ("mla", "encoder"):
        assert _layer_kinds(arch) == _their_layer_kinds(cfg)


def test_releases_agree_on_every_shipped_config() -> None:
    # The reader is not version-aware because it need not be: both releases build the same sizing fields.
    answers = [_probe(version) for version in VERSIONS]
    majors = {answer["versions"]["transformers"].split(".")[0] for answer in answers}
    assert majors == {"4", "5"}  # the two transformers generations really are compared
    first, *rest = (answer["configs"] for answer in answers)
    for other in rest:
        for name, a, b in zip(IDS, first, other, strict=True):
            assert ("error" in a) == ("error" in b), name
            if "error" not in a:
                assert a == b, name
