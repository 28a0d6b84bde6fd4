"""Check one stack's state backend and secrets provider settings before Pulumi runs, and give its stack name.

    python3 .ci/pulumi_settings.py --stack STACK [--stacks-dir DIR] >> "$GITHUB_OUTPUT"

Reads the environment that .github/workflows/pulumi-stack.yml fills from the repository's (or the GitHub
environment's) variables and secrets, README "State backend and secrets provider":

    PULUMI_BACKEND_URL       unset: Pulumi Cloud. s3:// (AWS S3, MinIO, Ceph), azblob://, gs://, file://: a
                             self-managed backend. https://: a self-hosted Pulumi Cloud.
    PULUMI_SECRETS_PROVIDER  the provider a new stack is created with (passphrase, awskms://, gcpkms://,
                             azurekeyvault://, hashivault://); a stack file's own `secretsprovider:` (or
                             `encryptionsalt:`, the passphrase provider) wins. Unset: Pulumi Cloud's own keys, or the
                             passphrase on a self-managed backend.
    and the credentials each one needs (PULUMI_ORG or PULUMI_ACCESS_TOKEN, PULUMI_CONFIG_PASSPHRASE, VAULT_*, ...).

Prints `stack-name=<name>` (the step output pulumi/actions takes) and a one-line summary on stderr. A missing
setting exits 1 with one line per problem naming the setting and the fix, before Pulumi fails less clearly; or,
for an empty passphrase, succeeds: Pulumi encrypts with an empty PULUMI_CONFIG_PASSPHRASE rather than refuse it.
Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PROJECT_DIR = Path(__file__).resolve().parent.parent
SELF_MANAGED = {"s3", "azblob", "gs", "file"}
PULUMI_CLOUD = {"https", "http"}  # a self-hosted Pulumi Cloud API
SECRETS_PROVIDERS = {"default", "passphrase", "awskms", "gcpkms", "azurekeyvault", "hashivault"}
SETTINGS_DOC = 'README "State backend and secrets provider"'


def top_level_value(path: Path, key: str) -> str | None:
    """A top-level scalar Pulumi writes into a stack or project file (`secretsprovider:`, `name:`), unquoted."""
    if not path.is_file():
        return None
    match = re.search(rf"^{key}:[ \t]*(\S.*?)[ \t]*$", path.read_text(encoding="utf-8"), re.MULTILINE)
    return match.group(1).strip("'\"") if match else None


def stack_secrets_provider(stack_file: Path) -> str | None:
    """The provider the stack file's ciphertext needs: `secretsprovider:`, or a passphrase salt."""
    provider = top_level_value(stack_file, "secretsprovider")
    if provider:
        return provider
    return "passphrase" if top_level_value(stack_file, "encryptionsalt") else None


def backend_scheme(env: Mapping[str, str]) -> str:
    url = env.get("PULUMI_BACKEND_URL", "")
    return urlsplit(url).scheme if url else ""


def secrets_provider(env: Mapping[str, str], stack_file: Path) -> str:
    provider = stack_secrets_provider(stack_file) or env.get("PULUMI_SECRETS_PROVIDER") or "default"
    if provider == "default" and backend_scheme(env) in SELF_MANAGED:
        return "passphrase"  # a self-managed backend has no keys of its own
    return provider


def _any(env: Mapping[str, str], *names: str) -> bool:
    return any(env.get(name) for name in names)


def backend_problems(env: Mapping[str, str]) -> list[str]:
    url = env.get("PULUMI_BACKEND_URL", "")
    scheme = backend_scheme(env)
    if not url or scheme in PULUMI_CLOUD:
        if _any(env, "PULUMI_ACCESS_TOKEN", "PULUMI_ORG"):
            return []
        return [
            "Pulumi Cloud needs a token: set the variable PULUMI_ORG (GitHub OIDC trust, no stored token) or the "
            "secret PULUMI_ACCESS_TOKEN; or set the variable PULUMI_BACKEND_URL for a self-managed backend"
        ]
    if scheme not in SELF_MANAGED:
        return [
            f"PULUMI_BACKEND_URL: scheme {scheme or '(none)'!r} is not a backend; use s3://, azblob://, gs://, "
            "file:// (self-managed) or https:// (self-hosted Pulumi Cloud)"
        ]
    query = parse_qs(urlsplit(url).query)
    problems = []
    if scheme == "file" and env.get("RUNNER_ENVIRONMENT") == "github-hosted":
        problems.append(
            "PULUMI_BACKEND_URL: a file:// backend on a GitHub-hosted runner is lost when the job ends; run on a "
            "self-hosted runner that mounts that path (variable PULUMI_RUNS_ON) or use an object store"
        )
    if scheme == "s3":
        if "disableSSL" in query:
            problems.append(
                "PULUMI_BACKEND_URL: disableSSL is gone since Pulumi 3.245 (AWS SDK v2); put the scheme in "
                "the endpoint instead: endpoint=http://host:port"
            )
        endpoint = query.get("endpoint", [""])[0]
        if endpoint and "://" not in endpoint:
            problems.append(
                f"PULUMI_BACKEND_URL: endpoint={endpoint} needs its scheme: endpoint=https://{endpoint} "
                f"(or http:// for a plain-HTTP MinIO)"
            )
        if endpoint and "region" not in query and not _any(env, "AWS_REGION", "AWS_DEFAULT_REGION"):
            problems.append(
                "PULUMI_BACKEND_URL: an S3-compatible endpoint needs a signing region: add &region=us-east-1 "
                "(MinIO's default) or set the variable AWS_REGION"
            )
    if scheme == "azblob" and "storage_account" not in query and not env.get("AZURE_STORAGE_ACCOUNT"):
        problems.append(
            "PULUMI_BACKEND_URL: azblob:// needs the storage account: set the variable AZURE_STORAGE_ACCOUNT "
            "(or add ?storage_account=NAME)"
        )
    return problems


def secrets_problems(env: Mapping[str, str], stack_file: Path) -> list[str]:
    problems = []
    configured = env.get("PULUMI_SECRETS_PROVIDER", "")
    if configured and configured.split("://")[0] not in SECRETS_PROVIDERS:
        problems.append(
            f"PULUMI_SECRETS_PROVIDER: {configured!r} is not a provider; use passphrase, awskms://..., gcpkms://..., "
            "azurekeyvault://... or hashivault://..."
        )
    provider = secrets_provider(env, stack_file)
    kind = provider.split("://")[0]
    if kind == "passphrase" and not _any(env, "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        problems.append(
            f"the passphrase secrets provider needs the secret PULUMI_CONFIG_PASSPHRASE (unset or empty); "
            f"{'the stack file uses it' if stack_secrets_provider(stack_file) else 'it is the default here'}, "
            "or set the variable PULUMI_SECRETS_PROVIDER to a KMS or Vault key"
        )
    if kind == "hashivault":
        if not _any(env, "VAULT_SERVER_URL", "VAULT_ADDR"):
            problems.append(f"{provider} needs the Vault address: set the variable VAULT_SERVER_URL")
        if not _any(env, "VAULT_SERVER_TOKEN", "VAULT_TOKEN"):
            problems.append(f"{provider} needs a Vault token: set the secret VAULT_SERVER_TOKEN")
    return problems


def stack_name(env: Mapping[str, str], stack: str, project: str) -> str:
    """`<org>/<project>/<stack>` on Pulumi Cloud with an organization; the bare stack name everywhere else."""
    org = env.get("PULUMI_ORG", "")
    if org and (not env.get("PULUMI_BACKEND_URL") or backend_scheme(env) in PULUMI_CLOUD):
        return f"{org}/{project}/{stack}"
    return stack


def summary(env: Mapping[str, str], stack_file: Path) -> str:
    url = env.get("PULUMI_BACKEND_URL", "")
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.hostname or ''}{parts.path}" if url else "Pulumi Cloud"  # no credentials
    return f"state: {where}; secrets: {secrets_provider(env, stack_file).split('?')[0]}"


def main(argv: list[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(prog="python3 .ci/pulumi_settings.py", description=__doc__.split("\n")[0])
    parser.add_argument("--stack", required=True, help="stack name, as in stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--stacks-dir", type=Path, default=PROJECT_DIR / "stacks")
    args = parser.parse_args(argv)
    stack_file = args.stacks_dir / f"Pulumi.{args.stack}.yaml"
    problems = backend_problems(env) + secrets_problems(env, stack_file)
    if problems:
        for problem in problems:
            print(f"error: {problem} ({SETTINGS_DOC})", file=sys.stderr)
        return 1
    project = top_level_value(PROJECT_DIR / "Pulumi.yaml", "name") or "llm-cluster"
    print(f"stack-name={stack_name(env, args.stack, project)}")
    print(summary(env, stack_file), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
