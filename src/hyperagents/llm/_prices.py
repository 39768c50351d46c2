"""Prices of language models, to turn token counts into US dollars.

The default table is small, dated and will go stale: vendors change prices. Pass your own
(``Gateway(prices={"model": (input, output)})`` or a JSON file) to override or extend it.
Models that are not in the table (local servers, the embedded model, scripted replies, anything
unknown) cost 0 and are reported with ``cost_known=False``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from hyperagents.exceptions import LLMConfigError

__all__ = ["DEFAULT_PRICES", "PRICES_AS_OF", "ModelPrice", "PriceTable", "load_prices"]

PRICES_AS_OF = "2025-06"
"""When the default prices were copied from the vendors' public price pages."""


@dataclass(frozen=True)
class ModelPrice:
    """The price of a model in US dollars per million tokens.

    Attributes:
        input: Dollars per 1M prompt (input) tokens.
        output: Dollars per 1M completion (output) tokens.
    """

    input: float
    output: float

    def __post_init__(self) -> None:
        for name in ("input", "output"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise LLMConfigError(
                    f"a model price's {name} must be a finite number >= 0, not {value!r}"
                )

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The dollars that a call with these token counts costs.

        Args:
            prompt_tokens: Input tokens.
            completion_tokens: Output tokens.

        Returns:
            The cost in US dollars.
        """
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000


#: Standard (non-batch, non-cached-input) list prices, USD per 1M tokens, as of PRICES_AS_OF.
DEFAULT_PRICES: Mapping[str, ModelPrice] = MappingProxyType(
    {
        # OpenAI
        "gpt-4o": ModelPrice(2.50, 10.00),
        "gpt-4o-mini": ModelPrice(0.15, 0.60),
        "gpt-4.1": ModelPrice(2.00, 8.00),
        "gpt-4.1-mini": ModelPrice(0.40, 1.60),
        "gpt-4.1-nano": ModelPrice(0.10, 0.40),
        "o3": ModelPrice(2.00, 8.00),
        "o3-mini": ModelPrice(1.10, 4.40),
        "o4-mini": ModelPrice(1.10, 4.40),
        # Anthropic
        "claude-opus-4": ModelPrice(15.00, 75.00),
        "claude-sonnet-4": ModelPrice(3.00, 15.00),
        "claude-3-7-sonnet": ModelPrice(3.00, 15.00),
        "claude-3-5-sonnet": ModelPrice(3.00, 15.00),
        "claude-3-5-haiku": ModelPrice(0.80, 4.00),
        "claude-3-haiku": ModelPrice(0.25, 1.25),
    }
)

_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


def _candidates(model: str) -> list[str]:
    """Names to look a model up under: as given, without a vendor prefix, without a date."""
    names = [model]
    if "/" in model:  # "openai/gpt-4o" (OpenRouter-style)
        names.append(model.rsplit("/", 1)[1])
    for name in list(names):
        stripped = _DATE_SUFFIX.sub("", name)
        if stripped != name:
            names.append(stripped)
    return names


class PriceTable:
    """Looks up model prices and computes the cost of calls.

    A model is found under its exact name, else without an ``owner/`` prefix, else without a
    date or ``-latest`` suffix (``gpt-4o-2024-08-06`` → ``gpt-4o``,
    ``claude-3-5-haiku-20241022`` → ``claude-3-5-haiku``). There is no looser matching, so
    ``gpt-4o-mini`` never gets the price of ``gpt-4o``.

    Args:
        prices: Model name → price; defaults to :data:`DEFAULT_PRICES`.
    """

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices: dict[str, ModelPrice] = dict(DEFAULT_PRICES if prices is None else prices)

    @property
    def prices(self) -> Mapping[str, ModelPrice]:
        """A read-only view of the table."""
        return MappingProxyType(self._prices)

    def lookup(self, model: str) -> ModelPrice | None:
        """The price of a model, or ``None`` when it has none.

        Args:
            model: The model name.

        Returns:
            The price, or ``None``.
        """
        for name in _candidates(model):
            price = self._prices.get(name)
            if price is not None:
                return price
        return None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> tuple[float, bool]:
        """The cost of a call.

        Args:
            model: The model name.
            prompt_tokens: Input tokens.
            completion_tokens: Output tokens.

        Returns:
            ``(dollars, known)``; an unknown model costs ``0.0`` with ``known=False``.
        """
        price = self.lookup(model)
        if price is None:
            return 0.0, False
        return price.cost(prompt_tokens, completion_tokens), True


PriceSource = Mapping[str, "ModelPrice | tuple[float, float]"] | str | os.PathLike[str]


def _as_price(model: object, value: object) -> ModelPrice:
    if not isinstance(model, str) or not model:
        raise LLMConfigError(f"a price table's model names must be non-empty strings: {model!r}")
    if isinstance(value, ModelPrice):
        return value
    if isinstance(value, Mapping) and set(value) == {"input", "output"}:
        return ModelPrice(value["input"], value["output"])
    if isinstance(value, list | tuple) and len(value) == 2:
        return ModelPrice(value[0], value[1])
    raise LLMConfigError(
        f"the price of {model!r} must be [input, output] or {{'input': ..., 'output': ...}} "
        f"(US dollars per 1M tokens), not {value!r}"
    )


def load_prices(source: PriceSource | None = None) -> PriceTable:
    """Build a price table: the defaults, overridden and extended by ``source``.

    Args:
        source: ``None`` for the defaults only; a mapping ``{model: (input, output)}`` (or
            :class:`ModelPrice` values); or the path of a JSON file holding such an object
            (values ``[input, output]`` or ``{"input": ..., "output": ...}``). Prices are US
            dollars per million tokens.

    Returns:
        The table.

    Raises:
        LLMConfigError: If the file cannot be read or is not valid JSON, or a price is
            malformed or negative.
    """
    if source is None:
        return PriceTable()
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        try:
            with open(path, encoding="utf-8") as handle:
                loaded = json.load(handle)
        except OSError as exc:
            raise LLMConfigError(f"cannot read the price file {path!r}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise LLMConfigError(f"the price file {path!r} is not valid JSON: {exc}") from None
        if not isinstance(loaded, Mapping):
            raise LLMConfigError(f"the price file {path!r} must hold a JSON object")
        source = loaded
    if not isinstance(source, Mapping):
        raise LLMConfigError(f"prices must be a mapping or a JSON file path, not {source!r}")
    table = dict(DEFAULT_PRICES)
    for model, value in source.items():
        table[model] = _as_price(model, value)
    return PriceTable(table)
