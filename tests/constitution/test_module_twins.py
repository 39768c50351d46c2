"""Forbidding a module forbids its C-level twin: ``socket`` is also ``_socket``, ``subprocess``
also ``_posixsubprocess``, ``os`` also ``posix`` / ``nt``… (the README's example policy let a
literal ``import _socket`` through). Static rules stop honest mistakes and obvious hacks; the
sandbox is what contains a determined agent (README, "Constitution")."""

from __future__ import annotations

import pytest

from hyperagents.constitution import load_constitution
from hyperagents.constitution._rules import module_twins
from hyperagents.program import Program

#: The README's example policy, less its custom rule.
README_POLICY = {
    "rule": [
        {
            "name": "no-network-or-processes",
            "kind": "forbidden_imports",
            "modules": ["socket", "subprocess", "ctypes"],
        },
        {
            "name": "task-agent-writes-nothing",
            "kind": "forbidden_calls",
            "calls": ["eval", "exec", "os.system", "open(write)", ".write_text"],
            "files": ["task_agent.py"],
        },
    ]
}


def violations(source: str, policy: dict[str, object] = README_POLICY) -> list[str]:
    child = Program({"task_agent.py": source, "meta_agent.py": "x = 1\n"})
    return [v.message for v in load_constitution(policy).check(child, None).violations]


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("import _socket\n", "imports _socket (socket)"),
        ("import _ctypes\n", "imports _ctypes (ctypes)"),
        ("import _posixsubprocess\n", "imports _posixsubprocess (subprocess)"),
        ("from _socket import socket\n", "imports _socket (socket)"),
        ("import _socket as s\n", "imports _socket (socket)"),
        ("m = __import__('_posixsubprocess')\n", "imports _posixsubprocess (subprocess)"),
        ("import importlib\nimportlib.import_module('_ctypes')\n", "imports _ctypes (ctypes)"),
        ("from importlib import import_module as im\nim('_socket')\n", "imports _socket"),
        ("import _winapi\n", "imports _winapi (subprocess)"),
        ("import posix\nposix.system('id')\n", "calls os.system"),
        ("from posix import system\nsystem('id')\n", "calls os.system"),
        ("import _io\n_io.open('f', 'w')\n", "calls open(write)"),
        ("import posix\nposix.fdopen(3, 'w')\n", "calls open(write)"),
    ],
)
def test_the_readme_policy_catches_c_level_twins(source: str, said: str) -> None:
    found = violations(source)
    assert any(said in message for message in found), found


@pytest.mark.parametrize(
    ("modules", "source"),
    [
        (["os"], "import posix\n"),
        (["os"], "import nt\n"),
        (["os.system"], "from posix import system\n"),
        (["pickle"], "import _pickle\n"),
        (["importlib"], "import _imp\n"),
        (["importlib"], "import _frozen_importlib_external\n"),
        (["threading"], "import _thread\n"),
        (["multiprocessing"], "import _multiprocessing\n"),
        (["builtins"], "import __builtin__\n"),
        (["io"], "import _io\n"),
        (["json"], "from _json import make_scanner\n"),
    ],
)
def test_any_forbidden_module_forbids_its_twins(modules: list[str], source: str) -> None:
    policy = {"rule": [{"kind": "forbidden_imports", "modules": modules}]}
    assert violations(source, policy), source


@pytest.mark.parametrize(
    "source",
    [
        "import socketserver\n",  # another module whose name starts the same
        "import _socketx\n",
        "import json\nimport posixpath\n",
        "import os\nos.getcwd()\n",
        "with open('f') as f:\n    f.read()\n",
    ],
)
def test_other_modules_stay_allowed(source: str) -> None:
    assert violations(source) == []


def test_module_twins() -> None:
    assert module_twins("socket") == ("_socket", "socket")
    assert module_twins("subprocess") == (
        "_posixsubprocess",
        "_subprocess",
        "_winapi",
        "subprocess",
    )
    assert module_twins("os.system") == ("_os.system", "nt.system", "os.system", "posix.system")
    assert module_twins("_socket") == ("_socket",)
