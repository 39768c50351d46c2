"""The variants and evaluations of :class:`RDBStorage`.

Variants are read in bulk (``list_variants`` of thousands of rows per generation): their JSON
columns are fetched as stored (text, or packed bytes on SQLite: see
:mod:`~hyperagents.storages._rdb._packing`), their texts taken from the storage's cache of
decoded texts, and decoded with ONE ``json.loads`` call for all rows, which is several times
faster than one call per value. On SQLite, an evaluation's results that a later evaluation of
the same variant holds are stored as a reference to it (see
:mod:`~hyperagents.storages._rdb._references`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    Connection,
    LargeBinary,
    Text,
    bindparam,
    func,
    insert,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError

from hyperagents.exceptions import DuplicateError, StorageError, VariantNotFoundError
from hyperagents.storages._common import check_score, normalise_expected, utcnow
from hyperagents.storages._rdb._references import (
    is_reference,
    make_reference,
    read_reference,
    resolve_reference,
)
from hyperagents.storages._rdb._transactions import (
    EVALUATIONS,
    IN_CHUNK,
    VARIANTS,
    RDBCore,
    retried,
)
from hyperagents.storages._records import (
    EvaluationRecord,
    EvaluationSpec,
    EventSpec,
    VariantRecord,
    VariantState,
)

__all__ = ["VariantMethods"]

_VARIANT_COLUMNS = [VARIANTS.c[f.name] for f in dataclasses.fields(VariantRecord)]
_EVALUATION_COLUMNS = [EVALUATIONS.c[f.name] for f in dataclasses.fields(EvaluationRecord)]
_VARIANT_JSON = ("scores", "metrics", "meta_info")
#: The variant columns, JSON ones as text (PostgreSQL) or as stored (SQLite: text or packed).
_VARIANT_SELECT = {
    "sqlite": [
        type_coerce(c, Text).label(c.name) if c.name in _VARIANT_JSON else c
        for c in _VARIANT_COLUMNS
    ],
    "other": [
        c.cast(Text).label(c.name) if c.name in _VARIANT_JSON else c for c in _VARIANT_COLUMNS
    ],
}
# Statements of the calls made every generation, built once: building one costs more than
# running it on SQLite. ``for_update`` variants lock the row on PostgreSQL.
_BY_ID = VARIANTS.c.id == bindparam("variant_key")
_GET_VARIANT = {
    dialect: select(*columns).where(_BY_ID) for dialect, columns in _VARIANT_SELECT.items()
}
_METRICS_OF = select(VARIANTS.c.metrics).where(_BY_ID)
_SCORED = select(VARIANTS.c.run_id, VARIANTS.c.scores, VARIANTS.c.metrics).where(_BY_ID)
#: SQLite: a variant's other evaluations, results as stored; one's results made a reference.
_OTHER_RESULTS = select(
    EVALUATIONS.c.id, EVALUATIONS.c.stage, type_coerce(EVALUATIONS.c.results, Text)
).where(
    EVALUATIONS.c.variant_id == bindparam("variant_key"),
    EVALUATIONS.c.stage != bindparam("stage_key"),
)
_REFER = (
    update(EVALUATIONS)
    .where(EVALUATIONS.c.id == bindparam("evaluation_key"))
    .values({EVALUATIONS.c.results: bindparam("reference", type_=LargeBinary)})
)
_READ_FOR_UPDATE = {
    False: {"metrics": _METRICS_OF, "scored": _SCORED},
    True: {"metrics": _METRICS_OF.with_for_update(), "scored": _SCORED.with_for_update()},
}
#: Executed with the columns to set as parameters, and ``variant_key``.
_UPDATE_VARIANT = update(VARIANTS).where(_BY_ID)
_UPDATE_VARIANT_RETURNING = _UPDATE_VARIANT.returning(VARIANTS.c.run_id)
_INSERT_EVALUATION = insert(EVALUATIONS)
_SET_STATE = update(VARIANTS).where(
    _BY_ID, VARIANTS.c.state.in_(bindparam("allowed_states", expanding=True))
)
_SET_STATE_RETURNING = _SET_STATE.returning(VARIANTS.c.run_id)
_EVALUATION_JSON = ("results", "metrics")
_EVALUATION_SELECT = [
    type_coerce(c, Text).label(c.name) if c.name in _EVALUATION_JSON else c
    for c in _EVALUATION_COLUMNS
]
_VARIANT_STATES = {int(s): s for s in VariantState}
#: A variant's evaluations in order (True: SQLite, JSON columns as stored).
_LIST_EVALUATIONS = {
    sqlite: select(*(_EVALUATION_SELECT if sqlite else _EVALUATION_COLUMNS))
    .where(EVALUATIONS.c.variant_id == bindparam("variant_key"))
    .order_by(EVALUATIONS.c.id)
    for sqlite in (True, False)
}


class VariantMethods(RDBCore):
    """The variant and evaluation methods of :class:`RDBStorage`."""

    def _update_variant(
        self,
        conn: Connection,
        variant_id: int,
        stmt: Any,
        want_run_id: bool,
        params: Mapping[str, Any] | None = None,
        returning: Any = None,
    ) -> tuple[bool, int]:
        """Execute an UPDATE of one variant (with ``params``; ``returning``: the same statement
        returning the run's id, when it is built already); return (applied, run_id if asked and
        applied)."""
        if want_run_id and self._returning:
            with_id = returning if returning is not None else stmt.returning(VARIANTS.c.run_id)
            row = conn.execute(with_id, params).first()
            return (row is not None, int(row[0]) if row is not None else 0)
        applied = conn.execute(stmt, params).rowcount > 0
        if applied and want_run_id:
            run_id = conn.execute(
                select(VARIANTS.c.run_id).where(VARIANTS.c.id == variant_id)
            ).scalar_one()
            return True, int(run_id)
        return applied, 0

    @retried(idempotent=False)
    def create_variant(
        self,
        *,
        run_id: int,
        generation: int,
        parent_id: int | None,
        state: VariantState = VariantState.RUNNING,
        owner: str | None = None,
        program_id: str | None = None,
        meta_info: Mapping[str, Any] | None = None,
        event: EventSpec | None = None,
    ) -> int:
        now = utcnow()
        try:
            with self._write() as conn:
                result = conn.execute(
                    insert(VARIANTS),
                    {
                        "run_id": run_id,
                        "generation": int(generation),
                        "parent_id": parent_id,
                        "program_id": program_id,
                        "state": int(state),
                        "scores": {},
                        "metrics": {},
                        "meta_info": dict(meta_info or {}),
                        "reason": None,
                        "owner": owner,
                        "heartbeat_at": now if owner is not None else None,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
                variant_id = int(cast(Any, result.inserted_primary_key)[0])
                self._insert_event(conn, run_id, variant_id, event)
                return self._done(conn, variant_id)
        except IntegrityError:
            with self._read() as conn:
                self._require_run(conn, run_id)
                if program_id is not None and not self._program_exists(conn, program_id):
                    raise StorageError(f"program {program_id} is not stored") from None
            raise DuplicateError(
                f"run {run_id} already has a variant for generation {generation}"
            ) from None

    def _variant_select(self) -> list[Any]:
        """The columns to select variants with (see ``_VARIANT_SELECT``)."""
        return _VARIANT_SELECT["sqlite" if self._dialect == "sqlite" else "other"]

    def _variant_records(self, rows: Sequence[Any]) -> list[VariantRecord]:
        """Build records from rows of ``_VARIANT_SELECT`` (JSON columns as stored)."""
        text = self._texts.text
        texts: list[str] = []
        for r in rows:
            texts.append(text(r[6]))
            texts.append(text(r[7]))
            texts.append(text(r[8]))
        decoded = json.loads("[" + ",".join(texts) + "]")
        states = _VARIANT_STATES
        return [
            VariantRecord(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                states[r[5]],
                decoded[3 * i],
                decoded[3 * i + 1],
                decoded[3 * i + 2],
                r[9],
                r[10],
                r[11],
                r[12],
                r[13],
                r[14],
                r[15],
            )
            for i, r in enumerate(rows)
        ]

    @retried(idempotent=True)
    def get_variant(self, variant_id: int) -> VariantRecord:
        stmt = _GET_VARIANT["sqlite" if self._dialect == "sqlite" else "other"]
        with self._read() as conn:
            row = conn.execute(stmt, {"variant_key": variant_id}).first()
        if row is None:
            raise VariantNotFoundError(f"variant {variant_id} not found")
        return self._variant_records([row])[0]

    @retried(idempotent=True)
    def get_variant_by_generation(self, run_id: int, generation: int) -> VariantRecord | None:
        with self._read() as conn:
            stmt = select(*self._variant_select()).where(
                VARIANTS.c.run_id == run_id, VARIANTS.c.generation == generation
            )
            row = conn.execute(stmt).first()
            if row is None:
                self._require_run(conn, run_id)
                return None
        return self._variant_records([row])[0]

    @retried(idempotent=True)
    def list_variants(
        self,
        run_id: int,
        *,
        states: Iterable[VariantState] | None = None,
    ) -> list[VariantRecord]:
        stmt = select(*self._variant_select()).where(VARIANTS.c.run_id == run_id)
        if states is not None:
            stmt = stmt.where(VARIANTS.c.state.in_([int(s) for s in states]))
        stmt = stmt.order_by(VARIANTS.c.generation)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
            if not rows:
                self._require_run(conn, run_id)
                return []
        return self._variant_records(rows)

    @retried(idempotent=True)
    def count_variants(self, run_id: int) -> int:
        with self._read() as conn:
            stmt = select(func.count()).select_from(VARIANTS).where(VARIANTS.c.run_id == run_id)
            count = int(conn.execute(stmt).scalar_one())
            if count == 0:
                self._require_run(conn, run_id)
        return count

    @retried(idempotent=False)
    def set_variant_program(
        self,
        variant_id: int,
        program_id: str,
        *,
        meta_info: Mapping[str, Any] | None = None,
        event: EventSpec | None = None,
        engine: str | None = None,
        worker: int | None = None,
    ) -> None:
        values: dict[str, Any] = {"program_id": program_id, "updated_at": utcnow()}
        if meta_info is not None:
            values["meta_info"] = dict(meta_info)
        if engine is not None:
            values["engine"] = engine
        if worker is not None:
            values["worker"] = int(worker)
        params = {**values, "variant_key": variant_id}
        try:
            with self._write() as conn:
                applied, run_id = self._update_variant(
                    conn,
                    variant_id,
                    _UPDATE_VARIANT,
                    event is not None,
                    params,
                    _UPDATE_VARIANT_RETURNING,
                )
                if not applied:
                    raise VariantNotFoundError(f"variant {variant_id} not found")
                self._insert_event(conn, run_id, variant_id, event)
        except IntegrityError:
            raise StorageError(f"program {program_id} is not stored") from None

    @retried(idempotent=False)
    def set_variant_state(
        self,
        variant_id: int,
        state: VariantState,
        *,
        expected: VariantState | Iterable[VariantState],
        reason: str | None = None,
        release: bool = False,
        event: EventSpec | None = None,
    ) -> bool:
        allowed = [int(s) for s in normalise_expected(expected, VariantState)]
        values: dict[str, Any] = {"state": int(state), "updated_at": utcnow()}
        if reason is not None:
            values["reason"] = reason
        if release:
            values["owner"] = None
        params = {**values, "variant_key": variant_id, "allowed_states": allowed}
        with self._write() as conn:
            applied, run_id = self._update_variant(
                conn, variant_id, _SET_STATE, event is not None, params, _SET_STATE_RETURNING
            )
            if not applied:
                self._require_variant(conn, variant_id)
                return self._done(conn, False)
            self._insert_event(conn, run_id, variant_id, event)
            return self._done(conn, True)

    @retried(idempotent=False)
    def claim_variant(
        self,
        variant_id: int,
        owner: str,
        *,
        expected_owner: str | None,
        event: EventSpec | None = None,
    ) -> bool:
        now = utcnow()
        condition = (
            VARIANTS.c.owner.is_(None)
            if expected_owner is None
            else VARIANTS.c.owner == expected_owner
        )
        stmt = (
            update(VARIANTS)
            .where(VARIANTS.c.id == variant_id, condition)
            .values(owner=owner, heartbeat_at=now, updated_at=now)
        )
        with self._write() as conn:
            applied, run_id = self._update_variant(conn, variant_id, stmt, event is not None)
            if not applied:
                self._require_variant(conn, variant_id)
                return self._done(conn, False)
            self._insert_event(conn, run_id, variant_id, event)
            return self._done(conn, True)

    @retried(idempotent=True)
    def heartbeat(self, owner: str, variant_ids: Sequence[int]) -> None:
        ids = list(variant_ids)
        if not ids:
            return
        now = utcnow()
        with self._write() as conn:
            for i in range(0, len(ids), IN_CHUNK):
                conn.execute(
                    update(VARIANTS)
                    .where(VARIANTS.c.owner == owner, VARIANTS.c.id.in_(ids[i : i + IN_CHUNK]))
                    .values(heartbeat_at=now)
                )

    @retried(idempotent=True)
    def update_variant_metrics(self, variant_id: int, metrics: Mapping[str, Any]) -> None:
        stmt = _READ_FOR_UPDATE[self._dialect != "sqlite"]["metrics"]
        with self._write() as conn:
            row = conn.execute(stmt, {"variant_key": variant_id}).first()
            if row is None:
                raise VariantNotFoundError(f"variant {variant_id} not found")
            merged = {**(row[0] or {}), **metrics}
            conn.execute(
                _UPDATE_VARIANT,
                {"metrics": merged, "updated_at": utcnow(), "variant_key": variant_id},
            )

    # -- evaluations ------------------------------------------------------------------------
    @retried(idempotent=False)
    def add_evaluation(
        self,
        *,
        variant_id: int,
        stage: str,
        split: str,
        score: float,
        n: int,
        results: Sequence[Mapping[str, Any]],
        metrics: Mapping[str, Any],
        event: EventSpec | None = None,
        engine: str | None = None,
        worker: int | None = None,
    ) -> int:
        spec = EvaluationSpec(
            stage=stage,
            split=split,
            score=score,
            n=n,
            results=results,
            metrics=metrics,
            event=event,
        )
        return self._add_evaluations(variant_id, [spec], engine, worker)[0]

    @retried(idempotent=False)
    def add_evaluations(
        self,
        variant_id: int,
        evaluations: Sequence[EvaluationSpec],
        *,
        engine: str | None = None,
        worker: int | None = None,
    ) -> list[int]:
        return self._add_evaluations(variant_id, evaluations, engine, worker)

    def _add_evaluations(
        self,
        variant_id: int,
        evaluations: Sequence[EvaluationSpec],
        engine: str | None,
        worker: int | None,
    ) -> list[int]:
        """Insert ``evaluations`` of ``variant_id`` in one transaction: the variant's row read
        and updated once, whatever their number (see :meth:`add_evaluations`)."""
        values = [check_score(spec.score) for spec in evaluations]
        now = utcnow()
        stmt = _READ_FOR_UPDATE[self._dialect != "sqlite"]["scored"]
        try:
            with self._write() as conn:
                row = conn.execute(stmt, {"variant_key": variant_id}).first()
                if row is None:
                    raise VariantNotFoundError(f"variant {variant_id} not found")
                run_id, scores, variant_metrics = row
                scores = dict(scores or {})
                variant_metrics = dict(variant_metrics or {})
                # Whether an earlier evaluation may hold results a later one repeats: every
                # evaluation sets its stage's score, and one without results is never
                # rewritten as a reference (see ``_refer_earlier``).
                earlier = bool(scores)
                ids: list[int] = []
                for spec, value in zip(evaluations, values, strict=True):
                    stamp = (now, engine, worker)
                    ids.append(
                        self._insert_evaluation(conn, variant_id, spec, value, stamp, earlier)
                    )
                    earlier = earlier or bool(spec.results)
                    scores[spec.stage] = value
                    previous = variant_metrics.get(spec.stage)
                    merged = dict(previous) if isinstance(previous, Mapping) else {}
                    merged.update(spec.metrics)
                    variant_metrics[spec.stage] = merged
                if evaluations:
                    values_set = {"scores": scores, "metrics": variant_metrics, "updated_at": now}
                    conn.execute(_UPDATE_VARIANT, {**values_set, "variant_key": variant_id})
                self._insert_events(conn, int(run_id), variant_id, [e.event for e in evaluations])
                return self._done(conn, ids)
        except IntegrityError:
            stages = " or ".join(repr(spec.stage) for spec in evaluations)
            message = f"variant {variant_id} already has a {stages} evaluation"
            raise DuplicateError(message) from None

    def _insert_evaluation(
        self,
        conn: Connection,
        variant_id: int,
        spec: EvaluationSpec,
        score: float,
        stamp: tuple[Any, str | None, int | None],
        earlier: bool = True,
    ) -> int:
        """Insert one evaluation row (``stamp``: when, by which engine and worker); on SQLite,
        earlier results it repeats become references to it (``earlier``: the variant may have
        an evaluation with results already). Returns its id."""
        now, engine, worker = stamp
        records = [dict(r) for r in spec.results]
        result = conn.execute(
            _INSERT_EVALUATION,
            {
                "variant_id": variant_id,
                "stage": spec.stage,
                "split": spec.split,
                "score": score,
                "n": int(spec.n),
                "results": records,
                "metrics": dict(spec.metrics),
                "created_at": now,
                "engine": engine,
                "worker": None if worker is None else int(worker),
            },
        )
        evaluation_id = int(cast(Any, result.inserted_primary_key)[0])
        if self._dialect == "sqlite" and earlier and records:
            self._refer_earlier(conn, variant_id, spec.stage, records)
        return evaluation_id

    def _refer_earlier(
        self, conn: Connection, variant_id: int, stage: str, records: Sequence[Any]
    ) -> None:
        """SQLite: rewrite the results of the earlier evaluations of ``variant_id`` that
        ``records`` (those of ``stage``) hold, identically, as references to them (see
        :mod:`~hyperagents.storages._rdb._references`)."""
        rows = conn.execute(_OTHER_RESULTS, {"variant_key": variant_id, "stage_key": stage}).all()
        referred = {read_reference(r[2])[0] for r in rows if is_reference(r[2])}
        for evaluation_id, other, stored in rows:
            if stored is None or is_reference(stored) or other in referred:
                continue
            size = len(stored.encode("utf-8")) if isinstance(stored, str) else len(stored)
            reference = make_reference(stage, self._texts.text(stored, "[]"), size, records)
            if reference is not None:
                conn.execute(_REFER, {"evaluation_key": evaluation_id, "reference": reference})

    def _evaluation_results(self, rows: Sequence[Any]) -> dict[str, list[Any]]:
        """SQLite: the results of each of a variant's evaluation rows, by stage, references
        resolved.

        Raises:
            StorageError: A value is corrupt, or a reference's evaluation is missing.
        """
        text = self._texts.text
        found = {
            r.stage: json.loads(text(r.results, "[]")) for r in rows if not is_reference(r.results)
        }
        for r in rows:
            if is_reference(r.results):
                of, ids = read_reference(r.results)
                if of not in found:
                    raise StorageError(f"stored {r.stage!r} results refer to missing {of!r}")
                found[r.stage] = resolve_reference(ids, found[of])
        return found

    @retried(idempotent=True)
    def list_evaluations(self, variant_id: int) -> list[EvaluationRecord]:
        sqlite = self._dialect == "sqlite"
        with self._read() as conn:
            rows = conn.execute(_LIST_EVALUATIONS[sqlite], {"variant_key": variant_id}).all()
            if not rows:
                self._require_variant(conn, variant_id)
        if not sqlite:
            return [EvaluationRecord(*row) for row in rows]
        text = self._texts.text
        results = self._evaluation_results(rows)
        return [
            EvaluationRecord(
                **{
                    **row._mapping,
                    "results": results[row.stage],
                    "metrics": json.loads(text(row.metrics)),
                }
            )
            for row in rows
        ]
