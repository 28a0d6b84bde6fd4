"""Container images, pinned in one place. Tags are release tags, never `latest`."""

# vLLM's OpenAI-compatible server; the sizing rules and flags target this release (components.sizing.VLLM_VERSION).
VLLM_IMAGE = "vllm/vllm-openai:v0.13.0"

# LiteLLM proxy, the non-root image of the release the gateway tests run (PyPI litellm[proxy]==1.106.2).
LITELLM_IMAGE = "ghcr.io/berriai/litellm-non_root:v1.106.2"
# vllm-project/router, the release the gateway tests run (PyPI vllm-router==0.1.17).
VLLM_ROUTER_IMAGE = "vllm/vllm-router:v0.1.17"
