"""A policy file that does not parse is refused with one line that says where:
``FILE:LINE:COLUMN: what`` (the command line prints only an error's first line)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hyperagents.constitution import load_constitution
from hyperagents.exceptions import ConfigError


def _error(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_constitution(path)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    ("text", "line", "column", "what"),
    [
        ("rules: [unclosed\n", 2, 1, "expected ',' or ']'"),
        ("rules:\n  - kind: size\n    max_file_bytes: 1\n   x: [\n", 4, 4, "expected <block end>"),
        ("rules:\n\t- kind: size\n", 2, 1, "found character '\\t'"),
        ('penalty: "unterminated\n', 2, 1, "unexpected end of stream"),
    ],
)
def test_yaml_errors_say_file_line_and_column(
    tmp_path: Path, text: str, line: int, column: int, what: str
) -> None:
    path = tmp_path / "policy.yaml"
    message = _error(path, text)
    assert message.startswith(f"{path}:{line}:{column}: not valid YAML: "), message
    assert what in message


def test_yaml_error_names_where_the_open_construct_started(tmp_path: Path) -> None:
    message = _error(tmp_path / "policy.yml", "penalty: 2.0\nrules: [unclosed\n")
    assert message.endswith("(while parsing a flow sequence at line 2, column 8)"), message


@pytest.mark.parametrize(
    ("text", "line", "column", "what"),
    [
        ("[[rule]\nkind = 1\n", 1, 7, "Expected ']]' at the end of an array declaration"),
        ("penalty = 2.0\n[[rule]]\nkind = \n", 3, 8, "Invalid value"),
        ("penalty = 2.0\npenalty = 3.0\n", 2, 14, "Cannot overwrite a value"),
        ('penalty = 2.0\nname = "unterminated', 2, 21, "Unterminated string"),
    ],
)
def test_toml_errors_say_file_line_and_column(
    tmp_path: Path, text: str, line: int, column: int, what: str
) -> None:
    path = tmp_path / "policy.toml"
    message = _error(path, text)
    assert message == f"{path}:{line}:{column}: not valid TOML: {what}", message


def test_the_command_line_shows_where(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hyperagents.cli import app

    path = tmp_path / "rules.yaml"
    path.write_text("rules: [unclosed\n", encoding="utf-8")
    shown = CliRunner().invoke(
        app,
        ["run", "--constitution", str(path), "-g", "0", "--storage", f"sqlite:///{tmp_path}/x.db"],
        env={"COLUMNS": "250"},
    )
    assert shown.exit_code != 0
    assert re.search(rf"{re.escape(str(path))}:2:1: not valid YAML", shown.output), shown.output
