"""The trusted oracle of the ``ip_validation`` task: the standard library's ``ipaddress``.

The policy (:data:`POLICY`): a string is valid when :func:`ipaddress.ip_address` accepts it,
as an IPv4 address (four decimal octets of at most 255, no leading zeros, ASCII digits only)
or an IPv6 address (RFC 4291 text forms: eight groups of at most four hex digits, one ``::``,
an embedded dotted IPv4 tail, a ``%zone`` scope id), with nothing around it: no brackets,
prefix lengths, ports or whitespace. The reason for an invalid string is the parser's own
message (of :class:`ipaddress.IPv6Address` when the string has a colon, else of
:class:`ipaddress.IPv4Address`).

It is the one source of labels: the fixed suite was labelled by it
(:func:`hyperagents.tasks.ip_validation._suite.build_suite`) and the arena's new inputs are
labelled by it, in the engine, never by an agent. Its behaviour is that of the running Python
(3.11 here); a test checks the stored labels against it.
"""

from __future__ import annotations

import ipaddress
import platform

__all__ = ["POLICY", "oracle_label", "oracle_version"]

POLICY = "ipaddress.ip_address(text) accepts text (a str), nothing stripped"


def oracle_version() -> str:
    """The Python whose ``ipaddress`` labels (its version)."""
    return f"python {platform.python_version()}"


def oracle_label(text: str) -> tuple[bool, str]:
    """Whether ``text`` is a valid IPv4 or IPv6 address under :data:`POLICY`, and why not
    ("" when valid)."""
    if not isinstance(text, str):
        return False, "not a string"
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return True, ""
    parser = ipaddress.IPv6Address if ":" in text else ipaddress.IPv4Address
    try:
        parser(text)
    except ValueError as exc:
        return False, str(exc)
    return False, "not an IPv4 or IPv6 address"  # pragma: no cover - the parsers agree
