"""vllm_standin.py with the facts of a score model added: what vLLM builds from a causal-LM reranker's
`--hf-overrides` and `--convert classify`. Same input, output and stand-ins as vllm_standin.py (run the same way,
inside the release's venv); each container's facts also hold:

- `architecture`: the architecture vLLM resolved (ModelConfig.architecture) and `model_class`: the class name of the
  model it would load (get_model_architecture in vllm/model_executor/model_loader/utils.py, which applies
  as_seq_cls_model for `--convert classify`), or the error that stopped it;
- `num_labels`, `score_method`, `cross_encoder`: the classifier's labels, the head it derives from lm_head
  (SequenceClassificationConfig / Qwen3ForSequenceClassificationConfig) and whether it scores pairs jointly;
- `scores`: whether the release serves /score and /rerank for it: a cross-encoder with one label
  (0.13: GPUModelRunner.get_supported_pooling_tasks; 0.33: enable_scoring_api in vllm/entrypoints/pooling/utils.py).
"""

from __future__ import annotations

from typing import Any

import vllm_standin  # type: ignore[import-not-found,unused-ignore]  # run as a script from tests/engine, like vllm_standin.py

_engine_facts = vllm_standin.engine_facts


def model_class(config: Any) -> str:
    from vllm.model_executor.model_loader.utils import get_model_architecture

    try:
        cls, _ = get_model_architecture(config.model_config)
    except Exception as error:  # the class vLLM cannot build is the fact
        return f"error: {type(error).__name__}: {error}"
    return str(cls.__name__)


def score_facts(config: Any) -> dict[str, Any]:
    facts: dict[str, Any] = _engine_facts(config)
    model = config.model_config
    hf, text = model.hf_config, model.hf_config.get_text_config()
    # 0.13 has ModelConfig.is_cross_encoder; 0.33 replaced it by score_type.
    cross = model.is_cross_encoder if hasattr(model, "is_cross_encoder") else model.score_type == "cross-encoder"
    labels = getattr(hf, "num_labels", 0)
    facts.update(
        architecture=model.architecture,
        model_class=model_class(config),
        num_labels=labels,
        score_method=getattr(hf, "method", None) or getattr(text, "method", None),
        cross_encoder=bool(cross),
        scores=bool(cross) and model.runner_type == "pooling" and labels == 1,
    )
    return facts


vllm_standin.engine_facts = score_facts

if __name__ == "__main__":
    vllm_standin.main()
