"""The curated public API."""

from __future__ import annotations

import importlib

import pytest

import hyperagents

MODULES = [
    "hyperagents",
    "hyperagents.archive",
    "hyperagents.evaluation",
    "hyperagents.exceptions",
    "hyperagents.improvers",
    "hyperagents.llm",
    "hyperagents.program",
    "hyperagents.runs",
    "hyperagents.sandbox",
    "hyperagents.storages",
    "hyperagents.tasks",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist_and_are_unique(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported)), f"{name}.__all__ has duplicates"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.{attr} is in __all__ but missing"


def test_top_level_api() -> None:
    for attr in (
        "Run",
        "RunConfig",
        "Mode",
        "Program",
        "Task",
        "get_storage",
        "load_task",
        "HyperagentsError",
        "VariantState",
        "RunStatus",
    ):
        assert attr in hyperagents.__all__


def test_every_error_derives_from_the_root() -> None:
    from hyperagents import exceptions

    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        assert issubclass(cls, hyperagents.HyperagentsError)


def test_py_typed_is_shipped() -> None:
    from importlib import resources

    assert resources.files("hyperagents").joinpath("py.typed").is_file()
