"""Values of an HF config.json read with their types and ranges checked, so that sizing never meets a string, a
NaN, a list or a zero where it does arithmetic. Every refusal names the file, the key and the fix."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, NoReturn

from components.catalog.types import CatalogError

# The largest whole number a config.json value may hold. No model comes near it (vocabularies reach ~260K, contexts
# ~10M tokens, hidden sizes ~30K); past it a value is a typo, and sizing's float arithmetic would lose precision.
MAX_WHOLE = 2**31 - 1
FIX = "use the model's original config.json from its Hugging Face repository"


def shown(value: Any) -> str:
    """A value as the message quotes it: as JSON writes it (true, null, NaN), cut short."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _whole(value: Any, minimum: int) -> int | None:
    """`value` as a whole number from `minimum` to MAX_WHOLE, or None; 4096.0 reads as 4096, true does not."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_WHOLE:
        return None
    return value


@dataclass(frozen=True)
class ConfigValues:
    """One JSON object of a config.json: the top level, or a nested one (`text_config`, `rope_scaling`)."""

    values: dict[str, Any]
    where: str  # "<file> of <model id>"
    prefix: str = ""  # the keys' path from the top level, e.g. "text_config."

    def refuse(self, key: str, problem: str) -> NoReturn:
        raise CatalogError(f"{self.where}: {self.prefix}{key}: {problem}; {FIX}")

    def present(self, key: str) -> bool:
        return self.values.get(key) is not None

    def whole(self, key: str, minimum: int = 1) -> int | None:
        """A whole number from `minimum` to MAX_WHOLE; None when absent or null. 4096.0 reads as 4096."""
        value = self.values.get(key)
        if value is None:
            return None
        whole = _whole(value, minimum)
        if whole is None:
            if isinstance(value, bool | str | list | dict) or (isinstance(value, float) and not value.is_integer()):
                self.refuse(key, f"{shown(value)} is not a whole number")
            self.refuse(key, f"{shown(value)} is out of range; it must be from {minimum} to {MAX_WHOLE}")
        return whole

    def first_whole(self, keys: tuple[str, ...], what: str, minimum: int = 1) -> int:
        """The first of `keys` that is present (names differ between architectures); refused when none is."""
        for key in keys:
            value = self.whole(key, minimum)
            if value is not None:
                return value
        raise CatalogError(
            f"{self.where}: missing '{self.prefix}{keys[0]}' ({what})"
            + (f"; also looked for {', '.join(keys[1:])}" if len(keys) > 1 else "")
            + "; use the model's original config.json or add the model to components/catalog/models.yaml"
        )

    def number(self, key: str) -> float | None:
        """A finite number >= 0; None when absent or null."""
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.refuse(key, f"{shown(value)} is not a number")
        if not math.isfinite(value) or value < 0:
            self.refuse(key, f"{value} is out of range; it must be a finite number >= 0")
        return float(value)

    def text(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None or isinstance(value, str):
            return value
        self.refuse(key, f"{shown(value)} is not a string")

    def flag(self, key: str) -> bool | None:
        value = self.values.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.refuse(key, f"{shown(value)} is not true or false")

    def texts(self, key: str) -> list[str] | None:
        """A list of strings (e.g. `architectures`); None when absent or null."""
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.refuse(key, f"{shown(value)} is not a list of strings")
        return value

    def wholes(self, key: str) -> list[int] | None:
        """A non-empty list of whole numbers >= 1 (e.g. `weight_block_size`); None when absent or null."""
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not value or not all(_whole(item, 1) is not None for item in value):
            self.refuse(key, f"{shown(value)} is not a list of whole numbers from 1 to {MAX_WHOLE}")
        return [int(item) for item in value]

    def nested(self, key: str) -> ConfigValues | None:
        """A nested object (`text_config`, `rope_scaling`, `quantization_config`); None when absent or null."""
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.refuse(key, f"{shown(value)} is not a JSON object")
        return ConfigValues(value, self.where, f"{self.prefix}{key}.")
