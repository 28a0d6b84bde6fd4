"""Container images, pinned in one place. Tags are release tags, never `latest`.

tests/test_versions.py checks that the Dockerfile, the requirements files and these agree.
"""

from components.planning.vllm import VLLM_VERSION

# vLLM's OpenAI-compatible server at the release the plan's flags and memory model target.
VLLM_IMAGE = f"vllm/vllm-openai:v{VLLM_VERSION}"

# LiteLLM proxy, the non-root image of the release the gateway tests run (PyPI litellm[proxy]).
LITELLM_VERSION = "1.106.2"
LITELLM_IMAGE = f"ghcr.io/berriai/litellm-non_root:v{LITELLM_VERSION}"
# vllm-project/router, the release the gateway tests run (PyPI vllm-router).
VLLM_ROUTER_VERSION = "0.1.17"
VLLM_ROUTER_IMAGE = f"vllm/vllm-router:v{VLLM_ROUTER_VERSION}"
