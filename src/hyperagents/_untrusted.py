"""Showing text an agent wrote (file contents, diffs, reasons, meta info, feedback, event
messages) to a person without letting it act on their terminal.

A terminal obeys what it prints: ``ESC ] 0 ; … BEL`` sets the window title, ``ESC ] 52`` writes
the clipboard, ``ESC [ 2 A`` moves the cursor up (over lines already shown), ``ESC ] 8`` makes
links, a carriage return or a backspace overwrites, and the bidirectional overrides
(U+202A-U+202E, U+2066-U+2069) reorder what is read. An agent that writes them can hide or forge
lines in the very output a person approves from. :func:`printable` shows every such character
as a visible escape (``\\x1b``, ``\\u202e``) instead; newline and tab, which text legitimately
holds, are kept.

Rich markup (``[bold red]…[/]``) is the other half: the command line passes agent text to Rich
as :class:`rich.text.Text` (or through :func:`rich.markup.escape`), never as markup.
"""

from __future__ import annotations

import re

__all__ = ["BIDI_CONTROLS", "printable"]

#: Characters that reorder the display of text around them (embeddings, overrides, isolates,
#: and the invisible marks that steer them).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

_KEPT = "\t\n"
_C0_C1 = "".join(chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)) if chr(c) not in _KEPT)
_UNSAFE = re.compile(f"[{re.escape(_C0_C1 + BIDI_CONTROLS)}]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` (any value, as ``str``) with every control character shown as an escape.

    C0 and C1 control characters (ESC, BEL, CR, backspace, DEL, CSI…) and the bidirectional
    controls become ``\\xNN`` / ``\\uNNNN``; newline and tab stay; a Windows line end
    (``\\r\\n``) becomes a newline. Nothing else changes, so plain text comes back equal.

    Args:
        text: What an agent wrote (a non-string is shown as ``str(text)``).

    Returns:
        Text safe to write to a terminal (still to be kept out of Rich markup).
    """
    shown = text if isinstance(text, str) else str(text)
    if "\r\n" in shown:
        shown = shown.replace("\r\n", "\n")
    return _UNSAFE.sub(_escaped, shown)
