"""Secrets in env and args (policy/rules.py no-secret-values-in-env-args-or-config-maps): literal credentials fail,
Secret references pass, and no message repeats the value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.policy.rendered import container, gateway, mutate, vllm

from rules import RESOURCE_RULES  # isort: skip (policy/ on sys.path, set by rendered)

SECRETS = RESOURCE_RULES["no-secret-values-in-env-args-or-config-maps"]
KEY = "sk-" + "a1B2c3D4e5F6g7H8i9J0"
HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWx"


def with_env(*env: dict[str, Any]) -> Any:
    return mutate(vllm(), lambda p: container(p)["env"].extend(env))


def with_args(*args: str) -> Any:
    return mutate(vllm(), lambda p: container(p)["args"].extend(args))


def test_the_shipped_model_servers_and_gateways_pass() -> None:
    assert SECRETS(vllm()) == []
    assert SECRETS(gateway()) == []
    assert SECRETS(gateway("example-gke")) == []  # LiteLLM


BAD_ENV: dict[str, tuple[dict[str, Any], str]] = {
    "a key-looking value": ({"name": "UPSTREAM", "value": KEY}, "env UPSTREAM holds a credential-looking value"),
    "a LiteLLM virtual key": ({"name": "X", "value": "sk-llm-" + "q" * 40}, "env X holds a credential-looking value"),
    "an HF token": ({"name": "DOWNLOAD", "value": HF}, "env DOWNLOAD holds a credential-looking value"),
    "a bearer header": ({"name": "AUTH", "value": "Bearer " + "z" * 20}, "env AUTH holds a credential-looking value"),
    "a short literal token": ({"name": "HF_TOKEN", "value": "hunter2"}, "env HF_TOKEN is named like a secret"),
    "a literal password": ({"name": "PGPASSWORD", "value": "changeme"}, "env PGPASSWORD is named like a secret"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENV))
def test_literal_secrets_in_env_fail(case: str) -> None:
    env, message = BAD_ENV[case]
    found = SECRETS(with_env(env))
    assert len(found) == 1 and message in found[0], found
    assert env["value"] not in found[0]


def test_secret_references_and_lookalike_names_pass() -> None:
    fine = with_env(
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}},
        {"name": "HUGGING_FACE_HUB_TOKEN", "value": "$(HF_TOKEN)"},
        {"name": "TOKENIZERS_PARALLELISM", "value": "false"},
        {"name": "HF_TOKEN_PATH", "value": "/var/run/secrets/hf/token"},
        {"name": "API_KEY", "value": ""},
        {"name": "TASK", "value": "task-abcdefghijklmnopqrstuvwxyz"},
    )
    assert SECRETS(fine) == []


BAD_ARGS: dict[str, tuple[tuple[str, ...], str]] = {
    "--api-key VALUE": (("--api-key", "plain-text-key"), "args flag --api-key has a literal value"),
    "--api-key=VALUE": (("--api-key=plain-text-key",), "args flag --api-key has a literal value"),
    "flag and value in one item": (("--hf-token hunter2",), "args flag --hf-token has a literal value"),
    "a key-looking word": (("--header", f"Authorization: {KEY}"), "command/args hold a credential-looking value"),
    "inside a shell command": (("sh", "-c", f"exec vllm serve --api-key {KEY}"), "args flag --api-key has a literal"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_literal_secrets_in_args_fail(case: str) -> None:
    args, message = BAD_ARGS[case]
    found = SECRETS(with_args(*args))
    assert len(found) == 1 and message in found[0], found
    assert not any(secret in f for f in found for secret in (KEY, "plain-text-key", "hunter2"))


def test_args_from_env_references_pass() -> None:
    assert (
        SECRETS(with_args("--api-key", "$(VLLM_API_KEY)", "--tokenizer", "org/model", "--hf-token=$(HF_TOKEN)")) == []
    )
    assert SECRETS(with_args("--api-key", "--port", "8000")) == []  # a flag with no value of its own


def test_a_secret_in_the_container_command_fails() -> None:
    bad = mutate(gateway("example-gke"), lambda p: container(p).update(command=["litellm", "--master_key", "literal"]))
    assert SECRETS(bad) == [
        "llm-gateway/litellm: args flag --master_key has a literal value; use valueFrom.secretKeyRef (and $(VAR) "
        "in args)"
    ]
