"""The ``email_validation`` task's features for the arena's rule synthesis.

:data:`RULE_FEATURES` is the feature library the ``arena`` meta agent tries on the addresses a
code agent gets wrong and writes into its task agent with its first rule: ``arena_feature(name,
arg, address)``, whether the address has a feature (a character in the local part or the
domain, a length past a limit, a dot or hyphen at an edge, an empty label, a top-level domain,
a well-formed IP literal, a quoted local part with an unescaped quote, a broken punycode
label...). It is kept as text, the source the task agent gets (functions only, standard
library only). ``seed/rule_candidates.py`` says which features to try.
"""

from __future__ import annotations

__all__ = ["RULE_FEATURES"]

RULE_FEATURES = '''def _arena_parts(address):
    at = address.rfind("@")
    return (address, "") if at < 0 else (address[:at], address[at + 1 :])


def _arena_ipv4(text):
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def _arena_punycode_bad(domain):
    for label in domain.lower().split("."):
        if label.startswith("xn--"):
            try:
                label[4:].encode("ascii").decode("punycode")
            except Exception:
                return True
            if not label[4:]:
                return True
    return False


def arena_feature(name, arg, address):
    """Whether ``address`` has the feature ``name`` (with ``arg``)."""
    import unicodedata

    local, domain = _arena_parts(address)
    quoted = len(local) >= 2 and local.startswith('"') and local.endswith('"')
    labels = domain.split(".")
    if name == "local_has":
        return not quoted and arg in local
    if name == "quoted_has":
        return quoted and arg in local[1:-1]
    if name == "domain_has":
        return arg in domain
    if name == "local_len_gt":
        return len(local.encode("utf-8")) > arg
    if name == "label_len_gt":
        return any(len(label) > arg for label in labels)
    if name == "length_gt":
        return len(address.encode("utf-8")) > arg
    if name == "local_edge_dot":
        return not quoted and (local.startswith(".") or local.endswith("."))
    if name == "double_dot":
        part = local if arg == "local" and not quoted else domain if arg == "domain" else ""
        return ".." in part
    if name == "label_edge_hyphen":
        return any(label.startswith("-") or label.endswith("-") for label in labels)
    if name == "tld_numeric":
        return labels[-1].isdigit()
    if name == "tld_is":
        return labels[-1].lower() == arg
    if name == "one_label":
        return "." not in domain and not domain.startswith("[")
    if name == "quoted":
        return quoted
    if name == "ipv4_literal":
        return domain.startswith("[") and domain.endswith("]") and _arena_ipv4(domain[1:-1])
    if name == "ipv6_literal":
        inner = domain[1:-1]
        if not (domain.startswith("[IPv6:") and domain.endswith("]")):
            return False
        import ipaddress

        try:
            ipaddress.IPv6Address(inner[5:])
        except ValueError:
            return False
        return True
    if name == "punycode_bad":
        return _arena_punycode_bad(domain)
    if name == "unicode_category":
        return any(unicodedata.category(ch) == arg for ch in address)
    if name == "non_ascii_local":
        return any(ord(ch) > 127 for ch in local)
    if name == "non_ascii_domain":
        return any(ord(ch) > 127 for ch in domain)
    if name == "local_outside_atext":
        return not quoted and any(ch not in _ARENA_ATEXT and ord(ch) < 128 for ch in local)
    if name == "domain_outside_ldh":
        inner = domain[1:-1] if domain.startswith("[") and domain.endswith("]") else domain
        return any(ch not in _ARENA_LDH and ord(ch) < 128 for ch in inner)
    if name == "empty_label":
        return "" in labels and not domain.startswith("[")
    if name == "tld_alpha":
        return labels[-1].isalpha()
    if name == "quoted_bad":
        inner = local[1:-1] if quoted else ""
        return quoted and (_arena_unescaped(inner) or any(ord(ch) < 32 for ch in inner))
    if name == "domain_literal":
        return domain.startswith("[")
    if name == "at_count_gt":
        return address.count("@") > arg
    if name == "local_empty":
        return local == "" or local == '""'
    return False


_ARENA_LDH = set("abcdefghijklmnopqrstuvwxyz" "ABCDEFGHIJKLMNOPQRSTUVWXYZ" "0123456789-.")
_ARENA_ATEXT = _ARENA_LDH | set("!#$%&'*+/=?^_`{|}~")


def _arena_unescaped(inner):
    escaped = False
    for ch in inner:
        if escaped:
            escaped = False
        elif ch == chr(92):  # a backslash
            escaped = True
        elif ch == '"':
            return True
    return escaped
'''
