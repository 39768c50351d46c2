"""The LLM meta agent's settings (its ``CONFIG``, checked), its model client and its errors.

``CONFIG`` in meta_agent.py is the only copy of the settings' values: :class:`Settings` says
which keys there must be and of what type, and holds no values of its own.
"""

from __future__ import annotations

import math
from typing import Any


class SettingsError(ValueError):
    """``CONFIG`` is not a dict, lacks a key, or holds a value of the wrong type."""


class ProposalError(Exception):
    """The model's replies could not be turned into a valid proposal."""


# Plain classes rather than dataclasses: every sandboxed process imports this module afresh,
# and creating a dataclass costs about half a millisecond of CPU.
class Settings:
    """``CONFIG`` checked and typed (meta_agent.py explains each key): one attribute per
    annotation below, each of the annotated type."""

    format: str
    review: bool
    temperature: float
    max_tokens: int
    retries: int
    repair_rounds: int
    max_steps: int
    max_file_chars: int
    max_files: int
    max_prompt_chars: int
    max_instances: int
    max_field_chars: int
    max_archive: int
    max_observation_chars: int
    sample_size: int
    sample_timeout: int

    def __init__(self, **values: Any) -> None:
        for name in self.__annotations__:
            setattr(self, name, values[name])

    @classmethod
    def parse(cls, config: Any, formats: tuple[str, ...]) -> Settings:
        """Check ``config``: every key of :class:`Settings` present with a value of its type.

        A ``bool`` may be given as a number; an ``int`` as a finite number, which is truncated
        and raised to 0 (``max_steps`` to 1); a ``float`` as an int. Other keys are ignored
        (new code may read ``CONFIG`` for its own settings).

        Args:
            config: The ``CONFIG`` dict.
            formats: The known edit formats (``format`` must be one of them).

        Raises:
            SettingsError: What is wrong, for every key that is.
        """
        if not isinstance(config, dict):
            raise SettingsError(f"CONFIG must be a dict, not {type(config).__name__}")
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, kind in cls.__annotations__.items():
            if name not in config:
                problems.append(f"{name!r} is missing")
                continue
            ok, value = _check(str(kind), config[name])
            if ok:
                values[name] = value
            else:
                problems.append(f"{name!r} must be a {kind}, not {config[name]!r}")
        if "format" in values and values["format"] not in formats:
            problems.append(f"'format' must be one of {', '.join(formats)}")
        if problems:
            raise SettingsError("; ".join(problems))
        values["max_steps"] = max(1, values["max_steps"])
        return cls(**values)


def _check(kind: str, value: Any) -> tuple[bool, Any]:
    """``(True, value as kind)`` if ``value`` can stand for a ``kind``, else ``(False, None)``."""
    number = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if kind == "bool":
        return (True, bool(value)) if number else (False, None)
    if kind == "int":
        return (True, max(0, int(value))) if number else (False, None)
    if kind == "float":
        ok = number and not isinstance(value, bool)
        return (True, float(value)) if ok else (False, None)
    return (True, value) if isinstance(value, str) else (False, None)


class Model:
    """The run's model (the sandbox's ``llm`` module) with the agent's sampling settings.

    Attributes:
        llm: The ``llm`` module.
        settings: Where ``temperature`` and ``max_tokens`` come from.
        calls: Model calls made so far.
    """

    def __init__(self, llm: Any, settings: Settings, calls: int = 0) -> None:
        self.llm = llm
        self.settings = settings
        self.calls = calls

    def ask(self, messages: list[dict[str, str]], purpose: str) -> str:
        """The model's reply to ``messages``; ``purpose`` labels the call in the run's record.

        Raises:
            llm.LLMError: The engine could not (or would not) answer.
        """
        self.calls += 1
        reply = self.llm.complete(
            messages,
            temperature=self.settings.temperature,
            max_tokens=self.settings.max_tokens or None,
            purpose=purpose,
        )
        return reply if isinstance(reply, str) else str(reply)
