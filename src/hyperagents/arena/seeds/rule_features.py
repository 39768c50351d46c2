"""Generic features of strings for the arena's rule synthesis (a task that declares none).

``arena_feature(name, arg, text)``: whether ``text`` has the feature ``name`` with ``arg``:

* ``has``, ``starts``, ``ends``, ``doubled``: a character anywhere, first, last, twice in a row;
* ``length_gt``: more than ``arg`` characters;
* ``parts_ne``, ``part_len_gt``, ``part_empty``, ``part_leading_zero``, ``part_num_gt``: split
  at the separator ``arg[0]`` (or ``arg``): not ``arg[1]`` parts, a part longer than ``arg[1]``,
  an empty part, a number part with a leading zero, a number part past ``arg[1]``;
* ``non_ascii``, ``space``, ``unicode_category``: a non-ASCII character, a whitespace one, one of
  the Unicode category ``arg``.

The ``arena`` meta agent writes this source into a code agent's task agent with its first rule,
so it is functions only (no ``__future__`` import). Standalone: standard library only.
"""

import unicodedata
from collections.abc import Callable
from typing import Any


def _arena_parts(text: str, sep: str) -> list[str]:
    return text.split(sep) if sep else [text]


def _arena_numbers(text: str, sep: str) -> list[int]:
    return [int(p) for p in _arena_parts(text, sep) if p.isascii() and p.isdigit()]


_ARENA_FEATURES: dict[str, Callable[[Any, str], bool]] = {
    "has": lambda arg, text: arg in text,
    "starts": lambda arg, text: text.startswith(arg),
    "ends": lambda arg, text: text.endswith(arg),
    "doubled": lambda arg, text: arg * 2 in text,
    "length_gt": lambda arg, text: len(text) > arg,
    "parts_ne": lambda arg, text: len(_arena_parts(text, arg[0])) != arg[1],
    "part_len_gt": lambda arg, text: any(len(p) > arg[1] for p in _arena_parts(text, arg[0])),
    "part_empty": lambda arg, text: "" in _arena_parts(text, arg),
    "part_leading_zero": lambda arg, text: any(
        len(p) > 1 and p[0] == "0" and p.isdigit() for p in _arena_parts(text, arg)
    ),
    "part_num_gt": lambda arg, text: any(n > arg[1] for n in _arena_numbers(text, arg[0])),
    "non_ascii": lambda arg, text: any(ord(ch) > 127 for ch in text),
    "space": lambda arg, text: any(ch.isspace() for ch in text),
    "unicode_category": lambda arg, text: any(unicodedata.category(ch) == arg for ch in text),
}


def arena_feature(name: str, arg: Any, text: str) -> bool:
    """Whether ``text`` has the feature ``name`` (with ``arg``); False for an unknown one."""
    feature = _ARENA_FEATURES.get(name)
    return bool(feature(arg, text)) if feature is not None else False
