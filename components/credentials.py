"""What a credential looks like, defined once: the stack spec refuses it in a model's `env` and `extraArgs`
(components/spec/secrets.py), and the policy pack refuses it in rendered pods and ConfigMaps (policy/rules.py)."""

from __future__ import annotations

import re

# Values that look like credentials: OpenAI/LiteLLM/Anthropic-style and Hugging Face keys, GitHub and Slack
# tokens, AWS access key ids, JWTs, private keys, bearer tokens. Never part of a longer word (task-..., disk-...).
SECRET_VALUE = re.compile(
    r"(?<![A-Za-z0-9_-])(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.)"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----|Bearer\s+\S{16,}"
)
# Variable names that say "secret" at the end (HF_TOKEN, LITELLM_MASTER_KEY, PGPASSWORD), not TOKENIZERS_... or
# HF_TOKEN_PATH; flags the same (--api-key, --hf-token), not --tokenizer or --ssl-keyfile.
SECRET_NAME = re.compile(r"(KEY|TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIALS?)$", re.IGNORECASE)
SECRET_FLAG = re.compile(r"^--?[A-Za-z0-9_-]*(key|token|password|passwd|secret|credentials?)$", re.IGNORECASE)
# $(VAR): Kubernetes expands it from the container's env, which takes the value from a Secret (valueFrom).
ENV_REFERENCE = re.compile(r"^\$\([A-Za-z_][A-Za-z0-9_]*\)$")


def is_literal(value: object) -> bool:
    """A value written into the object itself: not empty, not a $(VAR) reference to the container's env."""
    return isinstance(value, str) and bool(value.strip()) and not ENV_REFERENCE.match(value.strip())
