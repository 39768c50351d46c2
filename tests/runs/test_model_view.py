"""A variant's model as the faces show it: files with sizes and hashes, the config
pretty-printed, and a config that is too large, too deep or not JSON reported, not parsed."""

from __future__ import annotations

from hyperagents.program import Program
from hyperagents.runs import model_view

SEED = Program({"task_agent.py": "def solve(x):\n    return 1\n"})


def test_a_program_without_model_has_no_view() -> None:
    assert model_view(SEED) is None


def test_files_hashes_and_the_pretty_config() -> None:
    program = SEED.with_files({"model/config.json": '{"b":1,"a":[1,2]}', "model/w.pt": b"\x00"})
    view = model_view(program)
    assert view is not None
    assert [(f.path, f.size, f.sha256, f.binary) for f in view.files] == [
        ("model/config.json", 17, program.blobs["model/config.json"], False),
        ("model/w.pt", 1, program.blobs["model/w.pt"], True),
    ]
    assert view.config == '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}'
    assert view.config_error is None and view.size == 18
    weights_only = model_view(SEED.with_files({"model/w.pt": b"\x00"}))
    assert weights_only is not None and weights_only.config is None
    assert weights_only.config_error is None


def test_a_broken_config_is_reported_not_parsed() -> None:
    def error(config: str) -> str | None:
        view = model_view(SEED.with_files({"model/config.json": config}))
        assert view is not None and view.config is None
        return view.config_error

    assert error("[" * 20_000 + "]" * 20_000) == "nested too deeply to show"
    assert (error("{oops") or "").startswith("not valid JSON")
    assert error(" " * 70_000 + "{}") == "70002 bytes, more than the 65536 shown"
    view = model_view(SEED.with_files({"model/config.json": b"\xff{}"}))
    assert view is not None and view.config_error == "not UTF-8 text"
