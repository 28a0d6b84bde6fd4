"""VllmImage: the model-server image built from images/vllm/Dockerfile (the pinned vLLM image plus a stack's
extra packages), pushed with the operator's registry credentials; model servers run it by digest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi

from components.images import VLLM_IMAGE
from components.spec import VllmImageSpec

CONTEXT = Path(__file__).resolve().parent.parent / "images" / "vllm"


def image_tag(spec: VllmImageSpec, base_image: str = VLLM_IMAGE) -> str:
    """The base release plus a hash of the extras: same inputs, same tag."""
    extras = hashlib.sha256("\n".join(sorted(spec.extras)).encode()).hexdigest()[:10]
    return f"{base_image.rpartition(':')[2]}-{extras}"


@dataclass(frozen=True)
class VllmImageArgs:
    spec: VllmImageSpec
    registry_username: pulumi.Input[str]
    registry_password: pulumi.Input[str]
    base_image: str = VLLM_IMAGE  # the upstream image of the stack's vLLM release


class VllmImage(pulumi.ComponentResource):
    """Build, push, and expose `repo_digest` (repository@sha256:...)."""

    repo_digest: pulumi.Output[str]

    def __init__(self, name: str, args: VllmImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llm-cluster:vllm_image:VllmImage", name, None, opts)
        import pulumi_docker as docker  # only stacks that build images need the SDK

        spec = args.spec
        image = docker.Image(
            name,
            image_name=f"{spec.repository}:{image_tag(spec, args.base_image)}",
            build=docker.DockerBuildArgs(
                context=str(CONTEXT),
                dockerfile=str(CONTEXT / "Dockerfile"),
                platform=spec.platform,
                args={"BASE_IMAGE": args.base_image, "EXTRA_PIP_PACKAGES": " ".join(spec.extras)},
            ),
            registry=docker.RegistryArgs(
                server=spec.repository.split("/", 1)[0],
                username=args.registry_username,
                password=args.registry_password,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.repo_digest = image.repo_digest
        self.register_outputs({"repo_digest": self.repo_digest})
