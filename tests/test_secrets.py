"""Secret config keys and gated models, refused the same way offline (the CLI reads the stack file) and by the Pulumi
program under mocks (it reads Pulumi's config); client keys reach the cluster only through the Secret Envoy reads."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import components.stacks
from components.api_gateway import CLIENT_KEYS_SECRET
from components.stacks import StackFileError, read_stack_config
from components.tools.cli import main
from components.tools.render import SECRET, RenderError, _monitor, run_program
from testbed.stacks import rendered, stack_config

GATED = "meta-llama/Llama-3.1-8B-Instruct"
SECRET_CONFIG_KEYS = ["llm-cluster:hfToken", "llm-cluster:grafanaAdminPassword", "llm-cluster:registryPassword"]


def dev_serving(model: str) -> dict[str, Any]:
    cluster = copy.deepcopy(stack_config("dev"))
    cluster["models"][0]["model"] = model
    cluster["models"][0].pop("revision")  # the pin is the dev model's own commit
    return dict(cluster)


def write_stack(directory: Path, cluster: object, **keys: object) -> Path:
    path = directory / "Pulumi.probe.yaml"
    path.write_text(yaml.safe_dump({"config": {"llm-cluster:cluster": cluster, **keys}}))
    return path


def plan_probe(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cluster: object, **keys: object
) -> tuple[int, str]:
    """`python -m components plan --stack probe` on a stack file written to a temporary stacks directory."""
    write_stack(tmp_path, cluster, **keys)
    monkeypatch.setattr(components.stacks, "STACKS_DIR", tmp_path)
    code = main(["plan", "--stack", "probe", "--format", "json"])
    out, err = capsys.readouterr()
    return code, out + err


def refused_by_program(cluster: object, **kwargs: Any) -> str:
    with pytest.raises(RenderError) as raised:
        run_program(cluster, **kwargs)
    # Nothing but the stack itself was registered before the refusal: nothing half-applied.
    assert [urn for urn in _monitor().options if "::pulumi:pulumi:Stack::" not in urn] == []
    return str(raised.value)


# ---------------------------------------------------------------- credentials must be Pulumi secrets


@pytest.mark.parametrize("key", SECRET_CONFIG_KEYS)
def test_a_plaintext_credential_in_a_stack_file_is_refused_offline(
    key: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, said = plan_probe(capsys, monkeypatch, tmp_path, stack_config("dev"), **{key: "not-encrypted-1234"})
    assert code == 1
    assert f"{key}: set in plain text" in said
    assert f"`pulumi config set --secret {key} " in said
    assert "not-encrypted-1234" not in said  # the refusal never repeats the value
    with pytest.raises(StackFileError, match=f"Pulumi.probe.yaml: {key}: set in plain text"):
        read_stack_config(tmp_path / "Pulumi.probe.yaml")  # what every tool that loads a stack file goes through


def test_secure_credentials_and_empty_values_are_accepted_offline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = {"llm-cluster:hfToken": {"secure": "v1:abc"}, "llm-cluster:grafanaAdminPassword": ""}
    code, said = plan_probe(capsys, monkeypatch, tmp_path, stack_config("dev"), **keys)
    assert code == 0, said
    assert json.loads(said)["models"][0]["name"] == "r1-distill-1-5b"


def test_a_literal_credential_in_a_models_env_is_refused_offline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cluster = copy.deepcopy(stack_config("dev"))
    cluster["models"][0]["env"] = {"OPENAI_API_KEY": "not-encrypted-1234"}
    code, said = plan_probe(capsys, monkeypatch, tmp_path, cluster)
    assert code == 1
    assert "error: models[0].env.OPENAI_API_KEY: holds a credential" in said and "move it to secretEnv" in said
    assert "not-encrypted-1234" not in said


@pytest.mark.parametrize("key", SECRET_CONFIG_KEYS)
def test_the_program_refuses_a_plaintext_credential_before_any_resource(key: str) -> None:
    said = refused_by_program(stack_config("dev"), plain={key: "not-encrypted-1234"})
    assert f"{key}: set in plain text" in said
    assert f"`pulumi config set --secret {key} " in said


def test_the_program_takes_the_same_credentials_as_secrets() -> None:
    run = run_program(stack_config("dev"), secrets=dict.fromkeys(SECRET_CONFIG_KEYS, SECRET))
    assert run.exports["plan"]["models"]


# ---------------------------------------------------------------- gated models need llm-cluster:hfToken


def test_the_catalog_marks_llama_3_and_gemma_gated_with_their_model_pages() -> None:
    from components.catalog import load_model_catalog

    catalog = load_model_catalog()
    gated = {model_id for model_id, arch in catalog.items() if arch.gated}
    assert {"meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.3-70B-Instruct", "google/gemma-2-27b-it"} <= gated
    assert not gated & {"Qwen/Qwen2.5-32B-Instruct", "BAAI/bge-m3", "intfloat/multilingual-e5-large"}
    for model_id in gated:
        assert catalog[model_id].gated_source.startswith(f"https://huggingface.co/{model_id} ")


@pytest.mark.parametrize(
    ("row", "said"),
    [
        ({"gated": True}, "gated: true needs gated_source starting with its model page https://huggingface.co/org/m"),
        ({"gated": True, "gated_source": "https://huggingface.co/org/m2 (says so)"}, "needs gated_source starting"),
        ({"gated": "yes", "gated_source": "https://huggingface.co/org/m"}, "gated: expected true or false"),
        ({"gated_source": "https://huggingface.co/org/m"}, "gated_source without gated: true"),
    ],
)
def test_the_catalog_refuses_an_unsourced_gated_flag(row: dict[str, Any], said: str, tmp_path: Path) -> None:
    from components.catalog import CatalogError, load_model_catalog

    path = tmp_path / "models.yaml"
    base = {"id": "org/m", "task": "generate", "params_b": 1, "config": {"status": "missing", "reason": "test"}}
    path.write_text(yaml.safe_dump({"models": [base | row]}))
    with pytest.raises(CatalogError, match=said):
        load_model_catalog(path)


def test_a_gated_model_without_hf_token_is_refused_offline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, said = plan_probe(capsys, monkeypatch, tmp_path, dev_serving(GATED))
    assert code == 1
    assert f"models[0].model: {GATED} is gated on Hugging Face" in said
    assert "`pulumi config set --secret llm-cluster:hfToken hf_...`" in said


def test_a_gated_model_with_a_secure_hf_token_plans_offline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = {"llm-cluster:hfToken": {"secure": "v1:abc"}}
    code, said = plan_probe(capsys, monkeypatch, tmp_path, dev_serving(GATED), **keys)
    assert code == 0, said
    assert json.loads(said)["models"][0]["gated"] is True


def test_the_program_refuses_a_gated_model_without_hf_token_before_any_resource() -> None:
    said = refused_by_program(dev_serving(GATED))
    assert f"models[0].model: {GATED} is gated on Hugging Face" in said
    assert "`pulumi config set --secret llm-cluster:hfToken hf_...`" in said
    assert "is gated" in refused_by_program(dev_serving(GATED), hf_token="")  # an empty token is no token


def test_a_gated_model_from_a_preloaded_cache_needs_no_hf_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cluster = dev_serving(GATED) | {"weightsSource": {"kind": "preloaded"}}
    code, said = plan_probe(capsys, monkeypatch, tmp_path, cluster)
    assert code == 0, said
    assert run_program(cluster).exports["plan"]["models"][0]["gated"] is True


def test_the_program_serves_a_gated_model_with_hf_token() -> None:
    run = run_program(dev_serving(GATED), hf_token="hf_" + "x" * 30)
    assert run.exports["plan"]["models"][0]["gated"] is True


# ---------------------------------------------------------------- client keys


def test_generated_client_keys_reach_the_cluster_only_through_envoys_secret() -> None:
    """The README's rotation section rests on this: the keys live in one Secret (and the secret stack output)."""
    run = rendered("prod")
    holders = [r for r in run.registrations if "sk-llm-" in json.dumps(r.inputs)]
    assert [(r.type, r.inputs["metadata"]["name"]) for r in holders] == [
        ("kubernetes:core/v1:Secret", CLIENT_KEYS_SECRET)
    ]
    clients = {c["name"] for c in stack_config("prod")["auth"]["clients"] if not c.get("keySecret")}
    data = holders[0].inputs["stringData"]
    assert set(data.get("value", data)) == clients  # the whole map travels as a Pulumi secret
