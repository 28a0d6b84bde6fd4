"""A config.json as the engine reads it: the raw JSON object built by transformers' configuration class for its
`model_type` and serialized back with `to_dict()`, so that model-type defaults and derived fields (head_dim,
`text_config` / `vision_config`, layer_types, rope fields) are the ones vLLM sizes the model with.

vLLM 0.13 loads a config through `AutoConfig.from_pretrained` (HFConfigParser.parse in
vllm/transformers_utils/config.py), which picks `CONFIG_MAPPING[model_type]` and calls its `from_dict`
(transformers 4.57.6, models/auto/configuration_auto.py). This module makes the same call on the dict. The
configuration classes need no torch, and the main environment has none (transformers imports torch only when it
is installed); transformers itself is imported on first use, as it costs about a second."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import warnings
from collections.abc import Iterator
from typing import Any, NoReturn

from components.catalog.config_values import ConfigValues, shown
from components.catalog.types import CatalogError

# Model types vLLM 0.13 builds with its own configuration class instead of transformers' (_CONFIG_REGISTRY in
# vllm/transformers_utils/config.py). vLLM is not importable here (it lives in .venv-vllm), so these configs are
# read as written; tests/catalog/test_transformers_config.py checks the list against the pinned vLLM source.
VLLM_OWN_CONFIG_TYPES = frozenset(
    {
        "afmoe", "bagel", "chatglm", "deepseek_vl_v2", "deepseek_v32", "flex_olmo", "hunyuan_vl", "kimi_linear",
        "kimi_vl", "RefinedWeb", "RefinedWebModel", "jais", "mlp_speculator", "medusa", "midashenglm", "eagle",
        "speculators", "nemotron", "olmo3", "ovis", "ultravox", "step3_vl", "step3_text", "qwen3_next", "lfm2_moe",
        "tarsier2",
    }
)  # fmt: skip
# _CONFIG_ATTRS_MAPPING in vllm/transformers_utils/config.py: InternVL-style configs name the language model
# llm_config; vLLM reads it as text_config (_maybe_remap_hf_config_attrs).
_REMAPPED = {"llm_config": "text_config"}
# Layer and label counts the configuration classes turn into per-layer lists (layer_types, no_rope_layers) and a
# label map (PretrainedConfig._create_id_label_maps). The deepest published models have a few hundred layers;
# past this bound a count is a typo that would make transformers build lists of billions of entries.
MAX_LAYERS = 100_000
_COUNT_KEY = re.compile(r"^(num_|n_)?(hidden_|encoder_|decoder_|sparse_)?layers?$|^num_labels$")
# Fields sizing reads; a note says which of them transformers' defaults filled in.
_SIZING_KEYS = (
    "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "vocab_size", "max_position_embeddings", "sliding_window", "layer_types",
)  # fmt: skip
_MAX_TRIES = 400  # builds spent finding the key behind a refusal
_DEFAULTED = ": not in the file;"  # between the keys and the rest of a defaults note


def engine_config(cfg: dict[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """(`cfg` as vLLM 0.13's transformers builds it, notes on how it was read). `where` is "<file> of <model>".

    A config transformers refuses is a CatalogError naming the key when one key explains it."""
    cfg = _remap(cfg)
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str):  # a wrong type is ConfigValues' to refuse, with the key
        notes = ["config.json has no model_type: read as written, without transformers' defaults"]
        return cfg, notes if model_type is None else []
    if model_type in VLLM_OWN_CONFIG_TYPES:
        return cfg, [
            f"model_type {model_type!r} is built by vLLM's own configuration class, which this tool does not run: "
            "read as written, without its defaults"
        ]
    if model_type == "mistral" and "layer_types" in cfg:
        model_type = "ministral"  # AutoConfig.from_pretrained's own rule (configuration_auto.py)
    with _quiet():
        from transformers import __version__
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    if model_type not in CONFIG_MAPPING:
        return cfg, [
            f"transformers {__version__} has no configuration class for model_type {model_type!r}: read as "
            "written (vLLM needs --trust-remote-code and the model's own configuration code)"
        ]
    _check_counts(cfg, where)
    config_class = CONFIG_MAPPING[model_type]
    try:
        built, out = _build(config_class, cfg)
    except Exception as exc:  # any failure of the class on this file is the file's problem
        _refuse(config_class, cfg, exc, where, __version__)
    _add_aliases(out, built)
    notes = _defaults_note(cfg, out, built, __version__)
    auto_map = cfg.get("auto_map")
    if isinstance(auto_map, dict) and "AutoConfig" in auto_map:  # AutoConfig.from_pretrained's remote-code branch
        notes.append(
            f"read as transformers {__version__} {config_class.__name__} builds it; with --trust-remote-code vLLM "
            "builds the checkpoint's own configuration class (auto_map) instead"
        )
    return out, notes


def _remap(cfg: dict[str, Any]) -> dict[str, Any]:
    moved = {new: cfg[old] for old, new in _REMAPPED.items() if old in cfg and new not in cfg}
    return {**cfg, **moved} if moved else cfg


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers' import advice (no torch) and its config warnings are not the user's business: the CLI
    prints only the plan. The advisory variable is read at import; the library logger is restored after."""
    saved = os.environ.get("TRANSFORMERS_NO_ADVISORY_WARNINGS")
    os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    library = logging.getLogger("transformers")
    level = library.level
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            library.setLevel(logging.ERROR)
            yield
    finally:
        library.setLevel(level)
        if saved is None:
            del os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"]
        else:
            os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = saved


def _build(config_class: Any, cfg: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The config object and its to_dict(), which can fail too (a list as torch_dtype)."""
    with _quiet():
        # from_dict changes the dict it is given (attn_implementation, nested rope dicts): give it a copy.
        built = config_class.from_dict(copy.deepcopy(cfg))
        return built, built.to_dict()


def _parent(cfg: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = cfg
    for part in path[:-1]:
        node = node[part]
    return node


def _check_counts(cfg: dict[str, Any], where: str) -> None:
    """Refuse a layer or label count transformers would expand into a list of that many entries."""
    for path, value in _walk(cfg):
        key = path[-1]
        if _COUNT_KEY.match(key) and isinstance(value, int) and not isinstance(value, bool) and value > MAX_LAYERS:
            _values(cfg, path, where).refuse(key, f"{shown(value)} is more than {MAX_LAYERS}; no model has that many")


def _walk(cfg: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (key path, value) of the nested objects, deepest first, without recursion (JSON can nest deeply)."""
    stack: list[tuple[tuple[str, ...], dict[str, Any]]] = [((), cfg)]
    found: list[tuple[tuple[str, ...], Any]] = []
    while stack:
        prefix, node = stack.pop()
        for key, value in node.items():
            found.append(((*prefix, key), value))
            if isinstance(value, dict):
                stack.append(((*prefix, key), value))
    return iter(sorted(found, key=lambda item: -len(item[0])))


def _values(cfg: dict[str, Any], path: tuple[str, ...], where: str) -> ConfigValues:
    """The ConfigValues of the object holding `path`, so that a refusal names its dotted key."""
    return ConfigValues(_parent(cfg, path), where, "".join(f"{part}." for part in path[:-1]))


class EngineRefusal(CatalogError):
    """A config transformers' class refuses to build. `nearest` is the config it builds with the offending value
    put back, for the reader's own checks, which name a wrong type or range more plainly (None: no one key)."""

    def __init__(self, message: str, nearest: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.nearest = nearest


def _refuse(config_class: Any, cfg: dict[str, Any], exc: Exception, where: str, version: str) -> NoReturn:
    """Raise an EngineRefusal for a config the class cannot build, naming the key whose removal lets it build."""
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    reason = reason if len(reason) <= 200 else reason[:197] + "..."
    builder = f"transformers {version} {config_class.__name__}"
    for path, value in list(_walk(cfg))[:_MAX_TRIES]:
        try:
            built, nearest = _build(config_class, _without(cfg, path))
        except Exception:  # still refused: this key is not the one
            continue
        _add_aliases(nearest, built)
        holder: Any = nearest
        for part in path[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            holder[path[-1]] = value
        at = ConfigValues({}, where, "".join(f"{part}." for part in path[:-1]))
        problem = f"{shown(value)} is refused by {builder} ({reason})"
        raise EngineRefusal(_message(at, path[-1], problem), nearest if isinstance(holder, dict) else None)
    problem = f"{builder} cannot build this config ({reason})"
    raise EngineRefusal(_message(ConfigValues({}, where), "model_type", problem), None)


def _message(at: ConfigValues, key: str, problem: str) -> str:
    """The one-line refusal ConfigValues writes for `key`, naming the file, the key and the fix."""
    try:
        at.refuse(key, problem)
    except CatalogError as exc:
        return str(exc)


def _without(cfg: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    out = copy.deepcopy(cfg)
    del _parent(out, path)[path[-1]]
    return out


def _add_aliases(out: dict[str, Any], config: Any) -> None:
    """The attribute names the engine reads the config by: `attribute_map` aliases (GPT-2's n_embd is its
    hidden_size) and `torch_dtype`, which 4.57 keeps as `dtype` (PretrainedConfig.__init__). Sub-configs too."""
    for alias, name in type(config).attribute_map.items():
        if alias not in out and name in out:
            out[alias] = out[name]
    if "torch_dtype" not in out and out.get("dtype") is not None:
        out["torch_dtype"] = out["dtype"]
    for key, value in vars(config).items():
        if isinstance(out.get(key), dict) and hasattr(value, "attribute_map") and hasattr(value, "to_dict"):
            _add_aliases(out[key], value)


def _defaults_note(raw: dict[str, Any], out: dict[str, Any], built: Any, version: str) -> list[str]:
    """Which sizing fields the file leaves out and transformers' defaults supply, and from which class."""
    notes = []
    for prefix, obj in (("", built), ("text_config.", getattr(built, "text_config", None))):
        raw_part = raw if not prefix else raw.get("text_config")
        out_part = out if not prefix else out.get("text_config")
        if obj is None or not isinstance(out_part, dict):
            continue
        raw_part = raw_part if isinstance(raw_part, dict) else {}
        # A key the file states under another name (GPT-2's n_layer) is not a default.
        names = type(obj).attribute_map
        stated = {k for k in _SIZING_KEYS if raw_part.get(k) is not None or raw_part.get(names.get(k, k)) is not None}
        stated |= {names[alias] for alias in names if raw_part.get(alias) is not None}
        filled = [prefix + k for k in _SIZING_KEYS if k not in stated and out_part.get(k) is not None]
        if filled:
            notes.append(
                f"{', '.join(filled)}{_DEFAULTED} transformers {version} {type(obj).__name__}'s "
                "defaults, as vLLM reads them"
            )
    return notes


def defaulted_keys(note: str) -> list[str]:
    """The keys a defaults note (_defaults_note) names; [] for any other note."""
    keys, found, _ = note.partition(_DEFAULTED)
    return keys.split(", ") if found else []
