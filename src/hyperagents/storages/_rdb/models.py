"""SQLAlchemy ORM models: the schema the Alembic migrations create.

The models document the schema and give typed column objects for the Core statements of
:class:`~hyperagents.storages.RDBStorage`; the tables themselves are created and upgraded only
by the migrations in ``alembic/versions`` (a test checks that both agree). Enums are stored as
integers, JSON fields with the generic JSON type (the big ones packed on SQLite, and program
files compressed: see :mod:`~hyperagents.storages._rdb._packing`), times as timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from hyperagents.storages._rdb._manifests import PackedManifest
from hyperagents.storages._rdb._packing import PackedJSON, PackedRecords

__all__ = [
    "BannedVariantModel",
    "Base",
    "BlobModel",
    "CheckpointModel",
    "EvaluationModel",
    "EventModel",
    "LLMCallModel",
    "ProgramModel",
    "RunEngineModel",
    "RunModel",
    "ServiceEventModel",
    "ServiceModel",
    "ServiceRequestModel",
    "UTCDateTime",
    "VariantModel",
    "WriteReceiptModel",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Event and evaluation ids may grow large; SQLite needs INTEGER for its rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A ``DateTime(timezone=True)`` that always reads back timezone-aware UTC.

    SQLite has no time zones: values are stored as naive UTC text
    (``YYYY-MM-DD HH:MM:SS.ffffff``, the layout SQLAlchemy uses, so it sorts in time order) and
    parsed with :meth:`datetime.fromisoformat`, which is much faster than a regular expression
    when thousands of rows are read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to storage; use timezone-aware UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite: naive UTC text
            return datetime.fromisoformat(value + "+00:00")
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base holding the metadata of every hyperagents table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RunModel(Base):
    """One experiment (``runs``)."""

    __tablename__ = "runs"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 - SQLAlchemy convention

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    task: Mapped[str] = mapped_column(String(255))
    mode: Mapped[str] = mapped_column(String(255))
    seed: Mapped[int] = mapped_column(BigInteger)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    seed_program_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Owner token of the engine driving the run (claimed and released by compare-and-set).
    engine: Mapped[str | None] = mapped_column(String(255))
    engine_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The task's own name (``task`` is the spec the run loads it by).
    task_name: Mapped[str | None] = mapped_column(String(255))
    experiment: Mapped[str | None] = mapped_column(String(255))
    arm: Mapped[str | None] = mapped_column(String(255))
    target_generations: Mapped[int | None] = mapped_column(Integer)
    elapsed_seconds: Mapped[float] = mapped_column(Float, server_default=text("0"))
    #: The variant pinned as the next parent (no foreign key: the run and its variants refer
    #: to each other, and both go together in ``delete_run``).
    pinned_parent: Mapped[int | None] = mapped_column(Integer)
    pinned_by: Mapped[str | None] = mapped_column(String(255))


class BannedVariantModel(Base):
    """A variant banned, with its descendants, as a parent of its run (``banned_variants``)."""

    __tablename__ = "banned_variants"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variants.id", ondelete="CASCADE"), primary_key=True
    )


class BlobModel(Base):
    """One distinct file content (``blobs``), keyed by its SHA-256."""

    __tablename__ = "blobs"
    #: On SQLite the hash is the row's key, stored once (migration 0011_compact).
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - SQLAlchemy convention

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    #: The file as :func:`~hyperagents.storages._rdb._packing.pack_blob` stores it, or the
    #: byte ``BLOB_ARTIFACT`` alone: the file is in the artifact store.
    data: Mapped[bytes] = mapped_column(LargeBinary)
    #: PostgreSQL: the large object holding an artifact's file (migration 0008_artifacts).
    lo_oid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ProgramModel(Base):
    """One distinct program manifest (``programs``): ``{path: blob sha256}``."""

    __tablename__ = "programs"
    #: On SQLite the id is the row's key, stored once (migration 0011_compact).
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - SQLAlchemy convention

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: On SQLite, possibly a difference from another row's manifest (see ``_manifests``).
    manifest: Mapped[dict[str, str]] = mapped_column(PackedManifest)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class VariantModel(Base):
    """One program in a run's archive (``variants``)."""

    __tablename__ = "variants"
    __table_args__ = (
        UniqueConstraint("run_id", "generation"),
        Index("ix_variants_run_id_state", "run_id", "state"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(Integer)
    program_id: Mapped[str | None] = mapped_column(ForeignKey("programs.id"))
    state: Mapped[int] = mapped_column(Integer)
    scores: Mapped[dict[str, float]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(PackedJSON)
    meta_info: Mapped[dict[str, Any]] = mapped_column(PackedJSON)
    reason: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The engine (owner token) and its worker slot that ran the meta agent.
    engine: Mapped[str | None] = mapped_column(String(255))
    worker: Mapped[int | None] = mapped_column(Integer)


class EvaluationModel(Base):
    """One evaluation stage of a variant (``evaluations``)."""

    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("variant_id", "stage"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(255))
    split: Mapped[str] = mapped_column(String(255))
    score: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
    results: Mapped[list[dict[str, Any]]] = mapped_column(PackedRecords)
    metrics: Mapped[dict[str, Any]] = mapped_column(PackedJSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The engine (owner token) and its worker slot that ran the evaluation.
    engine: Mapped[str | None] = mapped_column(String(255))
    worker: Mapped[int | None] = mapped_column(Integer)


class RunEngineModel(Base):
    """One engine process that worked on a run (``run_engines``); several may share a run."""

    __tablename__ = "run_engines"
    __table_args__ = (
        UniqueConstraint("run_id", "owner"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    owner: Mapped[str] = mapped_column(String(255))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    workers: Mapped[int] = mapped_column(Integer)
    status: Mapped[int] = mapped_column(Integer)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CheckpointModel(Base):
    """The newest checkpoint of a variant's training (``checkpoints``, migration
    0012_checkpoints). Its files are one payload, their contents one after the other in the
    order of ``files``, kept outside the row where the database has an artifact store (see
    :mod:`~hyperagents.storages._rdb._checkpoints`)."""

    __tablename__ = "checkpoints"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("variants.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255))
    step: Mapped[int] = mapped_column(BigInteger)
    #: ``[[name, size], ...]``: the files of the payload, in its order.
    files: Mapped[list[Any]] = mapped_column(JSON)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    #: PostgreSQL: the large object holding the payload (unlinked by a trigger when the row
    #: is deleted or names another one).
    lo_oid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: The payload itself, only where the database has no artifact store (an in-memory
    #: SQLite database).
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EventModel(Base):
    """A log entry of a run (``events``)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_run_id_id", "run_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(PackedJSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LLMCallModel(Base):
    """One recorded call to a language model (``llm_calls``)."""

    __tablename__ = "llm_calls"
    __table_args__ = (
        Index("ix_llm_calls_run_id_id", "run_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(255))
    model: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(255))
    attempt: Mapped[int] = mapped_column(Integer)
    cached: Mapped[bool] = mapped_column(Boolean)
    request: Mapped[dict[str, Any]] = mapped_column(PackedJSON)
    reply: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cost: Mapped[float] = mapped_column(Float)
    latency: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ServiceModel(Base):
    """A run's champion answering live requests (``services``); the variants it routes to
    have no foreign key: a candidate may come from another run."""

    __tablename__ = "services"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 - SQLAlchemy convention

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    champion_id: Mapped[int] = mapped_column(Integer)
    candidate_id: Mapped[int | None] = mapped_column(Integer)
    candidate_state: Mapped[int] = mapped_column(Integer)
    candidate_share: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(BigInteger)
    goal: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ServiceRequestModel(Base):
    """One request a service's arm answered (``service_requests``), with its feedback."""

    __tablename__ = "service_requests"
    __table_args__ = (
        Index("ix_service_requests_service_id_id", "service_id", "id"),
        Index("ix_service_requests_service_id_created_at", "service_id", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    variant_id: Mapped[int] = mapped_column(Integer)
    arm: Mapped[str] = mapped_column(String(16))
    #: A shadow answer's request (the one whose caller got the champion's answer).
    shadow_of: Mapped[int | None] = mapped_column(BigInteger)
    inputs: Mapped[Any] = mapped_column(JSON)
    output: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    latency: Mapped[float] = mapped_column(Float)
    cost: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    label: Mapped[Any] = mapped_column(JSON, nullable=True)
    feedback: Mapped[float | None] = mapped_column(Float)
    feedback_by: Mapped[str | None] = mapped_column(String(255))
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ServiceEventModel(Base):
    """A log entry of a service (``service_events``): triggers, plans, A/B decisions."""

    __tablename__ = "service_events"
    __table_args__ = (
        Index("ix_service_events_service_id_id", "service_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WriteReceiptModel(Base):
    """Proof that a write committed (``write_receipts``), for writes that must apply once.

    A write whose COMMIT was cut off by a dropped connection may or may not have committed.
    On PostgreSQL every such write inserts a receipt (a random token) first in its transaction
    and stores its return value in it; the retry looks the token up instead of applying the
    write again. Receipts are needed only while a call retries and are pruned after a day.
    """

    __tablename__ = "write_receipts"

    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
