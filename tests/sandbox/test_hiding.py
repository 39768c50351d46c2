"""What sandboxed code must not see is found without importing anything."""

from __future__ import annotations

import os

import hyperagents
from hyperagents.sandbox._hiding import hidden_locations, hyperagents_locations


def test_the_package_is_found_from_the_sandbox_modules_own_file() -> None:
    package = os.path.realpath(os.path.dirname(hyperagents.__file__))
    assert hyperagents_locations() == [package]
    assert package in hidden_locations()
