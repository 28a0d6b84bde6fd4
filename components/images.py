"""Container images, pinned in one place. Tags are release tags, never `latest`.

tests/test_versions.py checks that the Dockerfile, the requirements files and these agree.
"""

from components.planning.engine_versions import DEFAULT_VLLM_VERSION, ENGINE_VERSIONS

# vLLM's OpenAI-compatible server at the default release; each model runs its own release's image
# (ModelPlan.image, from components/planning/engine_versions.py).
VLLM_IMAGE = ENGINE_VERSIONS[DEFAULT_VLLM_VERSION].image

# LiteLLM proxy, the non-root image of the release the gateway tests run (PyPI litellm[proxy]).
LITELLM_VERSION = "1.106.2"
LITELLM_IMAGE = f"ghcr.io/berriai/litellm-non_root:v{LITELLM_VERSION}"
# vllm-project/router, the release the gateway tests run (PyPI vllm-router).
VLLM_ROUTER_VERSION = "0.1.17"
VLLM_ROUTER_IMAGE = f"vllm/vllm-router:v{VLLM_ROUTER_VERSION}"

# The rate-limit counters' Redis (components/rate_limit_store.py): a Docker official image tag listed in
# docker-library/official-images library/redis (added by its commit 32dbe4eb, the 2026-08-18 security release).
# 7.2 is the last BSD-licensed line; the counters need nothing newer (INCRBY, EXPIRE, pipelining). The alpine image
# runs redis-server as uid 999, gid 1000 (redis/docker-library-redis 7.2/alpine/Dockerfile `adduser -u 999`).
REDIS_IMAGE = "redis:7.2.16-alpine"
# Its Prometheus exporter: the release prometheus-community/helm-charts' prometheus-redis-exporter chart shipped
# (appVersion v1.88.0, commit 96679d1e); the tag is the scratch image, USER 59000:59000 (oliver006/redis_exporter
# v1.88.0 Dockerfile, .github/workflows/release.yml).
REDIS_EXPORTER_IMAGE = "oliver006/redis_exporter:v1.88.0"
