"""The gateways' rendered arguments, adapted to run on loopback in tests and benchmarks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from components.gateway_config import INFERENCE_KEY_ENV, INFERENCE_ROUTES_ENV, router_args
from components.planning.types import ClusterPlan

DISCOVERY_FLAGS = ("--selector", "--service-discovery-namespace", "--service-discovery-port")


def with_values(args: list[str], values: dict[str, str]) -> list[str]:
    """`args` with the value after each flag in `values` replaced; every flag must be there."""
    out = list(args)
    for flag, value in values.items():
        out[out.index(flag) + 1] = value
    return out


def loopback_router_args(plan: ClusterPlan, port: int, metrics_port: int) -> list[str]:
    """The rendered vllm-router arguments without pod discovery (workers get registered instead), on 127.0.0.1."""
    out: list[str] = []
    skip = False
    for arg in router_args(plan):
        if skip:
            skip = False
        elif arg in DISCOVERY_FLAGS:
            skip = True
        elif arg != "--service-discovery":
            out.append(arg)
    values = {
        "--host": "127.0.0.1",
        "--port": str(port),
        "--prometheus-host": "127.0.0.1",
        "--prometheus-port": str(metrics_port),
    }
    return with_values(out, values)


def litellm_files(files: Mapping[str, str], config: dict[str, Any], directory: Path) -> Path:
    """The config ConfigMap's files (config.yaml and the custom auth hook it names) written to `directory`, with
    config.yaml replaced by `config` (the rendered one, api_base pointed at stand-ins); config.yaml's path."""
    for name, text in files.items():
        (directory / name).write_text(text)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def litellm_env(master_key: str, inference_key: str, routes: str, metrics_dir: Path) -> dict[str, str]:
    """The LiteLLM container's environment, with test keys in place of the Secrets'."""
    return {
        "LITELLM_MASTER_KEY": master_key,
        INFERENCE_KEY_ENV: inference_key,
        INFERENCE_ROUTES_ENV: routes,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        # As in the pod, whose root filesystem is read-only: the UI and logo copies go to the scratch directory.
        "LITELLM_UI_PATH": str(metrics_dir.parent / "litellm-ui"),
        "LITELLM_ASSETS_PATH": str(metrics_dir.parent / "litellm-assets"),
    }
