"""The ``email_validation`` task's own mutators for the arena's test agents (``MUTATORS``).

Each ``mutate(address, rng)`` returns ``address`` after one edit of its kind:

* ``dots``: a dot at the edge of a part, doubled, or a trailing dot of the domain;
* ``quoting``: the local part quoted, a quote or backslash escape inside it, unbalanced quotes;
* ``idn``: non-ASCII letters, punycode (``xn--``) labels, zero-width characters, emoji;
* ``ip``: the domain as an IPv4 or IPv6 literal (octets out of range, missing brackets, the
  ``IPv6:`` tag dropped);
* ``length``: a local part, a domain label or the whole address around its length limit;
* ``structure``: the ``@`` doubled, moved or dropped, hyphens at label edges, numeric or
  one-letter top-level domains, special-use domains, underscores, comments.

The seed test agent adds them to its generic ``char`` edit. Standalone: standard library only,
deterministic given ``rng``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

_UNICODE = ("ü", "é", "ß", "例", "д", "θ", "😀", "\u200b", "\u200d", "ı", "Å")
_SPECIAL_TLDS = ("localhost", "test", "invalid", "local", "onion", "example", "arpa", "internal")


def _split(address: str) -> tuple[str, str]:
    at = address.rfind("@")
    return (address, "") if at < 0 else (address[:at], address[at + 1 :])


def _dots(address: str, rng: random.Random) -> str:
    local, domain = _split(address)
    choice = rng.randrange(6)
    if choice == 0:
        return f".{local}@{domain}"
    if choice == 1:
        return f"{local}.@{domain}"
    if choice == 2 and local:
        i = rng.randrange(len(local) + 1)
        return f"{local[:i]}..{local[i:]}@{domain}"
    if choice == 3:
        return f"{local}@{domain}."
    if choice == 4:
        return f"{local}@.{domain}"
    return f"{local}@{domain.replace('.', '..', 1)}"


def _quoting(address: str, rng: random.Random) -> str:
    local, domain = _split(address)
    inner = rng.choice(["", " ", "..", "@", '\\"', "\\\\", ",", "\t", "a b", "()", '"'])
    choice = rng.randrange(5)
    if choice == 0:
        return f'"{local}"@{domain}'
    if choice == 1:
        return f'"{local}{inner}"@{domain}'
    if choice == 2:
        return f'"{local}@{domain}'
    if choice == 3:
        return f'{local}."{inner}"@{domain}'
    return f'"{inner}"@{domain}'


def _idn(address: str, rng: random.Random) -> str:
    local, domain = _split(address)
    choice = rng.randrange(4)
    if choice == 0 and local:
        i = rng.randrange(len(local) + 1)
        return f"{local[:i]}{rng.choice(_UNICODE)}{local[i:]}@{domain}"
    if choice == 1 and domain:
        i = rng.randrange(len(domain) + 1)
        return f"{local}@{domain[:i]}{rng.choice(_UNICODE)}{domain[i:]}"
    if choice == 2:
        label = rng.choice(["xn--bcher-kva", "xn--", "xn--a", "xn--80ak6aa92e", "xn--zz"])
        return f"{local}@{label}.{domain.rpartition('.')[2] or 'com'}"
    return f"{local}@{rng.choice(['例え', 'пример', 'bücher'])}.{rng.choice(['рф', 'de', 'com'])}"


def _ip(address: str, rng: random.Random) -> str:
    local, _ = _split(address)
    octets = [str(rng.choice([0, 1, 10, 127, 192, 255, 256, 300, 999])) for _ in range(4)]
    choice = rng.randrange(6)
    if choice == 0:
        return f"{local}@[{'.'.join(octets)}]"
    if choice == 1:
        return f"{local}@[{'.'.join(octets[:3])}]"
    if choice == 2:
        return f"{local}@{'.'.join(octets)}"
    if choice == 3:
        tail = rng.choice(["2001:db8::1", "::1", "2001:db8::zz", "1:2:3:4:5:6:7:8", "fe80::1%1"])
        return f"{local}@[IPv6:{tail}]"
    if choice == 4:
        return f"{local}@[{rng.choice(['2001:db8::1', '::1'])}]"
    return f"{local}@[{'.'.join(octets)}"


def _length(address: str, rng: random.Random) -> str:
    local, domain = _split(address)
    choice = rng.randrange(4)
    if choice == 0:
        return "x" * rng.choice([62, 63, 64, 65, 66, 80]) + "@" + domain
    if choice == 1:
        return f"{local}@" + "d" * rng.choice([61, 62, 63, 64, 65]) + ".com"
    if choice == 2:
        labels = ["l" * 63] * rng.choice([3, 4]) + ["c" * rng.choice([57, 58, 59, 61, 62])]
        return f"{local}@" + ".".join(labels)
    return f"{local}@" + "b" * rng.choice([1, 2, 200, 240, 250]) + ".com"


def _structure(address: str, rng: random.Random) -> str:
    local, domain = _split(address)
    head, _, tld = domain.rpartition(".")
    choice = rng.randrange(9)
    options: list[str] = [
        f"{local}@@{domain}",
        f"{local}{domain}",
        f"{local}@-{domain}" if rng.random() < 0.5 else f"{local}@{head}-.{tld}",
        f"{local}@{head}.{rng.choice(['1', '123', 'c', 'co1', 'x-y'])}",
        f"{local}@{head or domain}",
        f"{local}@{head}.{rng.choice(_SPECIAL_TLDS)}",
        f"{local}@{head.replace('.', '_', 1) or 'a_b'}.{tld}",
        f"{local}(comment)@{domain}",
        f"{local}@{domain}@{domain}",
    ]
    return options[choice]


MUTATORS: dict[str, Callable[[str, random.Random], str]] = {
    "dots": _dots,
    "quoting": _quoting,
    "idn": _idn,
    "ip": _ip,
    "length": _length,
    "structure": _structure,
}
