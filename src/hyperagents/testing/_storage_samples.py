"""Sample data of the storage conformance suite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hyperagents.program import Program

__all__ = ["JSON_SAMPLE", "MISSING_ID", "assert_utc", "make_program"]

#: An id no test creates.
MISSING_ID = 987_654


def make_program(tag: str = "seed", **extra: str | bytes) -> Program:
    """A small hyperagent-like program whose task agent mentions ``tag``."""
    files: dict[str, str | bytes] = {
        "task_agent.py": f"TAG = {tag!r}\n\ndef solve(x):\n    return x\n",
        "meta_agent.py": "def improve(workspace):\n    return workspace\n",
    }
    files.update(extra)
    return Program(files)


def assert_utc(value: datetime | None) -> None:
    assert isinstance(value, datetime)
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)
    now = datetime.now(UTC)
    assert now - timedelta(minutes=10) < value <= now + timedelta(seconds=5)


#: A JSON value exercising every JSON type (and non-ASCII text, big ints, nesting).
JSON_SAMPLE: dict[str, Any] = {
    "int": 3,
    "big": 2**53 + 1,
    "negative": -7,
    "float": 0.1,
    "exp": 1.5e-300,
    "true": True,
    "false": False,
    "null": None,
    "text": 'héllo, 世界 🚀 "quoted" \\ back \n newline \t tab',
    "empty": {},
    "list": [1, "two", 3.0, None, [], {"k": [True]}],
    "nested": {"a": {"b": {"c": [1, 2, {"d": "e"}]}}},
}
