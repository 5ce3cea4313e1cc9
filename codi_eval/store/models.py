"""The schema: SQLAlchemy 2 typed models shared by PostgreSQL and the embedded SQLite store.

The seed's tables (traces, evaluations, prompts) keep their columns and names; the rest
(users, projects, spans, datasets, experiments, runs, cache, outbox) serve the runner,
the API and the Opik exporter. JSON columns are JSONB on PostgreSQL and JSON on SQLite.
See ``codi_eval/store/README.md`` for the diagram.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from codi_eval.ids import uuid7

# One JSON type: JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")
# Tags are TEXT[] on PostgreSQL as in the seed; a JSON list on SQLite.
TagsType = JSON().with_variant(postgresql.ARRAY(Text()), "postgresql")

SPAN_TYPES = ("general", "llm", "judge", "metric", "tool")
RUN_STATUSES = ("pending", "running", "succeeded", "failed")
OUTBOX_STATUSES = ("pending", "sent", "failed")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both stores (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the token
    opik_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    opik_workspace: Mapped[str | None] = mapped_column(String(255))
    # Fernet ciphertext keyed by CODI_EVAL_SECRET_KEY; the plain key is never stored.
    opik_api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The token's lifecycle (migration 0003): issued, optional expiry, revocation, last use.
    token_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Prompt(Base):
    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    template: Mapped[str] = mapped_column(Text)
    variables: Mapped[list[str]] = mapped_column(JSONType, default=list)
    description: Mapped[str | None] = mapped_column(Text)
    template_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class Dataset(Base):
    """One immutable version of a dataset; a changed file is a new row."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("name", "content_hash"), UniqueConstraint("name", "version"))

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    item_count: Mapped[int] = mapped_column(Integer)
    source_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DatasetItem(Base):
    __tablename__ = "dataset_items"
    __table_args__ = (
        UniqueConstraint("dataset_id", "item_key"),
        Index("ix_dataset_items_dataset_position", "dataset_id", "position"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    item_key: Mapped[str] = mapped_column(String(512))  # the JSONL row's own id
    language: Mapped[str] = mapped_column(String(50))
    code: Mapped[str] = mapped_column(Text)
    instruction: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    source: Mapped[Any] = mapped_column(JSONType, nullable=True)


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        Index("ix_experiments_name_created", "name", "created_at"),
        # Two processes creating the same experiment get one (migration 0005).
        UniqueConstraint("name", "spec_hash", "generation"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(255))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)  # the resolved spec
    spec_hash: Mapped[str] = mapped_column(String(64))
    spec_path: Mapped[str | None] = mapped_column(Text)
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id"))
    prompt_hashes: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="created")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    meta_data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # 0 for an experiment's first run under this name and hash; `run --new` adds one.
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class ExperimentCell(Base):
    """One point of the matrix: prompt version × density iterations × model."""

    __tablename__ = "experiment_cells"
    __table_args__ = (UniqueConstraint("experiment_id", "key"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    experiment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(255))  # e.g. cod_iteration@2/d3/gemini-2.5-flash
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(String(255))  # name@version
    density_iterations: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(255))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Run(Base):
    """One cell × dataset item × repeat; committed once, when it finishes."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("cell_id", "dataset_item_id", "repeat"),
        Index("ix_runs_experiment_cell_status", "experiment_id", "cell_id", "status"),
        # Claiming: the next pending (or lease-expired) runs of an experiment, by id.
        Index("ix_runs_experiment_status_id", "experiment_id", "status", "id"),
        CheckConstraint("status IN ('pending', 'running', 'succeeded', 'failed')", name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    experiment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE")
    )
    cell_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("experiment_cells.id", ondelete="CASCADE")
    )
    dataset_item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dataset_items.id"))
    repeat: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    # No FK: the trace is written in the same transaction and points back via traces.run_id.
    trace_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_class: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    judge_score: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    total_tokens: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    model_calls: Mapped[int] = mapped_column(Integer, default=0)
    cache_hits: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Who is running it and until when (renewed while it works); see experiments/leases.py.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Trace(Base):
    __tablename__ = "traces"
    __table_args__ = (
        # End in id so a deep page of a user's traces is an index-only scan (migration 0002).
        Index(
            "ix_traces_user_type_start_id",
            "user_id",
            "trace_type",
            text("start_time DESC"),
            text("id DESC"),
        ),
        Index("ix_traces_user_start_id", "user_id", text("start_time DESC"), text("id DESC")),
        Index("ix_traces_run_id", "run_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    parent_trace_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("traces.id", ondelete="SET NULL")
    )
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    trace_type: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(255))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    input_data: Mapped[Any] = mapped_column(JSONType, nullable=True)
    output_data: Mapped[Any] = mapped_column(JSONType, nullable=True)
    meta_data: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    tags: Mapped[list[str] | None] = mapped_column(TagsType, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="ok")  # ok | error
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TraceCount(Base):
    """How many traces a user has of one type (migration 0007), kept by triggers on traces.

    ``GET /traces`` reports a total; counting a user's 100,000 traces took 34 ms of a 38 ms
    request. Triggers on every insert, delete, update and truncate of ``traces`` keep these
    rows exact whatever writes them (the API, the runner, SQL by hand), so an unfiltered
    total is a sum over at most a few rows. Traces without a user are not counted.
    """

    __tablename__ = "trace_counts"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    trace_type: Mapped[str] = mapped_column(String(50), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class Span(Base):
    __tablename__ = "spans"
    __table_args__ = (
        Index("ix_spans_trace_start", "trace_id", "start_time"),
        CheckConstraint("type IN ('general', 'llm', 'judge', 'metric', 'tool')", name="type"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    trace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("traces.id", ondelete="CASCADE"))
    parent_span_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(20), default="general")
    model: Mapped[str | None] = mapped_column(String(255))
    provider: Mapped[str | None] = mapped_column(String(100))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    total_tokens: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[float | None] = mapped_column(Float)
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_ms: Mapped[float | None] = mapped_column(Float)
    input_data: Mapped[Any] = mapped_column(JSONType, nullable=True)
    output_data: Mapped[Any] = mapped_column(JSONType, nullable=True)
    meta_data: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="ok")
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_trace_metric", "trace_id", "metric_name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)
    trace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("traces.id", ondelete="CASCADE"))
    span_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    metric_name: Mapped[str] = mapped_column(String(100))
    score: Mapped[float | None] = mapped_column(Float)  # None only when status is failed
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="ok")  # ok | failed
    meta_data: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LLMCacheEntry(Base):
    """A cached model answer, keyed by everything that determines it (see experiments.cache)."""

    __tablename__ = "llm_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(255))
    prompt_hash: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutboxEntry(Base):
    """A copy waiting to be sent to Opik; written in the transaction of the data it copies."""

    __tablename__ = "opik_outbox"
    __table_args__ = (
        Index("ix_opik_outbox_status_id", "status", "id"),
        UniqueConstraint("kind", "entity_id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(32))  # trace | dataset | prompt | experiment
    entity_id: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A sync that is sending this row, and until when (claimed like runs).
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ModelLimit(Base):
    """A model's shared leaky bucket (migration 0006): the earliest start of its next call."""

    __tablename__ = "model_limits"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float)  # epoch seconds
    paused_until: Mapped[float | None] = mapped_column(Float)


class ModelSlot(Base):
    """One of a model's concurrent-call slots, held by a worker until ``expires_at``."""

    __tablename__ = "model_slots"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[float | None] = mapped_column(Float)
