"""The stack's secret config keys: which must be Pulumi secrets, and which a plan needs.

One set of checks for both readers of a stack: the CLI and the tools read the stack file (a secret is a
`secure:` mapping there, ciphertext only the stack's secrets provider opens), the Pulumi program reads the config
Pulumi hands it (`pulumi.runtime.is_config_secret`). Each passes what it sees as {key: held as a secret}; neither
needs a value, so nothing here ever holds one.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.planning.types import ClusterPlan

HF_TOKEN = "llm-cluster:hfToken"
# Keys whose value is a credential, with the placeholder the fix shows for it.
SECRET_CONFIG_KEYS = {
    HF_TOKEN: "hf_...",
    "llm-cluster:grafanaAdminPassword": "<password>",
    "llm-cluster:registryPassword": "<password>",
}


def set_secret_command(key: str) -> str:
    return f"`pulumi config set --secret {key} {SECRET_CONFIG_KEYS[key]}`"


def stack_file_keys(document: Mapping[str, object]) -> dict[str, bool]:
    """Every key a stack file's `config:` sets to something, and whether it is held as a secret (`secure:`)."""
    config = document.get("config")
    if not isinstance(config, Mapping):
        return {}
    return {
        str(key): isinstance(value, Mapping) and "secure" in value
        for key, value in config.items()
        if value not in (None, "")
    }


def plaintext_secret_errors(keys: Mapping[str, bool]) -> list[str]:
    """`keys`: each config key the stack sets, True where it is held as a secret. A credential in plain text is
    readable by anyone who reads the stack file or Pulumi's state."""
    return [
        f"{key}: set in plain text, readable in the stack file and Pulumi's state; store it as a secret: "
        f"{set_secret_command(key)} replaces it with ciphertext"
        for key in SECRET_CONFIG_KEYS
        if keys.get(key) is False
    ]


def gated_model_errors(plan: ClusterPlan, keys: Mapping[str, bool]) -> list[str]:
    """A gated model's weights download only with a Hugging Face token: without llm-cluster:hfToken the download
    would fail after the pod's whole startup budget. A preloaded cache downloads nothing and needs none. `keys` as
    for plaintext_secret_errors."""
    if HF_TOKEN in keys:
        return []
    # A plan holds every model of the spec, in order, so its index is the spec's.
    return [
        f"models[{i}].model: {m.model} is gated on Hugging Face (its files need an account that accepted the license "
        f"at https://huggingface.co/{m.model}) and the stack has no {HF_TOKEN}; give it that account's token: "
        f"{set_secret_command(HF_TOKEN)}"
        for i, m in enumerate(plan.models)
        if m.gated and m.cache.download != "none"
    ]
