"""config.json files are read as vLLM 0.13 loads them: through transformers' configuration class for their
model_type (components/catalog/transformers_config.py), so the model type's defaults fill what the file leaves out."""

from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import components.catalog.hf_config as hf_config
from components.catalog import CATALOG_DIR, CatalogError, ModelArch, arch_from_hf_config, load_hf_config
from components.catalog.transformers_config import _REMAPPED, MAX_LAYERS, VLLM_OWN_CONFIG_TYPES, engine_config
from tests.test_input_fuzz import mutate

PROJECT = CATALOG_DIR.parents[1]
FIXTURES = Path(__file__).parent / "configs"
GEMMA_27B = FIXTURES / "google/gemma-3-27b-it/config.json"
GEMMA_4B = FIXTURES / "google/gemma-3-4b-it/config.json"
SCOUT = FIXTURES / "meta-llama/Llama-4-Scout-17B-16E-Instruct/config.json"
EVERY_CONFIG = sorted(
    p for root in (CATALOG_DIR / "configs", FIXTURES) for p in root.rglob("config.json") if "1_Pooling" not in p.parts
)
# The files transformers' defaults complete: read as written they miss keys sizing needs.
COMPLETED_BY_DEFAULTS = {GEMMA_27B, GEMMA_4B}
VLLM_SOURCE = next(PROJECT.glob(".venv-vllm/lib/python3*/site-packages/vllm"), None)


def raw(path: Path) -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads(path.read_text())
    return cfg


def gemma3_text_defaults() -> dict[str, Any]:
    from transformers.models.gemma3.configuration_gemma3 import Gemma3TextConfig

    return {name: p.default for name, p in inspect.signature(Gemma3TextConfig.__init__).parameters.items()}


def test_gemma_3_27b_is_sized_with_transformers_defaults() -> None:
    """The file's text_config has no vocab_size or max_position_embeddings: Gemma3TextConfig's defaults in
    transformers 4.57.6 (models/gemma3/configuration_gemma3.py: vocab_size=262_208, max_position_embeddings=131_072)
    are what vLLM sizes with."""
    text = raw(GEMMA_27B)["text_config"]
    assert "vocab_size" not in text and "max_position_embeddings" not in text
    defaults = gemma3_text_defaults()
    assert (defaults["vocab_size"], defaults["max_position_embeddings"]) == (262208, 131072)
    arch = load_hf_config(GEMMA_27B, "google/gemma-3-27b-it")
    assert (arch.vocab, arch.max_position) == (262208, 131072)
    # Stated by the file: head_dim 128 is not hidden_size / heads (5376 / 32 = 168).
    assert (arch.layers, arch.hidden, arch.heads, arch.kv_heads, arch.head_dim) == (62, 5376, 32, 16, 128)
    assert arch.architecture == "Gemma3ForConditionalGeneration" and arch.task == "generate"
    assert (arch.rope_theta, arch.rope_type) == (1_000_000.0, "linear")  # rope_theta is a default too
    assert any("text_config.vocab_size" in n and "Gemma3TextConfig" in n for n in arch.notes)


def test_gemma_3_layer_types_come_from_the_sliding_window_pattern_default() -> None:
    """Gemma3TextConfig derives layer_types from sliding_window_pattern (default 6): every 6th layer global."""
    out, _ = engine_config(raw(GEMMA_27B), "gemma")
    kinds = out["text_config"]["layer_types"]
    assert len(kinds) == 62
    assert [i for i, k in enumerate(kinds) if k == "full_attention"] == list(range(5, 62, 6))
    assert out["text_config"]["sliding_window"] == 1024


def test_gemma_3_4b_takes_its_head_layout_from_the_defaults() -> None:
    """The 4B file states neither head counts nor head_dim: Gemma3TextConfig's 8 / 4 / 256 are the 4B's."""
    text = raw(GEMMA_4B)["text_config"]
    assert not {"num_attention_heads", "num_key_value_heads", "head_dim"} & set(text)
    defaults = gemma3_text_defaults()
    arch = load_hf_config(GEMMA_4B, "google/gemma-3-4b-it")
    assert (arch.heads, arch.kv_heads, arch.head_dim) == (
        defaults["num_attention_heads"],
        defaults["num_key_value_heads"],
        defaults["head_dim"],
    )
    assert (arch.heads, arch.kv_heads, arch.head_dim, arch.layers, arch.hidden) == (8, 4, 256, 34, 2560)
    assert (arch.vocab, arch.max_position) == (262208, 131072)


def test_llama_4_scout_no_rope_layers_come_from_llama4_text_config() -> None:
    """Llama4TextConfig (models/llama4/configuration_llama4.py) makes every no_rope_layer_interval-th (4th) layer
    NoPE and the others chunked attention when the file lists none."""
    assert "no_rope_layers" not in raw(SCOUT)["text_config"]
    out, _ = engine_config(raw(SCOUT), "scout")
    flags = out["text_config"]["no_rope_layers"]
    assert len(flags) == 48 and [i for i, f in enumerate(flags) if f == 0] == list(range(3, 48, 4))
    arch = load_hf_config(SCOUT, "meta-llama/Llama-4-Scout-17B-16E-Instruct")
    assert (arch.layers, arch.vocab, arch.experts, arch.experts_per_token) == (48, 202048, 16, 1)


def without_notes(arch: ModelArch) -> dict[str, Any]:
    values = dataclasses.asdict(arch)
    del values["notes"]
    return values


@pytest.mark.parametrize("path", EVERY_CONFIG, ids=lambda p: str(p.parent.relative_to(p.parents[2])))
def test_every_config_reads_as_it_did_as_written(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers changes no sizing number of a file that states them all; the Gemma-3 files, which do not,
    were refused as written."""
    engine = load_hf_config(path, "acme/model")
    monkeypatch.setattr(hf_config, "engine_config", lambda cfg, where: (cfg, []))
    if path in COMPLETED_BY_DEFAULTS:
        with pytest.raises(CatalogError, match="missing 'text_config"):
            load_hf_config(path, "acme/model")
        return
    assert without_notes(load_hf_config(path, "acme/model")) == without_notes(engine)


def test_reader_never_imports_torch() -> None:
    code = (
        "import sys; from pathlib import Path; from components.catalog import load_hf_config; "
        f"load_hf_config(Path({str(GEMMA_27B)!r}), 'google/gemma-3-27b-it'); "
        "assert 'transformers' in sys.modules; print('torch' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
    assert run.stderr == ""  # transformers' "None of PyTorch ... found" advice is not printed


def test_vllm_own_config_types_are_read_as_written() -> None:
    cfg = {**raw(CATALOG_DIR / "configs/meta-llama/Llama-3.1-8B-Instruct/config.json"), "model_type": "nemotron"}
    out, notes = engine_config(cfg, "x")
    assert out == cfg
    assert "vLLM's own configuration class" in notes[0]


def test_unknown_model_type_is_read_as_written_and_says_so() -> None:
    cfg = {**raw(CATALOG_DIR / "configs/meta-llama/Llama-3.1-8B-Instruct/config.json"), "model_type": "acme_lm"}
    arch = arch_from_hf_config(cfg, "acme/lm")
    assert arch.layers == 32
    assert any(
        "no configuration class for model_type 'acme_lm'" in n and "--trust-remote-code" in n for n in arch.notes
    )


def test_llm_config_is_read_as_text_config() -> None:
    """_CONFIG_ATTRS_MAPPING in vllm/transformers_utils/config.py: InternVL's llm_config is its text_config."""
    text = {k: v for k, v in raw(CATALOG_DIR / "configs/Qwen/Qwen3-32B/config.json").items() if k != "architectures"}
    cfg = {"architectures": ["InternVLChatModel"], "model_type": "internvl_chat", "llm_config": text}
    arch = arch_from_hf_config(cfg, "acme/internvl")
    assert (arch.layers, arch.hidden, arch.vocab) == (64, 5120, 151936)


def test_attribute_map_aliases_are_kept() -> None:
    """GPT2Config keeps hidden_size as n_embd; vLLM reads config.hidden_size through attribute_map."""
    out, _ = engine_config({"model_type": "gpt2", "n_embd": 1024, "n_layer": 24, "n_head": 16}, "x")
    assert (out["hidden_size"], out["num_hidden_layers"], out["num_attention_heads"]) == (1024, 24, 16)
    assert out["max_position_embeddings"] == out["n_positions"] == 1024  # GPT2Config's default


def test_mistral_with_layer_types_is_ministral() -> None:
    """AutoConfig.from_pretrained reads a mistral config with layer_types as ministral (configuration_auto.py)."""
    cfg = {"model_type": "mistral", "num_hidden_layers": 2, "layer_types": ["full_attention"] * 2}
    assert engine_config(cfg, "x")[0]["model_type"] == "ministral"


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["text_config"].update(sliding_window_pattern=0), "text_config.sliding_window_pattern: 0"),
        (lambda c: c["text_config"].update(rope_scaling={"rope_type": "yarn"}), "text_config.rope_scaling: "),
        (lambda c: c.update(text_config="x"), 'text_config: "x"'),
        (lambda c: c.update(torch_dtype=["bf16"]), "torch_dtype: "),
        (lambda c: c["text_config"].update(num_hidden_layers=2**40), "text_config.num_hidden_layers: 109"),
    ],
)
def test_a_config_transformers_refuses_names_the_file_and_the_key(edit: Any, key: str) -> None:
    cfg = raw(GEMMA_27B)
    edit(cfg)
    with pytest.raises(CatalogError) as info:
        arch_from_hf_config(cfg, "google/gemma-3-27b-it", source="gemma.json")
    message = str(info.value)
    assert message.startswith(f"gemma.json of google/gemma-3-27b-it: {key}"), message
    assert "\n" not in message


def test_layer_counts_are_bounded_before_transformers_expands_them() -> None:
    cfg = {**raw(CATALOG_DIR / "configs/Qwen/Qwen3-32B/config.json"), "num_hidden_layers": MAX_LAYERS + 1}
    with pytest.raises(CatalogError, match=f"num_hidden_layers: {MAX_LAYERS + 1} is more than {MAX_LAYERS}"):
        arch_from_hf_config(cfg, "acme/deep")


def registry_keys(source: str, name: str) -> dict[str, str]:
    """The keyword arguments of the call annotated-assigned to `name` at module level (LazyConfigDict(...)), or
    the dict literal it is."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            if isinstance(node.value, ast.Call):
                return {k.arg: ast.literal_eval(k.value) for k in node.value.keywords if k.arg}
            assert node.value is not None
            found: dict[str, str] = ast.literal_eval(node.value)
            return found
    raise AssertionError(f"{name} not found")


def test_vllm_own_config_types_match_the_pinned_vllm() -> None:
    assert VLLM_SOURCE is not None, "install the pinned vLLM: README quick start 2 (.venv-vllm)"
    source = (VLLM_SOURCE / "transformers_utils/config.py").read_text()
    assert set(registry_keys(source, "_CONFIG_REGISTRY")) == VLLM_OWN_CONFIG_TYPES
    assert registry_keys(source, "_CONFIG_ATTRS_MAPPING") == _REMAPPED


def pinned(requirements: str, package: str) -> str:
    match = re.search(rf"^{package}==(\S+)", (PROJECT / requirements).read_text(), re.MULTILINE)
    assert match, f"{package} is not pinned in {requirements}"
    return match[1]


def test_transformers_is_the_version_vllm_resolves_to() -> None:
    import transformers

    assert pinned("requirements.txt", "transformers") == pinned("requirements-vllm.txt", "transformers")
    assert transformers.__version__ == pinned("requirements.txt", "transformers")
    metadata = next(PROJECT.glob(".venv-vllm/lib/python3*/site-packages/vllm-0.13.0.dist-info/METADATA"), None)
    if metadata is not None:  # vLLM 0.13.0 declares transformers<5,>=4.56.0
        assert "Requires-Dist: transformers<5,>=4.56.0" in metadata.read_text().splitlines()


FUZZ = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
GEMMA_FILES = [GEMMA_27B, GEMMA_4B, SCOUT]


@FUZZ
@given(data=st.data())
def test_mutated_configs_that_rely_on_defaults_load_or_are_refused(data: st.DataObject) -> None:
    """Mutated Gemma-3 / Llama-4 files end in a ModelArch or in a one-line CatalogError naming the file first."""
    cfg = copy.deepcopy(raw(data.draw(st.sampled_from(GEMMA_FILES))))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        mutate(cfg, data)
    try:
        arch = arch_from_hf_config(cfg, "acme/fuzz", source="fuzz.json")
    except CatalogError as exc:
        message = str(exc)
        assert message.startswith("fuzz.json of acme/fuzz: ") and "\n" not in message, message
        return
    assert arch.layers >= 1 and arch.vocab >= 1 and arch.max_position >= 1
