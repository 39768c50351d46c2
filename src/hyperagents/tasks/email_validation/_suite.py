"""The ``email_validation`` task's labelled suite: hand-written edge cases and seeded mutations.

:data:`HAND_WRITTEN` covers, by category, what address syntax is made of: plain addresses, dots
in the local part, plus tags, the special characters RFC 5322 allows unquoted, quoted local parts,
IP literals, internationalised (IDN) local parts and domains, length limits, domain label
syntax, the structure around ``@``, whitespace and control characters, and special-use domains.
:func:`mutations` adds seeded variants of valid addresses (one edit each: a character inserted,
removed or doubled, a part dropped...), so that a solution cannot pass by listing the hand-written
cases. :func:`build_suite` labels every address with the trusted oracle; the labelled suite is
stored in ``suite.json`` beside this module, so loading the task needs no oracle, and a test
checks the file against the oracle.
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

_LONG_LABEL = "a" * 63
HAND_WRITTEN: dict[str, tuple[str, ...]] = {
    "basic": (
        "user@example.com",
        "john.smith@example.org",
        "x@x.co",
        "USER@EXAMPLE.COM",
        "user123@mail.example.net",
        "first_last@example.io",
        "a@b.cd",
        "info@sub.domain.example.co.uk",
        "user@example",
        "@example.com",
        "user@",
        "user",
        "",
        "user@@example.com",
        "user@exam@ple.com",
    ),
    "dots": (
        "first.middle.last@example.com",
        ".user@example.com",
        "user.@example.com",
        "us..er@example.com",
        "u.s.e.r@example.com",
        "user@example..com",
        "user@.example.com",
        "user@example.com.",
        "user.name.@example.com",
    ),
    "plus_tags": (
        "user+tag@example.com",
        "user+tag+more@example.com",
        "+user@example.com",
        "user+@example.com",
        "user+tag.sub@example.com",
        "user+t@g@example.com",
    ),
    "special_chars": (
        "user!def@example.com",
        "user#1@example.com",
        "us$er@example.com",
        "user%example.org@example.com",
        "user&co@example.com",
        "o'reilly@example.com",
        "user*star@example.com",
        "user/path@example.com",
        "user=eq@example.com",
        "user?q@example.com",
        "user^caret@example.com",
        "user`tick@example.com",
        "{user}@example.com",
        "user|pipe@example.com",
        "user~tilde@example.com",
        "user-dash@example.com",
        "user(comment)@example.com",
        "user,comma@example.com",
        "user:colon@example.com",
        "user;semi@example.com",
        "user<lt@example.com",
        "user>gt@example.com",
        "user[br]@example.com",
        "user\\back@example.com",
        'user"quote@example.com',
    ),
    "quoted_local": (
        '"john doe"@example.com',
        '"john..doe"@example.com',
        '".john"@example.com',
        '"john@doe"@example.com',
        '"john\\"doe"@example.com',
        '""@example.com',
        '"unterminated@example.com',
        'john."doe"@example.com',
        '"john"doe@example.com',
        '"a b c"@example.org',
        '"tab\there"@example.com',
    ),
    "ip_literal": (
        "user@[192.168.0.1]",
        "user@[127.0.0.1]",
        "user@[255.255.255.255]",
        "user@[256.1.1.1]",
        "user@[1.2.3]",
        "user@[IPv6:2001:db8::1]",
        "user@[IPv6:::1]",
        "user@[2001:db8::1]",
        "user@[IPv6:2001:db8::zz]",
        "user@192.168.0.1",
        "user@[192.168.0.1",
        "user@[example.com]",
    ),
    "idn": (
        "用户@例子.广告",
        "user@bücher.de",
        "müller@example.com",
        "josé@example.es",
        "user@xn--bcher-kva.de",
        "пользователь@пример.рф",
        "θσερ@εχαμπλε.ψομ",
        "user@例え.テスト",
        "user@ex\u200bample.com",
        "us\u200der@example.com",
        "user@xn--.com",
        "😀@example.com",
    ),
    "length": (
        "a" * 64 + "@example.com",
        "a" * 65 + "@example.com",
        f"user@{_LONG_LABEL}.com",
        f"user@{_LONG_LABEL}a.com",
        "user@" + ".".join([_LONG_LABEL] * 3) + ".com",
        "user@" + ".".join([_LONG_LABEL] * 4) + ".com",
        "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".com",
        "a@" + "b" * 240 + ".com",
    ),
    "domain_syntax": (
        "user@-example.com",
        "user@example-.com",
        "user@ex-ample.com",
        "user@ex--ample.com",
        "user@exa_mple.com",
        "user@example.c",
        "user@example.123",
        "user@123.example.com",
        "user@example.com-",
        "user@example!.com",
        "user@EXAMPLE.com",
        "user@e.x.a.m.p.l.e.com",
        "user@sub-domain.example.museum",
    ),
    "whitespace": (
        " user@example.com",
        "user@example.com ",
        "user name@example.com",
        "user@exam ple.com",
        "user\t@example.com",
        "user\n@example.com",
        "user@example.com\n",
        "user\x00@example.com",
        "us\x7fer@example.com",
    ),
    "special_use": (
        "user@localhost",
        "user@example.test",
        "user@example.invalid",
        "user@printer.local",
        "user@host.onion",
        "user@1.in-addr.arpa",
        "user@example.localhost",
    ),
}

#: Valid addresses the mutations start from.
_BASES = (
    "user@example.com",
    "john.smith@example.org",
    "user+tag@mail.example.net",
    "o'reilly@example.co.uk",
    "user@[192.168.0.1]",
    "müller@bücher.de",
    '"john doe"@example.com',
    "first_last@sub.example.io",
)
#: Characters the mutations insert: legal and illegal ones, around the hard cases.
_ALPHABET = ".@+-_\"' ()[]<>,;:\\!#$%&*/=?^`{|}~a1é\t"


def _mutate(address: str, rng: random.Random) -> str:
    """``address`` with one seeded edit."""
    at = address.rfind("@")
    kind = rng.randrange(7)
    i = rng.randrange(len(address) + 1)
    if kind == 0:  # insert a character
        return address[:i] + rng.choice(_ALPHABET) + address[i:]
    if kind == 1 and address:  # remove one
        i = min(i, len(address) - 1)
        return address[:i] + address[i + 1 :]
    if kind == 2 and address:  # double one
        i = min(i, len(address) - 1)
        return address[:i] + address[i] + address[i:]
    if kind == 3:  # a dot at either end of a part
        return rng.choice([f".{address}", address[:at] + ".@" + address[at + 1 :]])
    if kind == 4:  # a long local part
        return "x" * rng.choice([63, 64, 65, 70]) + address[at:]
    if kind == 5:  # a domain label at or past 63 characters
        return address[: at + 1] + "d" * rng.choice([62, 63, 64]) + ".com"
    return address.replace("@", rng.choice(["", "@@", " @", "@ "]), 1)  # the @ itself


def mutations(seed: int, n: int) -> list[str]:
    """``n`` distinct seeded mutations of valid addresses, none of them hand-written."""
    exclude = [*(a for group in HAND_WRITTEN.values() for a in group)]
    return distinct_mutations(seed, n, _BASES, _mutate, exclude)


def build_suite(label: Any, *, seed: int = 19, n_mutations: int = 300) -> list[dict[str, Any]]:
    """The labelled suite: every hand-written address and ``n_mutations`` seeded mutations,
    each ``{"address", "valid", "reason", "category"}``, labelled by ``label(text) -> (valid,
    reason)`` (the oracle)."""
    pairs = [(c, a) for c, group in HAND_WRITTEN.items() for a in group]
    pairs += [("mutation", a) for a in mutations(seed, n_mutations)]
    return label_rows(pairs, label, key="address")


def load_suite() -> list[dict[str, Any]]:
    """The stored labelled suite (``suite.json``)."""
    return read_suite(SUITE_FILE)


if __name__ == "__main__":  # python -m hyperagents.tasks.email_validation._suite
    from hyperagents.tasks.email_validation._oracle import oracle_label

    suite = build_suite(oracle_label)
    write_suite(SUITE_FILE, suite)
    print(f"{len(suite)} addresses, {sum(r['valid'] for r in suite)} valid -> {SUITE_FILE}")
