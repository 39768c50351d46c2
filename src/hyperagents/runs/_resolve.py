"""Naming runs and variants the way people write them: ``RUN``, ``RUN/GEN``, ``RUN/champion``."""

from __future__ import annotations

from typing import Any

from hyperagents.exceptions import RunNotFoundError, VariantNotFoundError
from hyperagents.program import Program
from hyperagents.runs._export import champion_of
from hyperagents.storages import BaseStorage, RunRecord, VariantRecord, VariantState

__all__ = ["MAX_ID", "find_run", "meta_donor", "resolve_variant", "seed_donor"]

#: The largest id a run or variant can have (a signed 64-bit database integer).
MAX_ID = 2**63 - 1


def _as_id(text: str) -> int | None:
    """``text`` as an id when it is one (ASCII digits, within :data:`MAX_ID`), else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ID)):
        return None
    number = int(text)
    return number if number <= MAX_ID else None


def find_run(store: BaseStorage, name: str) -> RunRecord:
    """A run by name, or by id when no run has that (all-digit) name.

    Raises:
        RunNotFoundError: No such run.
    """
    try:
        return store.get_run_by_name(name)
    except RunNotFoundError:
        number = _as_id(name)
        if number is None:
            raise
        return store.get_run(number)


def resolve_variant(store: BaseStorage, spec: str) -> VariantRecord:
    """A variant from ``ID``, ``#ID``, ``RUN/GENERATION``, ``RUN/champion`` or ``RUN/seed``.

    ``champion`` (or ``best``) is the complete variant with the best val score (the earliest
    of equals).

    Raises:
        VariantNotFoundError: A malformed spec, or no such variant.
        RunNotFoundError: No such run.
    """
    spec = spec.strip()
    if "/" not in spec and spec.lstrip("#").isdigit():
        number = _as_id(spec.lstrip("#"))
        if number is None:
            raise VariantNotFoundError(f"no variant {spec!r}")
        return store.get_variant(number)
    run_name, sep, which = spec.rpartition("/")
    if not sep or not run_name:
        raise VariantNotFoundError(f"bad variant {spec!r}: use ID, RUN/GENERATION or RUN/champion")
    record = find_run(store, run_name)
    if which in ("champion", "best"):
        best = champion_of(store.list_variants(record.id, states=[VariantState.COMPLETE]))
        if best is None:
            raise VariantNotFoundError(f"run {record.name!r} has no complete variant yet")
        return best
    generation = 0 if which == "seed" else _as_id(which)
    if generation is None:
        raise VariantNotFoundError(f"bad generation {which!r} in {spec!r}")
    found = store.get_variant_by_generation(record.id, generation)
    if found is None:
        raise VariantNotFoundError(f"run {record.name!r} has no generation {generation}")
    return found


def _donor(store: BaseStorage, spec: str, key: str) -> tuple[Program, dict[str, Any]]:
    """The program of the variant ``spec`` names, and the run attributes ``KEY``,
    ``KEY_variant``, ``KEY_program`` that record where it came from.

    Raises:
        VariantNotFoundError: No such variant, or it has no program yet.
        RunNotFoundError: No such run.
    """
    variant = resolve_variant(store, spec)
    if variant.program_id is None:
        raise VariantNotFoundError(f"variant {spec!r} has no program yet")
    attrs = {key: spec, f"{key}_variant": variant.id, f"{key}_program": variant.program_id}
    return store.get_program(variant.program_id), attrs


def meta_donor(store: BaseStorage, spec: str) -> tuple[Program, dict[str, Any]]:
    """The program to transfer a meta agent from, and the run attributes that record it
    (``meta_from``, ``meta_from_variant``, ``meta_from_program``).

    Raises:
        VariantNotFoundError: No such variant, or it has no program yet.
        RunNotFoundError: No such run.
    """
    return _donor(store, spec, "meta_from")


def seed_donor(store: BaseStorage, spec: str) -> tuple[Program, dict[str, Any]]:
    """The program a run starts from as its seed (a variant's whole program), and the run
    attributes that record it (``seed_from``, ``seed_from_variant``, ``seed_from_program``).

    Raises:
        VariantNotFoundError: No such variant, or it has no program yet.
        RunNotFoundError: No such run.
    """
    return _donor(store, spec, "seed_from")
