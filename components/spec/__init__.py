"""The stack config: pydantic models of `llm-cluster:cluster` (models.py), the checks and messages that make
every error name the field and the fix (checks.py), and `load_cluster_spec`, which runs both."""

from __future__ import annotations

from pydantic import ValidationError

from components.spec.api_service import ApiServiceSpec, NodePortsSpec, ServiceType, api_service_checks
from components.spec.checks import cross_checks, describe
from components.spec.models import (
    BACKEND_KINDS,
    DNS_LABEL,
    DURATION,
    QUANTITY,
    AuthSpec,
    AutoscalingSpec,
    BackendSpec,
    ClientSpec,
    ClusterSpec,
    DnsSpec,
    ExistingBackendSpec,
    GatewaySpec,
    GkeBackendSpec,
    GpuPoolSpec,
    GpuSharingSpec,
    ImagesSpec,
    KarpenterBackendSpec,
    KvCacheDtype,
    ModelAutoscalingSpec,
    ModelSloSpec,
    ModelSpec,
    MonitoringSpec,
    NonEmpty,
    OvhBackendSpec,
    Quantization,
    RateLimitSpec,
    RopeScalingSpec,
    ScalingMetric,
    SecretEnvSpec,
    SpecError,
    SpecModel,
    VllmImageSpec,
    VolumeSpec,
    WeightsSourceSpec,
    field_path,
)
from components.spec.secrets import secret_checks

__all__ = [
    "BACKEND_KINDS",
    "DNS_LABEL",
    "DURATION",
    "QUANTITY",
    "ApiServiceSpec",
    "AuthSpec",
    "AutoscalingSpec",
    "BackendSpec",
    "ClientSpec",
    "ClusterSpec",
    "DnsSpec",
    "ExistingBackendSpec",
    "GatewaySpec",
    "GkeBackendSpec",
    "GpuPoolSpec",
    "GpuSharingSpec",
    "ImagesSpec",
    "KarpenterBackendSpec",
    "KvCacheDtype",
    "ModelAutoscalingSpec",
    "ModelSloSpec",
    "ModelSpec",
    "MonitoringSpec",
    "NodePortsSpec",
    "NonEmpty",
    "OvhBackendSpec",
    "Quantization",
    "RateLimitSpec",
    "RopeScalingSpec",
    "ScalingMetric",
    "SecretEnvSpec",
    "ServiceType",
    "SpecError",
    "SpecModel",
    "VllmImageSpec",
    "VolumeSpec",
    "WeightsSourceSpec",
    "field_path",
    "load_cluster_spec",
]


def load_cluster_spec(raw: object) -> ClusterSpec:
    """Validate the `llm-cluster:cluster` object; raise SpecError listing every problem."""
    if not isinstance(raw, dict):
        raise SpecError(
            [
                f"llm-cluster:cluster: expected a mapping with pools and models, got {type(raw).__name__}; "
                "indent its keys (pools:, models:, ...) under `llm-cluster:cluster:`"
            ]
        )
    try:
        spec = ClusterSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError([describe(err) for err in exc.errors()]) from None
    errors = cross_checks(spec) + secret_checks(spec) + api_service_checks(spec.auth.service)
    if errors:
        raise SpecError(errors)
    return spec
