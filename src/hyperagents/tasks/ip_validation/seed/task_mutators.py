"""The ``ip_validation`` task's own mutators for the arena's test agents (``MUTATORS``).

Each ``mutate(text, rng)`` returns ``text`` after one edit of its kind:

* ``octet``: an IPv4 part replaced by a value at or past the limits (``256``, ``-1``), with a
  leading zero, in hex or empty; a part added or dropped;
* ``group``: an IPv6 group replaced by one too long, non-hex or empty; a group added or dropped;
  the ``::`` doubled or moved;
* ``scope``: a ``%zone`` scope id added, empty or odd;
* ``embed``: an IPv4 address written as an IPv6 tail (``::ffff:1.2.3.4``), or an IPv6 prefix
  put before a dotted tail;
* ``wrap``: brackets, a prefix length, a port or whitespace around the address.

The seed test agent adds them to its generic ``char`` and ``splice`` edits. Standalone:
standard library only, deterministic given ``rng``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

_OCTETS = ("0", "1", "255", "256", "999", "00", "01", "010", "-1", "", "0x1f", "1e1", "٣")
_GROUPS = ("", "0", "ffff", "FFFF", "fffff", "00000", "g", "12345", "0db8", "1.2.3.4")
_ZONES = ("eth0", "1", "", "%", "a b", "lo0", "ü", "eth0%1")


def _octet(text: str, rng: random.Random) -> str:
    parts = text.split(".")
    choice = rng.randrange(3)
    i = rng.randrange(len(parts))
    if choice == 0:
        parts[i] = rng.choice(_OCTETS)
    elif choice == 1:
        parts.insert(i, rng.choice(_OCTETS[:5]))
    elif len(parts) > 1:
        del parts[i]
    return ".".join(parts)


def _group(text: str, rng: random.Random) -> str:
    groups = text.split(":")
    choice = rng.randrange(5)
    i = rng.randrange(len(groups))
    if choice == 0:
        groups[i] = rng.choice(_GROUPS)
    elif choice == 1:
        groups.insert(i, rng.choice(_GROUPS[1:5]))
    elif choice == 2 and len(groups) > 1:
        del groups[i]
    elif choice == 3:
        return text.replace("::", ":::", 1) if "::" in text else text + "::"
    else:
        groups[i] = groups[i] + "::" if "::" not in text else groups[i]
    return ":".join(groups)


def _scope(text: str, rng: random.Random) -> str:
    base = text.partition("%")[0]
    return f"{base}%{rng.choice(_ZONES)}"


def _embed(text: str, rng: random.Random) -> str:
    v4 = text if "." in text and ":" not in text else rng.choice(["192.0.2.1", "1.2.3.4"])
    prefix = rng.choice(["::ffff:", "::", "64:ff9b::", "1:2:3:4:5:6:", "1:2:3:4:5:6:7:", ":"])
    return prefix + v4


def _wrap(text: str, rng: random.Random) -> str:
    return rng.choice(
        [
            f"[{text}]",
            f"{text}/{rng.choice(['0', '24', '64', '129'])}",
            f"{text}:{rng.choice(['80', '443', ''])}",
            f" {text}",
            f"{text} ",
            f"{text}\n",
            f"0x{text}",
        ]
    )


MUTATORS: dict[str, Callable[[str, random.Random], str]] = {
    "octet": _octet,
    "group": _group,
    "scope": _scope,
    "embed": _embed,
    "wrap": _wrap,
}
