"""Validation of the service's decision settings (pydantic models, one error message style)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from hyperagents._validation import validate_merged

__all__ = ["Settings", "parse_settings"]

_M = TypeVar("_M", bound="Settings")


class Settings(BaseModel):
    """Base of the service's settings: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_settings(cls: type[_M], data: Mapping[str, Any] | None = None, **overrides: Any) -> _M:
    """Validate ``data`` merged with ``overrides`` as a ``cls``.

    Args:
        cls: The settings model.
        data: Stored or written values (None: all defaults).
        **overrides: Values that replace those of ``data`` (None values are ignored).

    Returns:
        The validated settings.

    Raises:
        ConfigError: A value is invalid; the message names the model, the field and the problem.
    """
    return validate_merged(cls, data, overrides, what=cls.__name__)
