"""One way to turn a pydantic validation error into the message a user reads.

Used by every place that validates user-written values with pydantic (run configs, service
settings, constitutions, reviews), so they all name the field the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hyperagents.exceptions import ConfigError

__all__ = ["error_text", "validate_merged"]

_M = TypeVar("_M", bound=BaseModel)


def error_text(exc: ValidationError, *, where: str, written_only: bool = True) -> str:
    """``"field.path: message"`` of the first error in ``exc``.

    Args:
        exc: The validation error.
        where: What to name when the error has no location (the whole value).
        written_only: Keep only the location parts a user writes (list indexes and identifier
            keys), dropping the names pydantic gives a union's branches (``constrained-int``).
    """
    first = exc.errors()[0]
    parts = first["loc"]
    if written_only:
        parts = tuple(p for p in parts if isinstance(p, int) or str(p).isidentifier())
    return f"{'.'.join(str(p) for p in parts) or where}: {first['msg']}"


def validate_merged(
    cls: type[_M], data: Mapping[str, Any] | None, overrides: Mapping[str, Any], *, what: str
) -> _M:
    """Validate ``data`` merged with ``overrides`` (None values ignored) as a ``cls``.

    Raises:
        ConfigError: A value is invalid: ``invalid <what>: <field>: <problem>``.
    """
    merged = dict(data or {})
    merged.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"invalid {what}: {error_text(exc, where=what)}") from exc
