"""A model's credentials come from Secrets (`secretEnv`), never from literal values in `env` or `extraArgs`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.images import VLLM_IMAGE
from components.model_server import container
from components.planning.types import SizingError
from components.spec import SpecError, load_cluster_spec
from components.stacks import plan_for
from components.tools.render import run_program
from testbed.stacks import stack_config

TOKEN = "sk-" + "a1B2" * 8
REF = {"secret": "openai-upstream", "key": "api-key"}


def dev_model(**fields: Any) -> dict[str, Any]:
    cluster = copy.deepcopy(stack_config("dev"))
    cluster["models"][0].update(fields)
    return dict(cluster)


def refused(cluster: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as raised:
        load_cluster_spec(cluster)
    assert TOKEN not in str(raised.value)  # a refusal never repeats a credential
    return str(raised.value)


# ---------------------------------------------------------------- secretEnv


def test_secret_env_is_planned_and_rendered_as_secret_key_refs() -> None:
    plan = plan_for(load_cluster_spec(dev_model(secretEnv={"OPENAI_API_KEY": REF})))
    model = plan.models[0]
    assert {k: v.model_dump() for k, v in model.secret_env.items()} == {"OPENAI_API_KEY": REF}
    env = container(model, "single", VLLM_IMAGE, "hf-token")["env"]
    assert {
        "name": "OPENAI_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "openai-upstream", "key": "api-key"}},
    } in env
    assert [e["name"] for e in env].count("OPENAI_API_KEY") == 1


def test_the_program_renders_secret_env_into_the_model_server_pod() -> None:
    run = run_program(dev_model(secretEnv={"OPENAI_API_KEY": REF}))
    deployment = next(
        r for r in run.registrations if r.type.endswith(":Deployment") and r.name.endswith("r1-distill-1-5b")
    )
    env = deployment.inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e for e in env if e["name"] == "OPENAI_API_KEY"] == [
        {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "openai-upstream", "key": "api-key"}}}
    ]


@pytest.mark.parametrize(
    ("secret_env", "said"),
    [
        ({"1BAD": REF}, "models[0].secretEnv.1BAD: not a valid environment variable name"),
        ({"UPSTREAM_KEY": {"secret": "Openai_Upstream", "key": "k"}}, "models[0].secretEnv.UPSTREAM_KEY.secret: "
         "'Openai_Upstream' is not a Secret name; use lowercase letters, digits, '-' and '.'"),
        ({"UPSTREAM_KEY": {"secret": "a" * 254, "key": "k"}}, "at most 253 characters"),
        ({"UPSTREAM_KEY": {"secret": "s", "key": "api key"}}, "models[0].secretEnv.UPSTREAM_KEY.key: 'api key' is "
         "not a key of a Secret; use letters, digits, '-', '_' and '.'"),
        ({"UPSTREAM_KEY": {"secret": "s", "key": ".."}}, "models[0].secretEnv.UPSTREAM_KEY.key: '..' is not a key"),
        ({"UPSTREAM_KEY": {"secret": "s"}}, "models[0].secretEnv.UPSTREAM_KEY.key: required; add it"),
    ],
)  # fmt: skip
def test_malformed_secret_env_is_refused_naming_the_field(secret_env: dict[str, Any], said: str) -> None:
    assert said in refused(dev_model(secretEnv=secret_env))


def test_secret_env_may_not_shadow_env() -> None:
    said = refused(dev_model(env={"UPSTREAM_KEY_ID": "x"}, secretEnv={"UPSTREAM_KEY_ID": REF}))
    assert (
        "models[0].secretEnv.UPSTREAM_KEY_ID: also set in env; keep one of env.UPSTREAM_KEY_ID and secretEnv." in said
    )


@pytest.mark.parametrize("name", ["HF_TOKEN", "HF_HOME", "VLLM_BATCH_INVARIANT", "NCCL_P2P_DISABLE"])
def test_secret_env_may_not_take_a_variable_the_plan_sets(name: str) -> None:
    with pytest.raises(SizingError, match=rf"models\[0\]\.secretEnv\.{name}: set by the plan; remove it"):
        plan_for(load_cluster_spec(dev_model(secretEnv={name: REF})))


def test_a_hugging_face_token_in_secret_env_points_at_hf_token() -> None:
    with pytest.raises(SizingError, match="comes from the secret llm-cluster:hfToken"):
        plan_for(load_cluster_spec(dev_model(secretEnv={"HF_TOKEN": REF})))


# ---------------------------------------------------------------- no literal credentials


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"OPENAI_API_KEY": "abc"}, "OPENAI_API_KEY"),  # named as a credential: any literal value
        ({"PGPASSWORD": "hunter2"}, "PGPASSWORD"),
        ({"UPSTREAM": f"Bearer {TOKEN}"}, "UPSTREAM"),  # looks like a credential, whatever the name
        ({"NOTES": f"use {TOKEN} for now"}, "NOTES"),
    ],
)
def test_a_literal_credential_in_env_is_refused(env: dict[str, str], field: str) -> None:
    said = refused(dev_model(env=env))
    assert f"models[0].env.{field}: holds a credential" in said
    assert f"move it to secretEnv: `{field}: {{secret: <Secret name>, key: <key>}}`" in said


def test_env_that_only_mentions_tokens_is_accepted() -> None:
    env = {"TOKENIZERS_PARALLELISM": "false", "HF_TOKEN_PATH": "/tmp/t", "UPSTREAM_KEY": "$(OTHER)"}
    assert load_cluster_spec(dev_model(env=env)).models[0].env == env


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--api-key", TOKEN], "models[0].extraArgs[0]: --api-key passes a credential"),
        (["--api-key=plainword"], "models[0].extraArgs[0]: --api-key passes a credential"),
        (["--enforce-eager", "--api_key", "plainword"], "models[0].extraArgs[1]: --api_key passes a credential"),
        ([f"--api-key {TOKEN}"], "models[0].extraArgs[0]: --api-key passes a credential"),
        (["--hf-token", "hf_" + "x" * 30], "models[0].extraArgs[0]: --hf-token passes a credential"),
        (["--served-model-name", TOKEN], "models[0].extraArgs[1]: holds a credential"),
    ],
)
def test_a_literal_credential_in_extra_args_is_refused(args: list[str], said: str) -> None:
    message = refused(dev_model(extraArgs=args))
    assert said in message and "move it to secretEnv" in message
    assert message.count("models[0].extraArgs") == 1  # a flag and its value are one finding


def test_the_api_key_fix_names_vllms_variable() -> None:
    assert "vLLM reads VLLM_API_KEY" in refused(dev_model(extraArgs=["--api-key", "plainword"]))


def test_flags_that_only_mention_keys_are_accepted() -> None:
    args = ["--ssl-keyfile", "/tls/key.pem", "--tokenizer-mode", "auto", "--hf-token"]
    assert load_cluster_spec(dev_model(extraArgs=args)).models[0].extra_args == args
