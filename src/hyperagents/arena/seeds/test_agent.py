"""Seed test agent of the arena on ``email_validation``: seeded mutations of email addresses.

``propose(history, n, seed)`` returns ``n`` candidate inputs (strings), each a valid base
address (or an input of ``history`` that broke a code agent) after one to ``max_edits`` edits,
the kind of each edit drawn by the weights of ``PARAMS``:

* ``char``: a character inserted, removed, doubled or swapped (from an alphabet of legal,
  illegal, control and non-ASCII characters);
* ``dots``: a dot at the edge of a part, doubled, or a trailing dot of the domain;
* ``quoting``: the local part quoted, a quote or backslash escape inside it, unbalanced quotes;
* ``idn``: non-ASCII letters, punycode (``xn--``) labels, zero-width characters, emoji;
* ``ip``: the domain as an IPv4 or IPv6 literal (octets out of range, missing brackets, the
  ``IPv6:`` tag dropped);
* ``length``: a local part, a domain label or the whole address around its length limit;
* ``structure``: the ``@`` doubled, moved or dropped, hyphens at label edges, numeric or
  one-letter top-level domains, special-use domains, underscores, comments.

``history`` is a list of ``{"input": str, "hard": bool}`` (whether the input broke a code
agent); with probability ``PARAMS["exploit"]`` an edit starts from a hard input rather than a
base. No labels are given: the engine labels every input with the task's oracle.
Standalone: standard library only, deterministic given ``seed``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

PARAMS = {
    "w_char": 1.0,
    "w_dots": 1.0,
    "w_quoting": 1.0,
    "w_idn": 1.0,
    "w_ip": 1.0,
    "w_length": 1.0,
    "w_structure": 1.0,
    "max_edits": 2,
    "exploit": 0.3,
}

PARAM_SPACE = {
    "w_char": {"type": "float", "low": 0.0, "high": 4.0},
    "w_dots": {"type": "float", "low": 0.0, "high": 4.0},
    "w_quoting": {"type": "float", "low": 0.0, "high": 4.0},
    "w_idn": {"type": "float", "low": 0.0, "high": 4.0},
    "w_ip": {"type": "float", "low": 0.0, "high": 4.0},
    "w_length": {"type": "float", "low": 0.0, "high": 4.0},
    "w_structure": {"type": "float", "low": 0.0, "high": 4.0},
    "max_edits": {"type": "int", "low": 1, "high": 4},
    "exploit": {"type": "float", "low": 0.0, "high": 1.0},
}

#: Valid addresses the edits start from.
BASES = (
    "user@example.com",
    "john.smith@example.org",
    "user+tag@mail.example.net",
    "o'reilly@example.co.uk",
    "first_last@sub.example.io",
    "a.b-c@d-e.example.info",
    "x@ex.co",
    "info@company.museum",
)
_ALPHABET = ".@+-_\"' ()[]<>,;:\\!#$%&*/=?^`{|}~a1é\t\x00\x7fü€"
_UNICODE = ("ü", "é", "ß", "例", "д", "θ", "😀", "\u200b", "\u200d", "ı", "Å")
_SPECIAL_TLDS = ("localhost", "test", "invalid", "local", "onion", "example", "arpa", "internal")
#: Longest input proposed (characters).
MAX_CHARS = 400


def _split(address: str) -> tuple[str, str]:
    at = address.rfind("@")
    return (address, "") if at < 0 else (address[:at], address[at + 1 :])


def _char(address: str, rng: random.Random) -> str:
    i = rng.randrange(len(address) + 1)
    kind = rng.randrange(4)
    if kind == 0 or not address:
        return address[:i] + rng.choice(_ALPHABET) + address[i:]
    i = min(i, len(address) - 1)
    if kind == 1:
        return address[:i] + address[i + 1 :]
    if kind == 2:
        return address[:i] + address[i] + address[i:]
    j = min(i + 1, len(address) - 1)
    return address[:i] + address[j] + address[i] + address[j + 1 :]


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
    "char": _char,
    "dots": _dots,
    "quoting": _quoting,
    "idn": _idn,
    "ip": _ip,
    "length": _length,
    "structure": _structure,
}


def mutate(address: str, rng: random.Random, params: dict[str, Any] | None = None) -> str:
    """``address`` after one to ``max_edits`` seeded edits of kinds drawn by the weights."""
    p = PARAMS if params is None else params
    names = list(MUTATORS)
    weights = [max(0.0, float(p.get(f"w_{name}", 1.0))) for name in names]
    if sum(weights) <= 0:
        weights = [1.0] * len(names)
    for _ in range(rng.randint(1, max(1, int(p.get("max_edits", 1))))):
        address = MUTATORS[rng.choices(names, weights)[0]](address, rng)
    return address[:MAX_CHARS]


def propose(history: list[Any], n: int, seed: int) -> list[str]:
    """``n`` distinct candidate inputs (fewer if they keep repeating), deterministic in
    ``seed``; inputs in ``history`` that broke a code agent are starting points."""
    rng = random.Random(seed)
    hard = [h["input"] for h in history if isinstance(h, dict) and h.get("hard")]
    hard = [h for h in hard if isinstance(h, str)]
    seen = {h.get("input") for h in history if isinstance(h, dict)}
    found: list[str] = []
    for _ in range(max(0, n) * 20):
        if len(found) >= n:
            break
        exploit = hard and rng.random() < float(PARAMS.get("exploit", 0.0))
        start = rng.choice(hard) if exploit else rng.choice(BASES)
        candidate = mutate(start, rng)
        if candidate not in seen:
            seen.add(candidate)
            found.append(candidate)
    return found
