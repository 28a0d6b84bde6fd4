"""Causal-LM reranker checkpoints: generative architectures (*ForCausalLM) whose relevance score is the language
model's logit of one or two answer tokens. vLLM serves them as cross-encoders only when told which tokens: the
`--hf-overrides` its docs give for each family (docs/models/supported_models.md, "score models" notes, at v0.13.0
and v0.33.0), which turn the architecture into a *ForSequenceClassification that `--convert classify` builds from the
causal LM (as_seq_cls_model in vllm/model_executor/models/adapters.py) and whose one-row score head is computed
from lm_head at load time (seq_cls_model_loader there, whose comment names these three families).

Facts only: which checkpoints are such rerankers and the overrides they need. Whether a release can serve them is
the plan's (components/planning/rerankers.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

# The score head vLLM derives from lm_head (SEQ_CLS_LOAD_METHODS in vllm/model_executor/models/adapters.py):
# from_2_way_softmax: the row of the second token minus the first; no_post_processing: the token's row as is.
ScoreMethod = Literal["from_2_way_softmax", "no_post_processing"]


@dataclass(frozen=True)
class RerankerFamily:
    """One family of causal-LM rerankers and the overrides vLLM's docs give for it."""

    name: str
    pattern: str  # the Hugging Face repository name (after the org), case-insensitive; fine-tunes keep it
    architecture: str  # what the checkpoint's config.json says
    classifier_architecture: str  # what the overrides make it
    tokens: tuple[str, ...]  # classifier_from_token
    method: ScoreMethod
    # Qwen3-Reranker's overrides name no method: vLLM's Qwen3ForSequenceClassificationConfig sets
    # from_2_way_softmax when `is_original_qwen3_reranker` is true (vllm/model_executor/models/config.py).
    original_qwen3: bool
    source: str

    def overrides(self) -> dict[str, Any]:
        """The `--hf-overrides` keys, as the docs write them."""
        keys: dict[str, Any] = {"architectures": [self.classifier_architecture]}
        keys["classifier_from_token"] = list(self.tokens)
        if self.original_qwen3:
            keys["is_original_qwen3_reranker"] = True
        else:
            keys["method"] = self.method
        return keys


_DOCS = "vLLM docs/models/supported_models.md (score models: 'Load the official original ...')"
RERANKER_FAMILIES: tuple[RerankerFamily, ...] = (
    RerankerFamily(
        name="Qwen3-Reranker",
        pattern=r"qwen3-reranker-.*",
        architecture="Qwen3ForCausalLM",
        classifier_architecture="Qwen3ForSequenceClassification",
        tokens=("no", "yes"),
        method="from_2_way_softmax",
        original_qwen3=True,
        source=f"{_DOCS} for Qwen/Qwen3-Reranker-0.6B/4B/8B; the model card scores with the logits of 'no' and 'yes'",
    ),
    RerankerFamily(
        name="Qwen3-VL-Reranker",
        pattern=r"qwen3-vl-reranker-.*",
        architecture="Qwen3VLForConditionalGeneration",
        classifier_architecture="Qwen3VLForSequenceClassification",
        tokens=("no", "yes"),
        method="from_2_way_softmax",
        original_qwen3=True,
        source=f"{_DOCS} at v0.33.0 for Qwen/Qwen3-VL-Reranker-2B ('Similar to Qwen3-Reranker')",
    ),
    RerankerFamily(
        name="mxbai-rerank-v2",
        pattern=r"mxbai-rerank-.*-v2.*",
        architecture="Qwen2ForCausalLM",
        classifier_architecture="Qwen2ForSequenceClassification",
        tokens=("0", "1"),
        method="from_2_way_softmax",
        original_qwen3=False,
        source=f"{_DOCS} for mixedbread-ai/mxbai-rerank-base-v2",
    ),
    RerankerFamily(
        name="bge-reranker-v2-gemma",
        pattern=r"bge-reranker-v2-gemma.*",
        architecture="GemmaForCausalLM",
        classifier_architecture="GemmaForSequenceClassification",
        tokens=("Yes",),
        method="no_post_processing",
        original_qwen3=False,
        source=f"{_DOCS} for BAAI/bge-reranker-v2-gemma",
    ),
)


def reranker_family(model_id: str, architecture: str) -> RerankerFamily | None:
    """The family of a checkpoint, by its repository name and its config's architecture (both must agree: a
    Qwen2 checkpoint named like a Qwen3-Reranker is not one)."""
    name = model_id.rstrip("/").rsplit("/", 1)[-1]
    return next(
        (
            family
            for family in RERANKER_FAMILIES
            if family.architecture == architecture and re.fullmatch(family.pattern, name, re.IGNORECASE)
        ),
        None,
    )


def family_names() -> str:
    return ", ".join(f"{f.name} ({f.architecture})" for f in RERANKER_FAMILIES)
