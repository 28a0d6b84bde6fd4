"""Container images, pinned in one place. Tags are release tags, never `latest`."""

# vLLM's OpenAI-compatible server; the sizing rules and flags target this release (components.sizing.VLLM_VERSION).
VLLM_IMAGE = "vllm/vllm-openai:v0.13.0"
