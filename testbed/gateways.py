"""The gateways' rendered arguments, adapted to run on loopback in tests and benchmarks."""

from __future__ import annotations

from components.gateway import router_args
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
