"""Credentials in the stack spec: a model reads them from Secrets (`secretEnv`), never from literal values.

A value in `env` or `extraArgs` sits in the stack file, Pulumi's state and the pod spec, readable by anyone who
can read one of them; a `secretEnv` entry names a Secret in the serving namespace and a key in it, and the pod
reads the value at start. What a credential looks like is defined once, in components.credentials.
"""

from __future__ import annotations

import re

from components.credentials import SECRET_FLAG, SECRET_NAME, SECRET_VALUE, is_literal
from components.spec.api_rules import SUBDOMAIN
from components.spec.models import ClusterSpec, ModelSpec, key_step

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A key of a Secret's data (Kubernetes' IsConfigMapKey): these characters, not `.` and not starting with `..`.
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
MAX_NAME_LENGTH = 253
# vLLM flags whose value is a credential, and where vLLM reads it from instead.
_FLAG_FIX = {
    "--api-key": "vLLM reads VLLM_API_KEY",
    "--hf-token": "the plan passes HF_TOKEN from the secret llm-cluster:hfToken",
}
_WHY = "in plain text it sits in the stack file, Pulumi's state and the pod spec"


def secret_checks(spec: ClusterSpec) -> list[str]:
    """`secretEnv` references well formed and not shadowing `env`; no literal credential in `env` or `extraArgs`."""
    errors: list[str] = []
    for i, model in enumerate(spec.models):
        errors += _secret_env_errors(f"models[{i}]", model)
        errors += _literal_secret_errors(f"models[{i}]", model)
    return errors


def _secret_env_errors(at: str, model: ModelSpec) -> list[str]:
    errors: list[str] = []
    for name, ref in model.secret_env.items():
        where = f"{at}.secretEnv{key_step(name)}"
        if not ENV_NAME.fullmatch(name):
            errors.append(
                f"{where}: not a valid environment variable name; use letters, digits and '_', not first a digit"
            )
        if name in model.env:
            errors.append(f"{where}: also set in env; keep one of env.{name} and secretEnv.{name}")
        if len(ref.secret) > MAX_NAME_LENGTH or not SUBDOMAIN.fullmatch(ref.secret):
            errors.append(
                f"{where}.secret: {ref.secret!r} is not a Secret name; use lowercase letters, digits, '-' and '.', "
                f"starting and ending with a letter or digit, at most {MAX_NAME_LENGTH} characters"
            )
        dots = ref.key == "." or ref.key.startswith("..")
        if len(ref.key) > MAX_NAME_LENGTH or not SECRET_KEY.fullmatch(ref.key) or dots:
            errors.append(
                f"{where}.key: {ref.key!r} is not a key of a Secret; use letters, digits, '-', '_' and '.' "
                f"(not '.' or a leading '..'), at most {MAX_NAME_LENGTH} characters"
            )
    return errors


def _literal_secret_errors(at: str, model: ModelSpec) -> list[str]:
    """The policy pack's reading of a container (policy/rules.py), on the spec's fields. Never repeats the value:
    the message may end up in CI logs."""
    errors = [
        f"{at}.env{key_step(name)}: holds a credential ({_WHY}); move it to secretEnv: "
        f"`{name}: {{secret: <Secret name>, key: <key>}}` with the value in that Secret"
        for name, value in model.env.items()
        if is_literal(value) and (SECRET_VALUE.search(value) or SECRET_NAME.search(name))
    ]
    # Every word of every item with its item's index: a flag and its value may share an item or not.
    words = [(j, word) for j, arg in enumerate(model.extra_args) for word in arg.split()]
    reported: set[int] = set()
    for n, (j, word) in enumerate(words):
        flag, equals, value = word.partition("=")
        followed = not equals and n + 1 < len(words) and not words[n + 1][1].startswith("-")
        if followed:
            value = words[n + 1][1]
        if j in reported:
            continue
        if SECRET_FLAG.match(flag) and is_literal(value):
            fix = _FLAG_FIX.get(flag.replace("_", "-"), "the server reads it from the environment")
            errors.append(f"{at}.extraArgs[{j}]: {flag} passes a credential ({_WHY}); move it to secretEnv ({fix})")
            reported.update({j, words[n + 1][0]} if followed else {j})
        elif SECRET_VALUE.search(word):
            errors.append(f"{at}.extraArgs[{j}]: holds a credential ({_WHY}); move it to secretEnv")
            reported.add(j)
    return errors
