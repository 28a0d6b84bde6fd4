"""Broken files and command lines end in one clear refusal naming the file or field and the fix, never a traceback:
stack files, a model's config.json (its file and its content), and the CLI around them."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.catalog.config_values import MAX_WHOLE
from components.spec import SpecError, load_cluster_spec
from components.stacks import StackFileError, plan_for, read_stack_config
from components.tools.cli import main
from testbed.bad_input import assert_names_a_field, one_model_stack
from testbed.stacks import stack_config

PROJECT = Path(__file__).resolve().parent.parent
LLAMA = PROJECT / "components/catalog/configs/meta-llama/Llama-3.1-8B-Instruct/config.json"
FROM_HF = "use the model's original config.json from its Hugging Face repository"


# ---------------------------------------------------------------- stack files


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"- a\n- b\n", "the file is a YAML list; a stack file is a mapping with a `config:` key"),
        (b"config: hello\n", "`config:` is a scalar (str), not a mapping; indent `llm-cluster:cluster:` under"),
        (b"config:\n  - 1\n", "`config:` is a list, not a mapping; indent `llm-cluster:cluster:` under `config:`"),
        (b'config:\n  llm-cluster:cluster:\n    x: "\xff\xfe"\n', "not UTF-8 text (byte 39); save the stack file as"),
        (b"config: {a: 2024-13-45}\n", "a value YAML cannot read (month must be in 1..12); quote it or correct it"),
        (b"config: {a: " + b"1" * 5000 + b"}\n", "a value YAML cannot read (Exceeds the limit (4300 digits)"),
        (b"config: {a: [}\n", "not valid YAML"),
    ],
)
def test_a_broken_stack_file_is_refused_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_bytes(content)
    with pytest.raises(StackFileError) as raised:
        read_stack_config(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_a_directory_as_stack_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackFileError, match="is a directory; give a stack file"):
        read_stack_config(tmp_path)


def test_a_cluster_config_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text("config:\n  llm-cluster:cluster: 5\n")
    with pytest.raises(SpecError) as raised:
        load_cluster_spec(read_stack_config(path))
    assert raised.value.errors == [
        "llm-cluster:cluster: expected a mapping with pools and models, got int; indent its keys (pools:, models:, "
        "...) under `llm-cluster:cluster:`"
    ]


# ---------------------------------------------------------------- configPath: the file


def refused_config(config: Path) -> str:
    with pytest.raises(SpecError) as raised:
        plan_for(load_cluster_spec(one_model_stack(config)))
    assert_names_a_field(raised.value)
    (line,) = raised.value.errors
    assert line.startswith("models[0].configPath: ")
    return line


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file; download the model's config.json there"),
        (b'{"hidden_size": 4096,', "not valid JSON (Expecting property name enclosed in double quotes at line 1)"),
        (b"[1, 2]", "expected a JSON object (an HF config.json), got a list; download the model's config.json again"),
        (b'{"model_type": "\xff"}', "not UTF-8 text (byte 16); download the model's config.json again"),
    ],
)
def test_a_broken_config_file_is_refused_naming_it(tmp_path: Path, content: bytes | None, message: str) -> None:
    config = tmp_path / "config.json"
    if content is not None:
        config.write_bytes(content)
    assert refused_config(config).startswith(f"models[0].configPath: {config}: {message}")


def test_a_config_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    assert refused_config(tmp_path) == (
        f"models[0].configPath: {tmp_path}: is a directory; give the path of the config.json file inside it"
    )


# ---------------------------------------------------------------- configPath: the content


def llama(**changes: Any) -> dict[str, Any]:
    config = json.loads(LLAMA.read_text())
    config.update(changes)
    return {k: v for k, v in config.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"num_attention_heads": 0}, f"num_attention_heads: 0 is out of range; it must be from 1 to {MAX_WHOLE}"),
        ({"num_hidden_layers": "thirty-two"}, 'num_hidden_layers: "thirty-two" is not a whole number'),
        ({"hidden_size": float("nan")}, "hidden_size: NaN is not a whole number"),
        ({"max_position_embeddings": float("inf")}, "max_position_embeddings: Infinity is not a whole number"),
        ({"num_hidden_layers": -32}, f"num_hidden_layers: -32 is out of range; it must be from 1 to {MAX_WHOLE}"),
        ({"num_attention_heads": True}, "num_attention_heads: true is not a whole number"),
        ({"vocab_size": [128256]}, "vocab_size: [128256] is not a whole number"),
        ({"intermediate_size": {"value": 14336}}, 'intermediate_size: {"value": 14336} is not a whole number'),
        ({"hidden_size": 10**40}, f"hidden_size: 1{'0' * 36}... is out of range; it must be from 1 to {MAX_WHOLE}"),
        ({"num_hidden_layers": 32.5}, "num_hidden_layers: 32.5 is not a whole number"),
        ({"num_key_value_heads": 5}, "num_key_value_heads: 5 does not divide num_attention_heads 32 (each KV head "
                                     "serves a whole group of heads)"),
        ({"num_attention_heads": 48, "num_key_value_heads": 48},
         "num_attention_heads: 48 does not divide hidden_size 4096, and no head_dim says otherwise"),
        ({"rope_theta": "500k"}, 'rope_theta: "500k" is not a number'),
        ({"rope_scaling": [8.0]}, "rope_scaling: [8.0] is not a JSON object"),
        ({"architectures": "LlamaForCausalLM"}, 'architectures: "LlamaForCausalLM" is not a list of strings'),
        ({"tie_word_embeddings": "false"}, 'tie_word_embeddings: "false" is not true or false'),
        ({"quantization_config": {"quant_method": "fp8", "weight_block_size": ["128"]}},
         'quantization_config.weight_block_size: ["128"] is not a list of whole numbers from 1 to 2147483647'),
    ],
)  # fmt: skip
def test_config_values_sizing_cannot_use_are_refused_naming_the_key(
    tmp_path: Path, changes: dict[str, Any], problem: str
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(llama(**changes)))
    assert refused_config(config) == f"models[0].configPath: {config} of acme/outside: {problem}; {FROM_HF}"


def test_a_missing_key_is_refused_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    # Without a model_type no configuration class supplies a default (with one, vLLM's transformers would).
    config.write_text(json.dumps(llama(num_hidden_layers=None, model_type=None)))
    assert f"{config} of acme/outside: missing 'num_hidden_layers' (layer count)" in refused_config(config)


def test_a_nested_text_config_names_the_nested_key(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"architectures": ["X"], "text_config": llama(num_attention_heads=0)}))
    assert "text_config.num_attention_heads: 0 is out of range" in refused_config(config)


def test_a_json_nan_literal_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(LLAMA.read_text().replace('"hidden_size": 4096', '"hidden_size": NaN'))
    assert f"{config} of acme/outside: hidden_size: NaN is not a whole number" in refused_config(config)


# ---------------------------------------------------------------- the CLI


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_render_onto_an_existing_file_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "plan.txt"
    target.write_text("")
    for out in (target, target / "render"):
        code, err = run(capsys, "plan", "--stack", "example-minimal", "--render", str(out))
        assert (code, err) == (1, f"error: --render: {target} is a file; give a directory to write the render into "
                                  "(made if missing)\n")  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["size", "--config", "{tmp}", "--gpu", "L4-24GB"], "error: {tmp}: is a directory; give the path of the"),
        (["size", "--config", "{tmp}/config.json", "--gpu", "L4-24GB"], "error: {tmp}/config.json: not valid JSON"),
        (["plan", "--stack", "example-minimal", "--diff", "{tmp}/list.yaml"], "error: {tmp}/list.yaml: the file is a"),
        (["size", "--model", "Qwen/Qwen3-32B", "--gpu-memory-gib", "nan", "--gpus-per-node", "8", "--nvlink-domain",
          "8"], "--gpu-memory-gib: 'nan' is not a finite number"),
        (["size", "--model", "Qwen/Qwen3-32B", "--gpu", "L4-24GB", "--nodes", "1000000"], "--nodes: must be at most"),
        (["size", "--model", "Qwen/Qwen3-32B", "--gpu", "L4-24GB", "--gpus-per-node", "100000"],
         "--gpus-per-node: must be at most 72"),
    ],
)  # fmt: skip
def test_cli_refuses_bad_files_and_flags_in_one_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    (tmp_path / "config.json").write_text("[")
    (tmp_path / "list.yaml").write_text("- a\n")
    code, err = run(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert code == 1
    assert message.replace("{tmp}", str(tmp_path)) in err
    assert "Traceback" not in err


def test_a_spec_error_prints_each_problem_on_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {**stack_config("example-minimal"), "storageClass": "Fast_SSD", "namespace": "kube-system"}
    monkeypatch.setattr("components.stacks.STACKS_DIR", tmp_path)
    (tmp_path / "Pulumi.broken.yaml").write_text(yaml.safe_dump({"config": {"llm-cluster:cluster": config}}))
    code, err = run(capsys, "plan", "--stack", "broken")
    assert code == 1
    assert err.splitlines() == [
        "error: namespace: 'kube-system' belongs to Kubernetes or to a chart this stack installs; give the serving "
        "stack its own, e.g. llm",
        "error: storageClass: 'Fast_SSD' is not a valid name for a StorageClass; Kubernetes names a StorageClass as an "
        "RFC 1123 subdomain (lowercase letters, digits, '-' and '.', each part starting and ending with a letter or "
        "digit); use a name `kubectl get storageclass` lists",
    ]


def test_a_closed_pipe_ends_the_plan_quietly() -> None:
    """`plan | head -1`: the reader leaves while the plan is still being written."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # smaller than the plan, so the writer is mid-write
    process = subprocess.Popen(
        [sys.executable, "-m", "components", "plan", "--stack", "prod", "--format", "json"],
        cwd=PROJECT, stdout=write_end, stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = reader.readline()
    _, err = process.communicate(timeout=120)
    assert first == b"{\n"
    assert process.returncode == 0
    assert err == b""
