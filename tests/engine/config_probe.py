"""A config.json as a vLLM release builds it, no network. Runs inside a vLLM venv (.venv-vllm: vLLM 0.13.0 with
transformers 4.57.6; .venv-vllm-0.33: vLLM 0.33.0 with transformers 5.x).

Reads a JSON list of model directories (each holding a config.json) on stdin. For each it calls the release's own
get_config (vllm/transformers_utils/config.py: AutoConfig or vLLM's own configuration class for the model_type,
without remote code), takes the text model's config (get_text_config, as ModelConfig.hf_text_config does) and
prints the sizing fields, or the refusal, as one JSON list on the last line of stdout.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import transformers
import vllm
from vllm.transformers_utils.config import get_config


def _value(config: Any, *names: str) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def read(directory: str) -> dict[str, Any]:
    try:
        config = get_config(directory, trust_remote_code=False)
    except Exception as exc:  # the refusal is the answer
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    text = config.get_text_config()
    heads = _value(text, "num_attention_heads")
    hidden = _value(text, "hidden_size")
    head_dim = _value(text, "head_dim") or (hidden // heads if hidden and heads else None)
    layer_types = _value(text, "layer_types")
    return {
        "model_type": getattr(config, "model_type", None),
        "layers": _value(text, "num_hidden_layers"),
        "hidden": hidden,
        "heads": heads,
        "kv_heads": _value(text, "num_key_value_heads") or heads,
        "head_dim": head_dim,
        "vocab": _value(text, "vocab_size"),
        "max_position": _value(text, "max_position_embeddings"),
        "layer_types": list(layer_types) if layer_types else None,
        "sliding_window": _value(text, "sliding_window"),
        "attention_chunk_size": _value(text, "attention_chunk_size"),
        "pad_token_id": _value(text, "pad_token_id"),
    }


def main() -> None:
    directories = json.load(sys.stdin)
    versions = {"vllm": vllm.__version__, "transformers": transformers.__version__}
    print(json.dumps({"versions": versions, "configs": [read(d) for d in directories]}))


if __name__ == "__main__":
    main()
