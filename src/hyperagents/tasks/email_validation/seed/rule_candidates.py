"""Which features of the ``email_validation`` task the arena's rule synthesis tries.

``arena_candidates(addresses)`` lists the ``(feature, arg)`` pairs of the task's feature library
(``RULE_FEATURES`` of :mod:`hyperagents.tasks.email_validation._rules`) worth trying on the
addresses a code agent got wrong: the fixed ones, each Unicode category, each unusual character
in the local part, the domain or a quoted local part, each top-level domain seen. Run by the
``arena`` meta agent in the sandbox. Standalone: standard library only.
"""

from __future__ import annotations

from typing import Any

_CATEGORIES = ("Cc", "Cf", "Zs", "So", "Co", "Cn", "Mn")


def arena_candidates(addresses: list[str]) -> list[tuple[str, Any]]:
    """The features worth trying on these (failing) addresses."""
    found: list[tuple[str, Any]] = [
        ("local_len_gt", 64),
        ("label_len_gt", 63),
        ("length_gt", 254),
        ("local_edge_dot", ""),
        ("double_dot", "local"),
        ("double_dot", "domain"),
        ("label_edge_hyphen", ""),
        ("tld_numeric", ""),
        ("one_label", ""),
        ("quoted", ""),
        ("ipv4_literal", ""),
        ("ipv6_literal", ""),
        ("punycode_bad", ""),
        ("non_ascii_local", ""),
        ("non_ascii_domain", ""),
        ("local_outside_atext", ""),
        ("domain_outside_ldh", ""),
        ("empty_label", ""),
        ("tld_alpha", ""),
        ("quoted_bad", ""),
        ("domain_literal", ""),
        ("at_count_gt", 1),
        ("local_empty", ""),
    ]
    found += [("unicode_category", c) for c in _CATEGORIES]
    chars: set[str] = set()
    tlds: set[str] = set()
    for address in addresses:
        domain = address.rpartition("@")[2]
        chars.update(ch for ch in address if not ch.isalnum() or ord(ch) > 127)
        tlds.add(domain.rpartition(".")[2].lower()[:30])
    for ch in sorted(chars):
        found += [("local_has", ch), ("domain_has", ch), ("quoted_has", ch)]
    found += [("tld_is", t) for t in sorted(tlds) if t]
    return found
