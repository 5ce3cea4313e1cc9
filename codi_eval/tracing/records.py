"""Plain records the tracer produces and sinks persist: a finished trace with its spans."""

from __future__ import annotations

import dataclasses
import functools
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

# Values under keys like these never reach a trace (the seed's users bring their own keys).
# Anchored at the end so counts such as "tokens" or "total_tokens" are not mistaken for one.
_SECRET_KEY = re.compile(
    r"(?:api[_-]?key(?:[_-]encrypted)?|secret(?:[_-]?key)?|password|passwd|authorization"
    r"|cookie|(?:^|[_-])token)$",
    re.I,
)
REDACTED = "[redacted]"
_MAX_STR = 200_000


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    # A trace uses a few dozen distinct keys, each thousands of times.
    return _SECRET_KEY.search(key) is not None


def jsonable(value: Any, _depth: int = 0) -> Any:
    """A JSON-safe copy of ``value``: secrets redacted, unknown objects as their repr."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= _MAX_STR else value[:_MAX_STR] + "…[truncated]"
    if _depth > 20:
        return repr(value)[:200]
    if isinstance(value, dict):
        return {
            str(k): (
                REDACTED if _is_secret_key(str(k)) and v is not None else jsonable(v, _depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, _depth + 1) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), _depth + 1)
    return repr(value)[:2000]


def error_info(exc: BaseException) -> dict[str, Any]:
    info: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)[:4000]}
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str):
        info["kind"] = kind  # ModelError's taxonomy, so failures can be grouped
    return info


@dataclass
class SpanRecord:
    id: uuid.UUID
    trace_id: uuid.UUID
    parent_span_id: uuid.UUID | None
    name: str
    type: str
    start_time: datetime
    end_time: datetime | None = None
    duration_ms: float | None = None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    provider: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    status: str = "ok"
    error: dict[str, Any] | None = None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trace_id": self.trace_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name[:255],
            "type": self.type,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration_ms": self.duration_ms,
            "input": jsonable(self.input),
            "output": jsonable(self.output),
            "meta_data": jsonable(self.metadata),
            "model": self.model,
            "provider": self.provider,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost": self.cost,
            "status": self.status,
            "error": self.error,
        }


@dataclass
class EvaluationRecord:
    id: uuid.UUID
    trace_id: uuid.UUID
    metric_name: str
    score: float | None
    reason: str | None = None
    span_id: uuid.UUID | None = None
    status: str = "ok"
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "metric_name": self.metric_name[:100],
            "score": self.score,
            "reason": self.reason,
            "status": self.status,
            "meta_data": jsonable(self.metadata),
            "created_at": self.created_at,
        }


@dataclass
class TraceRecord:
    id: uuid.UUID
    name: str
    trace_type: str
    start_time: datetime
    end_time: datetime | None = None
    duration_ms: int | None = None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    user_id: int | None = None
    project_id: int | None = None
    parent_trace_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None
    status: str = "ok"
    error: dict[str, Any] | None = None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "project_id": self.project_id,
            "parent_trace_id": self.parent_trace_id,
            "run_id": self.run_id,
            "trace_type": self.trace_type[:50],
            "name": self.name[:255],
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration_ms": self.duration_ms,
            "input_data": jsonable(self.input),
            "output_data": jsonable(self.output),
            "meta_data": jsonable(self.metadata),
            "tags": list(self.tags),
            "status": self.status,
            "error": self.error,
            "created_at": self.end_time or self.start_time,
        }


# Statements that must commit atomically with a trace (e.g. the runner's run row); they
# see the finished tree, so they can record its outcome.
Finalizer = Callable[["AsyncSession", "TraceTree"], Awaitable[None]]


@dataclass(frozen=True)
class RowUpdate:
    """Values for one row of ``table``, computed from the finished tree at commit time.

    Updates of the same table and columns across a batch go out as one executemany.
    """

    table: str
    row_id: uuid.UUID
    compute: Callable[[TraceTree], dict[str, Any]]


@dataclass
class TraceTree:
    """A finished trace with everything under it; a sink writes it in one transaction."""

    trace: TraceRecord
    spans: list[SpanRecord] = field(default_factory=list)
    evaluations: list[EvaluationRecord] = field(default_factory=list)
    finalizers: list[Finalizer] = field(default_factory=list)
    row_updates: list[RowUpdate] = field(default_factory=list)
    export: bool = False  # queue a copy for Opik in the same transaction
    export_project: str | None = None
