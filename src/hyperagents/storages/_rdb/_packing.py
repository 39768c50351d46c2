"""Packed columns: JSON values deflated with a preset dictionary (SQLite), program files
compressed (every database), and a bounded cache of decoded JSON texts.

**JSON on SQLite.** The JSON of the big tables (evaluation results and metrics, variant meta
info and metrics, event data, program manifests, LLM requests) is stored as a BLOB: one format
byte, then the compact JSON text as raw deflate with a preset dictionary (zlib's ``zdict``) made
of this project's own keys, so even a value of a few hundred bytes shrinks by half or more. A
text shorter than :data:`PACK_MIN` bytes, or one that would not get smaller, stays as plain JSON
text, and so do the rows written before packing: a TEXT value is JSON, a BLOB is packed. The
format byte names the dictionary, so a later version can add another and still read every row
written with an older one (:data:`JSON_DEFLATE_V2` adds the offline meta agent's newer keys).
Evaluation results (lists of per-instance records) may instead be
laid out by column first (:data:`JSON_COLUMNS_V1`, :mod:`._columns`), where that is smaller and
reads back to the same text. PostgreSQL keeps its ``json`` columns (TOAST compresses large
values there; a query may read them with JSON operators).

**Program files.** A blob row holds one format byte, then the file: as it is
(:data:`BLOB_RAW`), zlib-compressed (:data:`BLOB_ZLIB`), or as its difference from another
stored file (:data:`BLOB_DELTA`: a child's ``task_agent.py`` differs from its relatives' in a
few values), whichever is smallest. A difference is only ever taken from a row that stands
alone, so a file needs at most one other to be read. Every row has the byte (migration 0007
added it to the old rows), so any file content is stored safely. A row holding the byte
:data:`BLOB_ARTIFACT` alone keeps its file outside the table, in the database's artifact store
(see :mod:`~hyperagents.storages._rdb._artifacts`).

Values are compact JSON made by :data:`~hyperagents.storages._common.dumps_json`: a NaN or an
object that JSON cannot hold is refused with :class:`ValueError` or :class:`TypeError`, as for
the unpacked columns.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import OrderedDict
from typing import Any

from sqlalchemy import JSON, Dialect, Text
from sqlalchemy.types import TypeDecorator, TypeEngine

from hyperagents.exceptions import StorageError
from hyperagents.storages._common import dumps_json
from hyperagents.storages._rdb._columns import columns_layout, records_from_layout

__all__ = [
    "ARTIFACT_ROW",
    "BLOB_ARTIFACT",
    "BLOB_DELTA",
    "BLOB_RAW",
    "BLOB_ZLIB",
    "JSON_COLUMNS_V1",
    "JSON_DEFLATE_V1",
    "JSON_DEFLATE_V2",
    "JSON_MANIFEST_DELTA",
    "JSON_RECORDS_REF",
    "PACK_MIN",
    "JSONTexts",
    "PackedJSON",
    "PackedRecords",
    "blob_base",
    "json_text",
    "pack_blob",
    "pack_json_text",
    "pack_records",
    "unpack_blob",
]

#: Format byte of a JSON value: raw deflate with the preset dictionary :data:`_ZDICT_V1`.
JSON_DEFLATE_V1 = 0x01
#: Format byte of a list of records laid out by column (:mod:`._columns`), then that layout's
#: JSON packed as :data:`JSON_DEFLATE_V1` packs a text.
JSON_COLUMNS_V1 = 0x02
#: Format byte of a JSON value: raw deflate with the preset dictionary :data:`_ZDICT_V2`
#: (what :func:`pack_json_text` writes since migration 0011).
JSON_DEFLATE_V2 = 0x03
#: Format byte of a program manifest stored as its difference from another stored manifest
#: (:mod:`._manifests`): that program's id (32 bytes), then the changed entries' JSON packed
#: as :data:`JSON_DEFLATE_V2` packs a text. Only :mod:`._manifests` reads it.
JSON_MANIFEST_DELTA = 0x04
#: Format byte of evaluation results stored as a reference to another evaluation's results
#: (:mod:`._references`). Only the storage's evaluation reads resolve it.
JSON_RECORDS_REF = 0x05
#: JSON texts shorter than this many bytes are stored as text (packing would not pay).
PACK_MIN = 48
#: Format bytes of a program file: the file as it is, or zlib-compressed.
BLOB_RAW = 0x00
BLOB_ZLIB = 0x01
#: Format byte of a program file stored as its difference from another stored file: that
#: file's SHA-256 (32 bytes), then raw deflate with that file as preset dictionary.
BLOB_DELTA = 0x02
#: Format byte of a program file kept in the artifact store: the row holds this byte alone.
BLOB_ARTIFACT = 0x03
#: The ``data`` of an artifact's row.
ARTIFACT_ROW = bytes((BLOB_ARTIFACT,))
#: Files shorter than this are stored as they are.
_BLOB_PACK_MIN = 64
#: How much of the end of a base file a difference can refer to (deflate's window).
_DELTA_WINDOW = 32768

#: The preset dictionary of :data:`JSON_DEFLATE_V1`: compact JSON fragments such as this
#: project writes, the most frequent last (deflate reaches the end of the dictionary with the
#: shortest distances). Never change it: add a new format byte with a new dictionary instead.
_ZDICT_V1 = (
    # run configuration and events
    b'{"selector":"score_child","tournament_size":3,"subset_size":50,"subset_threshold":null,'
    b'"subset_margin":0.1,"parallel_generations":1,"meta_timeout":120.0,"validate_timeout":60.0,'
    b'"select_timeout":30.0,"eval_overhead":30.0,"memory_mb":2048,"report_results":500,'
    b'"report_archive":500,"report_archive_bytes":131072,"heartbeat_interval":5.0,'
    b'"heartbeat_grace":60.0,"sandbox":"auto","meta_agent":"task","llm":null,"max_seconds":null,'
    b'"max_evaluations":null,"max_cost":null,"max_tokens":null,"llm_retries":3,'
    b'"llm_timeout":60.0,"llm_cache":false,"llm_failure_limit":5,"llm_prices":null,'
    b'"replay_of":null,"warm_workers":true,"max_retries":3,"approval":"auto",'
    b'"approval_threshold":0.0,"quarantine":false,"quarantine_jump":3.0,"quarantine_gap":0.15,'
    b'"constitution":null}'
    b'{"messages":[{"role":"system","content":""},{"role":"user","content":""}],'
    b'"temperature":0.0,"max_tokens":4096,"model":"'
    b'{"operator":"llm","applied":0,"error":null,"rounds":1,"files":[],"summary":"'
    b'{"ok":false,"errors":[],"reason":"","sandbox_reason":"","outcome":"","champion":'
    b'{"generation":1,"parent_id":0,"selector":"score_child"}'
    b'{"changed":["meta_state.json","task_agent.py"]}'
    # program manifests (the seed meta agents' modules)
    b'{"meta_adapt.py":"","meta_agent.py":"","meta_features.py":"","meta_history.py":"",'
    b'"meta_operators.py":"","meta_report.py":"","meta_source.py":"","meta_space.py":"",'
    b'"meta_state.json":"","select_parent.py":"","task_agent.py":"'
    # the offline meta agent's meta info
    b'{"adaptation":{"explore":[0.1,0.08],"n_mutations":[2.0,1.7],"operator_weights":'
    b'[{"crossover":0.2,"focus":0.2,"follow":0.2,"perturb":0.3,"reset":0.1}],'
    b'"step_scale":[0.15,0.2],"success_ema":[0.2,0.3]},"agent":"offline-meta-agent",'
    b'"changes":{"X":[0.0,0.5]},"detail":{"targets":["X"],"alpha":1.0,"source":3},'
    b'"evidence":[{"delta":0.0,"lineage":false,"operator":"perturb","outcome":"failure",'
    b'"variant":1,"weight":1.0},{"delta":0.0,"lineage":true,"operator":"reset","outcome":"tie",'
    b'"variant":2,"weight":1.0},{"delta":0.1,"lineage":true,"operator":"follow",'
    b'"outcome":"success","variant":3,"weight":1.0}],"explored":false,"meta":'
    b'{"context_weight":3.0,"ema_lr":0.2,"explore":0.1,"explore_decay":0.7,'
    b'"explore_growth":1.07,"failures":1.0,"n_mutations":1.5,"n_mutations_lr":0.3,'
    b'"operator_weights":{"crossover":0.2,"focus":0.2,"follow":0.2,"perturb":0.3,"reset":0.1},'
    b'"self_adapt_tau":0.15,"stagnation":0,"step_growth":1.5,"step_scale":0.5,'
    b'"success_ema":0.5,"successes":1.0,"target_success":0.2,"weight_floor":0.05,'
    b'"weight_lr":0.5},"meta_self_edited":true,"mode":"hyperagent","n_changed":1,'
    b'"operator":"focus","params":{"X":0.5},"sigma":0.5}'
    # metrics of a variant and of its stages
    b'{"improve":{"wall":0.02,"cpu":0.02,"peak_memory_mb":16.0},"train_subset":{"n":0},'
    b'"timing":{"total_seconds":0.1,"sandbox_seconds":0.05,"engine_seconds":0.05},'
    b'"train":{"n":0,"wall_seconds":0,"cpu_seconds":0,"errors":0,"timeouts":0,'
    b'"peak_memory_mb":0,"wall_per_instance":null},"val":{"n":1,"wall_seconds":0.01,'
    b'"wall_per_instance":0.0001,"cpu_seconds":0.01,"peak_memory_mb":15.0,"errors":0,'
    b'"timeouts":0}}'
    b'{"stage":"train_subset","score":0.0,"n":1}{"stage":"train","score":0.5,"n":1}'
    b'{"stage":"val","score":1.0,"n":1}'
    # per-instance results
    b'[{"id":"train-0000","score":0.0,"feedback":"wrong: predicted reject, expected accept",'
    b'"output":"reject","error":null,"wall":0.0001,"cpu":0.0},'
    b'{"id":"val-0001","score":1.0,"feedback":"correct: predicted accept, expected accept",'
    b'"output":"accept","error":null,"wall":0.0001,"cpu":0.0},'
    b'{"id":"val-0","score":-0.1,"feedback":"","output":0.5,"error":null,"wall":0.0,"cpu":0.0}]'
)

#: The preset dictionary of :data:`JSON_DEFLATE_V2`: :data:`_ZDICT_V1`, then what the engine
#: and the offline seed meta agent have written since: the meta agent's meta info (its
#: portfolio of mechanisms, its surrogate model), a variant's metrics with its lever record
#: (``training``) in the order the engine writes them, and V1's per-instance results again, the
#: most frequent nearest the end. Never change it either.
_ZDICT_V2 = (
    _ZDICT_V1
    + (
        # the offline meta agent's meta info
        b'{"adaptation":{"explore":[0.1,0.08],"n_mutations":[2.0,1.7],"operator_weights":'
        b'[{"crossover":0.2,"focus":0.2,"follow":0.2,"perturb":0.3,"reset":0.1}],'
        b'"portfolio":{"shares":[{"restart":0.03,"structure":0.15,"surrogate":0.15,"tune":0.6}]},'
        b'"step_scale":[0.15,0.2],"success_ema":[0.2,0.3]},"agent":"offline-meta-agent",'
        b'"changes":{},"detail":{"acquisition":1.0,"good":1,"points":8},'
        b'"detail":{"alpha":1.0,"source":3},"evidence":[{"delta":0.0,"lineage":false,'
        b'"operator":"perturb","outcome":"failure","variant":1,"weight":1.0},{"delta":0.0,'
        b'"lineage":true,"operator":"surrogate","outcome":"tie","variant":2,"weight":1.0},'
        b'{"delta":0.1,"lineage":true,"operator":"follow","outcome":"success","variant":3,'
        b'"weight":1.0}],"explored":false,"forced_restart":false,"mechanism":"tune","meta":'
        b'{"context_weight":3.0,"ema_lr":0.2,"explore":0.1,"explore_decay":0.7,'
        b'"explore_growth":1.07,"failures":1.0,"n_mutations":1.5,"n_mutations_lr":0.3,'
        b'"operator_weights":{"crossover":0.2,"focus":0.2,"follow":0.2,"perturb":0.3,"reset":0.1},'
        b'"portfolio":{"restart_after":12.0,"share_floor":0.03,"share_lr":0.5,"shares":'
        b'{"restart":0.03,"structure":0.15,"surrogate":0.15,"tune":0.6},"structure_kinds":'
        b'{"binop":0.06,"compare":0.08,"copy_rule":0.12,"drop_cond":0.06,"drop_rule":0.08,'
        b'"drop_term":0.08,"lift":0.25,"minmax":0.06,"negate_if":0.06,"transplant":0.15},'
        b'"surrogate_min_points":8.0,"weights_share":0.5},"self_adapt_tau":0.15,"stagnation":0,'
        b'"step_growth":1.5,"step_scale":0.5,"success_ema":0.5,"successes":1.0,'
        b'"target_success":0.2,"weight_floor":0.05,"weight_lr":0.5},"meta_self_edited":true,'
        b'"mode":"hyperagent","n_changed":1,"operator":"focus","params":{},"sigma":0.5}'
        # a variant's metrics, as the engine writes them (the lever record: runs/_training.py)
        b'{"improve":{"wall":0.02,"cpu":0.02,"peak_memory_mb":16.0},"training":{"lever":"weights",'
        b'"chosen":"both","levers":"both","plan":{"lever":"harness","sources":["self","task"],'
        b'"options":{},"problems":[]},"state":"none"},"train_subset":{"n":50,"wall_seconds":0.01,'
        b'"wall_per_instance":0.0001,"cpu_seconds":0.01,"peak_memory_mb":15.0,"errors":0,'
        b'"timeouts":0},"train":{"n":400,"wall_seconds":0.01,"cpu_seconds":0.01,"errors":0,'
        b'"timeouts":0,"peak_memory_mb":15.0,"wall_per_instance":0.0001},"val":{"n":200,'
        b'"wall_seconds":0.01,"wall_per_instance":0.0001,"cpu_seconds":0.01,"peak_memory_mb":15.0,'
        b'"errors":0,"timeouts":0},"timing":{"total_seconds":0.1,"sandbox_seconds":0.05,'
        b'"engine_seconds":0.05}}'
    )
    + _ZDICT_V1[_ZDICT_V1.index(b'{"stage":"train_subset"') :]
)  # V1's last part, nearest the end

_JSON_DICTIONARIES = {JSON_DEFLATE_V1: _ZDICT_V1, JSON_DEFLATE_V2: _ZDICT_V2}


def _deflate(data: bytes, level: int = 6, version: int = JSON_DEFLATE_V2) -> bytes:
    zdict = _JSON_DICTIONARIES[version]
    deflater = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict)
    return deflater.compress(data) + deflater.flush()


def pack_json_text(text: str, *, version: int = JSON_DEFLATE_V2) -> str | bytes:
    """``text`` (compact JSON) as stored on SQLite: packed bytes (with the dictionary of
    format ``version``: :data:`JSON_DEFLATE_V1` is what revisions before 0011 read), or the
    text itself when it is short or would not get smaller."""
    data = text.encode("utf-8")
    if len(data) < PACK_MIN:
        return text
    packed = bytes((version,)) + _deflate(data, version=version)
    return packed if len(packed) < len(data) else text


def pack_records(value: Any) -> str | bytes:
    """A JSON value as stored on SQLite, a list of records (per-instance results) laid out by
    column (:data:`JSON_COLUMNS_V1`) when that is smaller and reads back to the same text; else
    as :func:`pack_json_text` stores it."""
    text = dumps_json(value)
    packed = pack_json_text(text)
    layout = columns_layout(value)
    if layout is None:
        return packed
    layout_text = dumps_json(layout).encode("utf-8")
    by_column = bytes((JSON_COLUMNS_V1,)) + _deflate(layout_text, 9, JSON_DEFLATE_V1)
    if len(by_column) < len(packed) and json_text(by_column) == text:
        return by_column
    return packed


def json_text(value: str | bytes | memoryview) -> str:
    """The JSON text of a stored value: text as it is, packed bytes inflated.

    Raises:
        StorageError: The bytes have an unknown format byte or are corrupt.
    """
    if isinstance(value, str):
        return value
    data = bytes(value)
    if data[:1] == bytes((JSON_COLUMNS_V1,)):
        layout = json_text(bytes((JSON_DEFLATE_V1,)) + data[1:])
        try:
            return dumps_json(records_from_layout(json.loads(layout)))
        except (ValueError, TypeError, LookupError) as exc:
            raise StorageError(f"stored JSON value is corrupt: {exc!r}") from None
    if data[:1] == bytes((JSON_MANIFEST_DELTA,)):
        raise StorageError("stored JSON value is a manifest difference: read it with its base")
    if data[:1] == bytes((JSON_RECORDS_REF,)):
        raise StorageError("stored JSON value is a reference to another evaluation's results")
    zdict = _JSON_DICTIONARIES.get(data[0]) if data else None
    if zdict is None:
        head = f"{data[0]:#04x}" if data else "nothing"
        raise StorageError(f"stored JSON value has unknown format byte {head}")
    try:
        inflater = zlib.decompressobj(-15, zdict)
        return (inflater.decompress(data[1:]) + inflater.flush()).decode("utf-8")
    except (zlib.error, UnicodeDecodeError) as exc:
        raise StorageError(f"stored JSON value is corrupt: {exc}") from None


def pack_blob(data: bytes, base: tuple[str, bytes] | None = None) -> bytes:
    """A program file as stored: a format byte, then the file, its zlib compression, or (given
    ``base``: the SHA-256 and the content of a stored file that stands alone) its difference
    from that file, whichever is smallest."""
    stored = bytes((BLOB_RAW,)) + data
    if len(data) >= _BLOB_PACK_MIN:
        packed = zlib.compress(data, 6)
        if len(packed) < len(data):
            stored = bytes((BLOB_ZLIB,)) + packed
    if base is not None and base[1] and len(data) >= _BLOB_PACK_MIN:
        window = base[1][-_DELTA_WINDOW:]
        deflater = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, window)
        delta = deflater.compress(data) + deflater.flush()
        if len(delta) + 33 < len(stored):
            return bytes((BLOB_DELTA,)) + bytes.fromhex(base[0]) + delta
    return stored


def blob_base(stored: bytes | memoryview) -> str | None:
    """The SHA-256 of the file a stored difference needs (None: the row stands alone)."""
    head = bytes(stored[:33])
    return head[1:].hex() if len(head) == 33 and head[0] == BLOB_DELTA else None


def unpack_blob(stored: bytes | memoryview, base: bytes | None = None) -> bytes:
    """The file of a stored blob row (``base``: the file a difference was taken from).

    Raises:
        StorageError: The row has an unknown format byte, is corrupt, or is a difference and
            ``base`` is not given.
    """
    data = bytes(stored)
    head = data[0] if data else None
    try:
        if head == BLOB_RAW:
            return data[1:]
        if head == BLOB_ZLIB:
            return zlib.decompress(data[1:])
        if head == BLOB_DELTA and len(data) > 33:
            if base is None:
                raise StorageError(f"stored program file needs file {data[1:33].hex()}")
            inflater = zlib.decompressobj(-15, base[-_DELTA_WINDOW:])
            return inflater.decompress(data[33:]) + inflater.flush()
    except zlib.error as exc:
        raise StorageError(f"stored program file is corrupt: {exc}") from None
    if head == BLOB_ARTIFACT:
        raise StorageError("stored program file is an artifact: read it from the artifact store")
    shown = "nothing" if head is None else f"{head:#04x}"
    raise StorageError(f"stored program file has unknown format byte {shown}")


class PackedJSON(TypeDecorator[Any]):
    """A JSON column stored packed on SQLite (see the module docstring); plain ``JSON``
    elsewhere. Reads accept both packed and plain rows."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":  # str or bytes pass to the driver as they are
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return value
        return pack_json_text(dumps_json(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name != "sqlite" or value is None:
            return value
        return json.loads(json_text(value))


class PackedRecords(PackedJSON):
    """A :class:`PackedJSON` column of record lists (evaluation results), laid out by column on
    SQLite when that is smaller (:func:`pack_records`)."""

    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return value
        return pack_records(value)


class JSONTexts:
    """A bounded cache of the JSON texts of packed values, for reads that repeat (the engine
    lists a run's variants every generation). Keyed by the stored bytes, so a changed value is
    a new key; least recently used texts go first. Thread-safe.

    Args:
        max_chars: The most characters of text kept in all (0: keep none).
        max_entry: Texts longer than this are decoded every time, never kept.
    """

    def __init__(self, *, max_chars: int = 8_000_000, max_entry: int = 262_144) -> None:
        self._max_chars = max_chars
        self._max_entry = max_entry
        self._texts: OrderedDict[bytes, str] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._texts)

    @property
    def chars(self) -> int:
        """Characters of text kept now."""
        return self._chars

    def text(self, value: str | bytes | memoryview | None, default: str = "{}") -> str:
        """The JSON text of a stored value (``default`` for SQL NULL).

        Raises:
            StorageError: Packed bytes with an unknown format byte, or corrupt.
        """
        if value is None:
            return default
        if isinstance(value, str):
            return value
        key = bytes(value)
        with self._lock:
            text = self._texts.get(key)
            if text is not None:
                self._texts.move_to_end(key)
                return text
        text = json_text(key)
        if len(text) <= self._max_entry:
            self._keep(key, text)
        return text

    def _keep(self, key: bytes, text: str) -> None:
        with self._lock:
            if key in self._texts:
                return
            self._texts[key] = text
            self._chars += len(text)
            while self._chars > self._max_chars and self._texts:
                _, dropped = self._texts.popitem(last=False)
                self._chars -= len(dropped)
