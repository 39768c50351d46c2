"""Program manifests stored as their difference from another stored manifest (SQLite).

A child's manifest names the same files as its relatives', and only the few its meta agent
changed have new hashes (two of thirteen for the offline meta agent: ``task_agent.py`` and
``meta_state.json``). Each hash is 64 hex digits that deflate cannot shrink much, so a manifest
packed alone takes ~550 bytes where its difference takes ~130. The difference is taken from a
manifest stored alone (its *base*) with the same paths, so a manifest needs at most one other to
be read; the storage remembers the last such manifest it stored or read.

Stored as format byte :data:`~._packing.JSON_MANIFEST_DELTA`, the base program's id (32 bytes),
then ``{path: digest or null (removed)}`` packed as :func:`~._packing.pack_json_text` packs a
text. PostgreSQL keeps whole manifests in its ``json`` column.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy import Dialect

from hyperagents.exceptions import StorageError
from hyperagents.storages._common import dumps_json
from hyperagents.storages._rdb._packing import (
    JSON_MANIFEST_DELTA,
    PackedJSON,
    json_text,
    pack_json_text,
)

__all__ = [
    "BaseManifests",
    "ManifestDifference",
    "PackedManifest",
    "apply_difference",
    "manifest_difference",
]

_HEAD = bytes((JSON_MANIFEST_DELTA,))


class ManifestDifference(NamedTuple):
    """A manifest as its difference from the stored manifest of program ``base``."""

    base: str
    #: path -> blob SHA-256, or None where the base has a file the manifest has not.
    changes: dict[str, str | None]


def _paths_key(manifest: Mapping[str, str]) -> str:
    return "\0".join(sorted(manifest))


def manifest_difference(
    manifest: Mapping[str, str], base: tuple[str, Mapping[str, str]]
) -> ManifestDifference | None:
    """``manifest`` as its difference from ``base`` (program id, manifest), when that is
    stored in fewer bytes than the manifest alone, else None."""
    base_id, base_manifest = base
    changes: dict[str, str | None] = {
        p: d for p, d in manifest.items() if base_manifest.get(p) != d
    }
    changes.update((p, None) for p in base_manifest if p not in manifest)
    difference = ManifestDifference(base_id, dict(sorted(changes.items())))
    alone = pack_json_text(dumps_json(dict(manifest)))
    return difference if len(_pack(difference)) < len(alone) else None


def apply_difference(base: Mapping[str, str], difference: ManifestDifference) -> dict[str, str]:
    """The manifest ``difference`` holds, given its base's manifest."""
    manifest = {p: d for p, d in base.items() if p not in difference.changes}
    manifest.update((p, d) for p, d in difference.changes.items() if d is not None)
    return dict(sorted(manifest.items()))


def _pack(difference: ManifestDifference) -> bytes:
    text = dumps_json(difference.changes)
    packed = pack_json_text(text)
    body = packed if isinstance(packed, bytes) else text.encode("utf-8")  # starts with "{"
    return _HEAD + bytes.fromhex(difference.base) + body


def _unpack(stored: bytes) -> ManifestDifference:
    """The difference a stored value holds.

    Raises:
        StorageError: The value is corrupt.
    """
    if len(stored) < 34:
        raise StorageError("stored manifest difference is corrupt: too short")
    body = stored[33:]
    try:
        text = body.decode("utf-8") if body[:1] == b"{" else json_text(body)
        changes = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StorageError(f"stored manifest difference is corrupt: {exc}") from None
    valid = isinstance(changes, dict) and all(isinstance(d, str | None) for d in changes.values())
    if not valid:
        raise StorageError("stored manifest difference is corrupt: not a path mapping")
    return ManifestDifference(stored[1:33].hex(), changes)


class PackedManifest(PackedJSON):
    """The ``programs.manifest`` column: a :class:`PackedJSON` that also stores and reads a
    :class:`ManifestDifference` (SQLite only; its base is resolved by the caller)."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, ManifestDifference):
            if dialect.name != "sqlite":
                raise ValueError("manifest differences are stored on SQLite only")
            return _pack(value)
        return super().process_bind_param(value, dialect)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        packed = dialect.name == "sqlite" and isinstance(value, bytes | memoryview)
        if packed and bytes(value[:1]) == _HEAD:
            return _unpack(bytes(value))
        return super().process_result_value(value, dialect)


class BaseManifests:
    """The manifest last stored or read alone for each set of paths: what a new manifest
    with those paths is stored as a difference from. Bounded; thread-safe.

    Args:
        max_entries: Sets of paths remembered at most (the oldest is forgotten first).
    """

    def __init__(self, *, max_entries: int = 16) -> None:
        self._max = max_entries
        self._bases: dict[str, tuple[str, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def get(self, manifest: Mapping[str, str]) -> tuple[str, dict[str, str]] | None:
        """The base remembered for a manifest with ``manifest``'s paths."""
        with self._lock:
            return self._bases.get(_paths_key(manifest))

    def remember(self, program_id: str, manifest: Mapping[str, str]) -> None:
        """Remember the manifest of ``program_id``, stored alone."""
        key = _paths_key(manifest)
        with self._lock:
            self._bases.pop(key, None)
            self._bases[key] = (program_id, dict(manifest))
            while len(self._bases) > self._max:
                del self._bases[next(iter(self._bases))]
