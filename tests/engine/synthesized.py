"""Stand-in config.json for catalog models whose real file could not be found (`config: unverified` rows).

Built from the catalog's own (unverified) numbers in the standard Hugging Face layout of the architecture; every
key the catalog does not state comes from the transformers config class defaults inside vLLM's environment.
The engine run marks such containers `synthesized`, so a reader sees which verdicts rest on real files. Never
shipped: components/catalog/configs holds real files only.
"""

from __future__ import annotations

from typing import Any

from components.catalog import ModelArch

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
# HF model_type of the decoder families a stack serves; their configs share the Llama key names.
DECODERS = {"Qwen2ForCausalLM": "qwen2", "LlamaForCausalLM": "llama", "Gemma2ForCausalLM": "gemma2"}


def synthesized_config(arch: ModelArch) -> dict[str, Any] | None:
    """The stand-in config.json, or None where no layout is known (the container stays unchecked)."""
    # Pooling models are left out: vLLM also reads their sentence-transformers files (sentence_bert_config.json
    # sets the length), and a guessed one would make the verdict about the guess (nomic: a missing one crashes
    # vLLM's NomicBert hook, which the real repository's file avoids).
    return decoder_config(arch) if arch.architecture in DECODERS else None


def decoder_config(arch: ModelArch) -> dict[str, Any]:
    config: dict[str, Any] = {
        "architectures": [arch.architecture],
        "model_type": DECODERS[arch.architecture],
        "hidden_size": arch.hidden,
        "intermediate_size": arch.intermediate,
        "num_hidden_layers": arch.layers,
        "num_attention_heads": arch.heads,
        "num_key_value_heads": arch.kv_heads,
        "head_dim": arch.head_dim,
        "vocab_size": arch.vocab,
        "max_position_embeddings": arch.max_position,
        "tie_word_embeddings": arch.tie_embeddings,
        "torch_dtype": DTYPES.get(arch.checkpoint_dtype, "bfloat16"),
    }
    if arch.rope_theta:
        config["rope_theta"] = arch.rope_theta
    windows = {g.window for g in arch.layer_groups if g.kind == "sliding"}
    if windows:
        config["sliding_window"] = windows.pop()
    return config
