"""Agent-written text shown to a person: every control character is made visible."""

from __future__ import annotations

import pytest

from hyperagents._untrusted import BIDI_CONTROLS, printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # window title
        ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),  # clipboard write
        ("\x1b[2A", "\\x1b[2A"),  # cursor up
        (
            "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\",
            "\\x1b]8;;http://x\\x1b\\link\\x1b]8;;\\x1b\\",
        ),
        ("\u202eevil", "\\u202eevil"),  # right-to-left override
        ("\x9b31m", "\\x9b31m"),  # the one-byte CSI (C1)
        ("ok\rforged", "ok\\x0dforged"),  # a carriage return overwrites the line
        ("a\bb\x7f", "a\\x08b\\x7f"),
    ],
)
def test_control_characters_are_shown_as_escapes(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_plain_text_newlines_tabs_and_unicode_stay() -> None:
    text = "def f(x):\n\treturn 'héllo ✓ 实验'  # [bold]not markup here[/]\n"
    assert printable(text) == text
    assert printable("one\r\ntwo\r\n") == "one\ntwo\n"  # a Windows line end is a line end
    assert printable(12) == "12"


def test_every_bidi_control_is_escaped() -> None:
    shown = printable(BIDI_CONTROLS)
    assert not any(c in shown for c in BIDI_CONTROLS)
    assert shown.count("\\u") == len(BIDI_CONTROLS)
