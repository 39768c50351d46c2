"""Seed task agent of the ``email_validation`` task: a naive regular-expression validator.

``solve(inputs)`` receives ``{"address": str}`` and returns True when it takes the address for
a valid email address. The seed accepts ``something@something.something`` without spaces
(``_SHAPE``), then applies the checks its ``PARAMS`` switch on; with the seed's values most are
off (no length limits, no dot rules, no quoted local parts, IP literals or Unicode).
``PARAM_SPACE`` declares the range of each parameter for the meta agent that tunes them.
Standalone: standard library only, deterministic, reads ``PARAMS`` at call time.
"""

from __future__ import annotations

import re
from typing import Any

PARAMS = {
    "max_local_length": 1000,
    "max_label_length": 1000,
    "min_tld_length": 1,
    "allow_quoted": False,
    "allow_ip_literal": False,
    "allow_unicode": False,
    "reject_dot_edges": False,
    "reject_special_use": False,
}

PARAM_SPACE = {
    "max_local_length": {"type": "int", "low": 1, "high": 1000, "feature": "address"},
    "max_label_length": {"type": "int", "low": 1, "high": 1000, "feature": "address"},
    "min_tld_length": {"type": "int", "low": 1, "high": 6, "feature": "address"},
    "allow_quoted": {"type": "bool", "feature": "address"},
    "allow_ip_literal": {"type": "bool", "feature": "address"},
    "allow_unicode": {"type": "bool", "feature": "address"},
    "reject_dot_edges": {"type": "bool", "feature": "address"},
    "reject_special_use": {"type": "bool", "feature": "address"},
}

_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_QUOTED = re.compile(r'^"[^"\\\t\n]+"@[^@\s]+\.[^@\s]+$')
_IP_LITERAL = re.compile(r"^[^@\s]+@\[(\d{1,3}\.){3}\d{1,3}\]$")
_SPECIAL = ("localhost", "test", "invalid", "local", "onion", "arpa")


def _has_unicode(text: str) -> bool:
    return any(ord(ch) > 127 for ch in text)


def solve(inputs: dict[str, Any]) -> bool:
    """Whether ``inputs["address"]`` looks like a valid email address."""
    p: dict[str, Any] = PARAMS
    address = inputs.get("address") if isinstance(inputs, dict) else None
    if not isinstance(address, str):
        return False
    if p["allow_ip_literal"] and _IP_LITERAL.match(address):
        return True
    quoted = bool(p["allow_quoted"] and _QUOTED.match(address))
    if not quoted and not _SHAPE.match(address):
        return False
    if not p["allow_unicode"] and _has_unicode(address):
        return False
    local, _, domain = address.rpartition("@")
    if len(local) > p["max_local_length"]:
        return False
    labels = domain.split(".")
    if any(len(label) > p["max_label_length"] for label in labels):
        return False
    if len(labels[-1]) < p["min_tld_length"]:
        return False
    dot_edges = local.startswith(".") or local.endswith(".") or ".." in address
    if p["reject_dot_edges"] and not quoted and dot_edges:
        return False
    return not (p["reject_special_use"] and labels[-1].lower() in _SPECIAL)
