"""Which generic features (``rule_features.py``) the arena's rule synthesis tries.

``arena_candidates(texts)`` lists the ``(feature, arg)`` pairs worth trying on the inputs a
code agent got wrong: each of their characters (anywhere, first, last, doubled), their lengths,
for each punctuation character they hold taken as a separator the part counts seen, part
lengths, empty parts, leading zeros and numbers past 255, and the character classes. Run by the
``arena`` meta agent in the sandbox. Standalone: standard library only.
"""

from __future__ import annotations

from typing import Any

#: Unicode categories tried (control, format, space, symbol, private use, unassigned, marks).
_CATEGORIES = ("Cc", "Cf", "Zs", "So", "Co", "Cn", "Mn")
#: The most characters and separators tried.
_MOST = 40


def arena_candidates(texts: list[str]) -> list[tuple[str, Any]]:
    """The features worth trying on these (failing) inputs."""
    found: list[tuple[str, Any]] = [("non_ascii", ""), ("space", "")]
    found += [("unicode_category", c) for c in _CATEGORIES]
    chars = sorted({ch for text in texts for ch in text})[:_MOST]
    for ch in chars:
        found += [("has", ch), ("starts", ch), ("ends", ch), ("doubled", ch)]
    found += [("length_gt", n - 1) for n in sorted({len(text) for text in texts})[:_MOST]]
    separators = [ch for ch in chars if not ch.isalnum() and not ch.isspace()]
    for sep in separators:
        counts = sorted({len(text.split(sep)) for text in texts if sep in text})
        found += [("parts_ne", [sep, n]) for n in counts[:8]]
        found += [("part_len_gt", [sep, n]) for n in range(1, 9)]
        found += [("part_empty", sep), ("part_leading_zero", sep), ("part_num_gt", [sep, 255])]
    return found
