"""The ``ip_validation`` task's labelled suite: hand-written edge cases and seeded mutations.

:data:`HAND_WRITTEN` covers, by category, what IP address text is made of: plain IPv4
addresses, octets out of range, the dotted shape, leading zeros and other notations, plain and
full IPv6 addresses, ``::`` compression and the group count, group syntax, embedded IPv4
tails, scope ids, and what surrounds an address (whitespace, brackets, prefixes, non-ASCII
digits). :func:`mutations` adds seeded one-edit variants of valid addresses, so that a
solution cannot pass by listing the hand-written cases. :func:`build_suite` labels every
string with the trusted oracle; the labelled suite is stored in ``suite.json`` beside this
module, and a test checks the file against the oracle.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hyperagents.tasks._labelled import (
    distinct_mutations,
    label_rows,
    read_suite,
    write_suite,
)

__all__ = ["HAND_WRITTEN", "SUITE_FILE", "build_suite", "load_suite", "mutations"]

SUITE_FILE = Path(__file__).with_name("suite.json")

HAND_WRITTEN: dict[str, tuple[str, ...]] = {
    "ipv4_basic": (
        "192.168.0.1",
        "10.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "127.0.0.1",
        "8.8.8.8",
        "1.2.3.4",
        "100.64.0.1",
        "172.16.254.3",
        "203.0.113.7",
    ),
    "ipv4_range": (
        "256.1.1.1",
        "1.2.3.256",
        "999.1.1.1",
        "1.2.3.-1",
        "300.300.300.300",
        "255.255.255.256",
        "1.2.3.1000",
        "4294967295.0.0.0",
    ),
    "ipv4_shape": (
        "1.2.3",
        "1.2.3.4.5",
        "1..2.3",
        ".1.2.3",
        "1.2.3.",
        "1.2.3.4.",
        "",
        "1234",
        "16843009",
        "1.2.3.4/24",
        "1.2.3.4:80",
    ),
    "ipv4_notation": (
        "01.2.3.4",
        "1.2.3.04",
        "0.0.0.00",
        "010.010.010.010",
        "1.2.3.0",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "1.2.3.4e0",
        "+1.2.3.4",
        "1.2.3.+4",
    ),
    "ipv6_basic": (
        "::1",
        "::",
        "2001:db8::1",
        "fe80::1",
        "2001:0db8:0000:0000:0000:ff00:0042:8329",
        "1:2:3:4:5:6:7:8",
        "FE80::1",
        "2001:DB8::A",
        "ff02::2",
        "2001:db8:85a3::8a2e:370:7334",
    ),
    "ipv6_compression": (
        "1::2::3",
        ":::",
        "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7",
        "1:2:3:4:5:6:7::",
        "::1:2:3:4:5:6:7",
        "1::",
        ":1::2",
        "1::2:",
        "1:2:3:4:5:6:7:8::",
        "::1:2:3:4:5:6:7:8",
        "1:2:3:4::5:6:7:8",
    ),
    "ipv6_groups": (
        "12345::1",
        "2001:db8::g",
        "2001:db8::00001",
        "2001:db8:::1",
        "0000:0000:0000:0000:0000:0000:0000:0001",
        "2001:db8::-1",
        "2001:db8:: 1",
        "2001:db8::0x1",
        "fffff::",
        "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
    ),
    "ipv6_embedded": (
        "::ffff:192.168.0.1",
        "::ffff:256.1.1.1",
        "::192.168.0.1",
        "1:2:3:4:5:6:1.2.3.4",
        "1:2:3:4:5:6:7:1.2.3.4",
        "::ffff:1.2.3",
        "64:ff9b::192.0.2.33",
        "::ffff:01.2.3.4",
        "1.2.3.4::",
        "::1.2.3.4:5",
    ),
    "ipv6_scope": (
        "fe80::1%eth0",
        "fe80::1%1",
        "fe80::1%",
        "fe80::1%%1",
        "::1%lo",
        "1.2.3.4%eth0",
        "fe80::1%eth0%1",
        "fe80::1%a/b",
        "%eth0",
    ),
    "surroundings": (
        " 1.2.3.4",
        "1.2.3.4 ",
        "[::1]",
        "1.2.3.4\n",
        "\uff11.\uff12.\uff13.\uff14",
        "\u0661.\u0662.\u0663.\u0664",
        "1,2,3,4",
        "localhost",
        "1.2.3.4a",
        "a.b.c.d",
        "1 .2.3.4",
        "::1 ",
        "http://1.2.3.4",
        "1.2.3.4\x00",
    ),
}

#: Valid addresses the mutations start from.
_BASES = (
    "192.168.0.1",
    "10.0.0.255",
    "8.8.4.4",
    "2001:db8::1",
    "fe80::1%eth0",
    "::ffff:192.0.2.1",
    "2001:db8:85a3:0:0:8a2e:370:7334",
    "::1",
)
#: Characters the mutations insert.
_ALPHABET = "0123456789.:abcdefgx%/ []-"


def _mutate(text: str, rng: random.Random) -> str:
    """``text`` with one seeded edit."""
    kind = rng.randrange(6)
    i = rng.randrange(len(text) + 1)
    if kind == 0:  # insert a character
        return text[:i] + rng.choice(_ALPHABET) + text[i:]
    if kind == 1 and text:  # remove one
        i = min(i, len(text) - 1)
        return text[:i] + text[i + 1 :]
    if kind == 2 and text:  # double one
        i = min(i, len(text) - 1)
        return text[:i] + text[i] + text[i:]
    if kind == 3:  # a number part bumped past its limit, or given a leading zero
        parts = text.split(".")
        j = rng.randrange(len(parts))
        parts[j] = rng.choice(["256", "0" + parts[j], "999", ""])
        return ".".join(parts)
    if kind == 4:  # an IPv6 group too long or dropped
        groups = text.split(":")
        j = rng.randrange(len(groups))
        groups[j] = rng.choice(["fffff", "", "0", "g1"])
        return ":".join(groups)
    return text.replace(".", ":", 1) if rng.random() < 0.5 else text.replace(":", ".", 1)


def mutations(seed: int, n: int) -> list[str]:
    """``n`` distinct seeded mutations of valid addresses, none of them hand-written."""
    exclude = [*(a for group in HAND_WRITTEN.values() for a in group), *_BASES]
    return distinct_mutations(seed, n, _BASES, _mutate, exclude)


def build_suite(label: Any, *, seed: int = 19, n_mutations: int = 240) -> list[dict[str, Any]]:
    """The labelled suite: every hand-written string and ``n_mutations`` seeded mutations,
    each ``{"ip", "valid", "reason", "category"}``, labelled by ``label(text) -> (valid,
    reason)`` (the oracle)."""
    pairs = [(c, a) for c, group in HAND_WRITTEN.items() for a in group]
    pairs += [("mutation", a) for a in mutations(seed, n_mutations)]
    return label_rows(pairs, label, key="ip")


def load_suite() -> list[dict[str, Any]]:
    """The stored labelled suite (``suite.json``)."""
    return read_suite(SUITE_FILE)


if __name__ == "__main__":  # python -m hyperagents.tasks.ip_validation._suite
    from hyperagents.tasks.ip_validation._oracle import oracle_label

    suite = build_suite(oracle_label)
    write_suite(SUITE_FILE, suite)
    print(f"{len(suite)} strings, {sum(r['valid'] for r in suite)} valid -> {SUITE_FILE}")
