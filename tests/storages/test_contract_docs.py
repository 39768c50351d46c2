"""The storage contract is written once, on BaseStorage: backends inherit its docstrings."""

from __future__ import annotations

import inspect
import pydoc

import pytest

from hyperagents.storages import BaseStorage, InMemoryStorage, RDBStorage

#: The contract's parts: BaseStorage and the mixins it is made of (engines, services, logs...).
_PARTS = [c for c in BaseStorage.__mro__ if c.__module__.startswith("hyperagents.storages._base")]
_CONTRACT = sorted(
    {
        name
        for part in _PARTS
        for name, member in vars(part).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }
)


def test_every_contract_method_is_documented_on_the_base_class() -> None:
    assert len(_PARTS) >= 5
    assert {"create_run", "add_llm_call", "pin_parent", "ban_variant"} <= set(_CONTRACT)
    for name in _CONTRACT:
        assert inspect.getdoc(getattr(BaseStorage, name)), name


@pytest.mark.parametrize("backend", [InMemoryStorage, RDBStorage])
def test_backends_do_not_repeat_the_contract(backend: type[BaseStorage]) -> None:
    for name in _CONTRACT:
        method = getattr(backend, name)
        # No docstring of its own (a wrapper keeps the one of what it wraps)...
        assert inspect.unwrap(method).__doc__ in (None, getattr(BaseStorage, name).__doc__), name
        # ...so help() and the docs show the contract's.
        assert inspect.getdoc(method) == inspect.getdoc(getattr(BaseStorage, name)), name
    assert "compare-and-set" in pydoc.render_doc(backend.unpin_parent).lower()
