"""Seed task agent of the ``ip_validation`` task: a naive IP address validator.

``solve(inputs)`` receives ``{"ip": str}`` and returns True when it takes the string for a
valid IPv4 or IPv6 address. The seed accepts four dot-separated runs of digits, then applies
the checks its ``PARAMS`` switch on; with the seed's values they are all off (no octet range,
leading zeros allowed, no IPv6 at all). ``PARAM_SPACE`` declares the range of each parameter
for the meta agent that tunes them. Standalone: standard library only, deterministic, reads
``PARAMS`` at call time.
"""

from __future__ import annotations

import re
from typing import Any

PARAMS = {
    "check_octet_range": False,
    "reject_leading_zeros": False,
    "allow_ipv6": False,
    "check_group_count": False,
    "max_group_digits": 8,
    "allow_embedded_ipv4": False,
    "allow_scope_id": False,
}

PARAM_SPACE = {
    "check_octet_range": {"type": "bool", "feature": "ip"},
    "reject_leading_zeros": {"type": "bool", "feature": "ip"},
    "allow_ipv6": {"type": "bool", "feature": "ip"},
    "check_group_count": {"type": "bool", "feature": "ip"},
    "max_group_digits": {"type": "int", "low": 1, "high": 8, "feature": "ip"},
    "allow_embedded_ipv4": {"type": "bool", "feature": "ip"},
    "allow_scope_id": {"type": "bool", "feature": "ip"},
}

_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:]+$")


def _ipv4(text: str, p: dict[str, Any]) -> bool:
    if not _IPV4.match(text):
        return False
    octets = text.split(".")
    if p["check_octet_range"] and any(int(o) > 255 for o in octets):
        return False
    return not (p["reject_leading_zeros"] and any(len(o) > 1 and o[0] == "0" for o in octets))


def _ipv6(text: str, p: dict[str, Any]) -> bool:
    if "%" in text:
        text, _, zone = text.partition("%")
        if not p["allow_scope_id"] or not zone:
            return False
    head, _, tail = text.rpartition(":")
    extra = 0
    if "." in tail:
        if not p["allow_embedded_ipv4"] or not _ipv4(tail, p):
            return False
        text, extra = head + ":0", 1
    if not _IPV6.match(text):
        return False
    groups = text.split(":")
    if any(len(g) > p["max_group_digits"] for g in groups):
        return False
    if p["check_group_count"]:
        if text.count("::") > 1:
            return False
        filled = [g for g in groups if g]
        return len(filled) + extra <= 8 if "::" in text else len(groups) + extra == 8
    return True


def solve(inputs: dict[str, Any]) -> bool:
    """Whether ``inputs["ip"]`` looks like a valid IP address."""
    p: dict[str, Any] = PARAMS
    text = inputs.get("ip") if isinstance(inputs, dict) else None
    if not isinstance(text, str):
        return False
    if _ipv4(text, p):
        return True
    return bool(p["allow_ipv6"] and ":" in text and _ipv6(text, p))
