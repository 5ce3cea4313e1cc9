"""The trace record: one type for a trace, its spans and its evaluations.

The tracer produces these records, the store writes them (:meth:`row`), the API serialises
them and the Opik exporter maps them — each in one place. Field names are the columns' (and
the API's): ``input_data``, ``output_data``, ``meta_data``, as the seed named them for traces.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from codi_eval.store.faults import describe, is_store_fault

# Values under keys like these never reach a trace (the seed's users bring their own keys).
# Anchored at the end so counts such as "tokens" or "total_tokens" are not mistaken for one.
_SECRET_KEY = re.compile(
    r"(?:api[_-]?key(?:[_-]encrypted)?|secret(?:[_-]?key)?|password|passwd|authorization"
    r"|cookie|(?:^|[_-])token)$",
    re.I,
)
REDACTED = "[redacted]"
_MAX_STR = 200_000
# What no store holds in JSON text: NUL (PostgreSQL's JSONB refuses \u0000) and lone
# surrogates (not Unicode: UTF-8 cannot encode them, so the write itself fails).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(text: str) -> str:
    """``text`` with NUL and lone surrogates as U+FFFD, so a model's odd answer is recorded
    instead of failing the whole trace's write."""
    if text.isascii():
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    return _UNSTORABLE.sub("\ufffd", text)


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    # A trace uses a few dozen distinct keys, each thousands of times.
    return _SECRET_KEY.search(key) is not None


def jsonable(value: Any, _depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` that every store can hold: secrets redacted, unknown
    objects as their repr, NUL and lone surrogates as U+FFFD."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _storable(value if len(value) <= _MAX_STR else value[:_MAX_STR] + "…[truncated]")
    if _depth > 20:
        return repr(value)[:200]
    if isinstance(value, dict):
        return {
            _storable(str(k)): (
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
    if is_store_fault(exc):
        # Infrastructure, not a result: marked so the run goes back to pending, and said
        # without the SQL text a driver error carries.
        return {"type": type(exc).__name__, "message": describe(exc), "store_fault": True}
    info: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)[:4000]}
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str):
        info["kind"] = kind  # ModelError's taxonomy, so failures can be grouped
    return info


R = TypeVar("R", bound="_Record")


class _Record:
    """Rows in and out: :meth:`row` for a write, :meth:`from_row` for a read."""

    __slots__ = ()
    _json: tuple[str, ...] = ()  # JSON columns: made JSON-safe (and redacted) on the way in
    _limits: dict[str, int] = {}  # text columns with a length limit

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        json_, limits = self._json, self._limits
        for name in _field_names(type(self)):
            value = getattr(self, name)
            if name in json_:
                value = jsonable(value)
            elif name in limits and isinstance(value, str):
                value = value[: limits[name]]
            out[name] = value
        return out

    @classmethod
    def from_row(cls: type[R], row: Mapping[str, Any] | Any) -> R:
        data = row if isinstance(row, Mapping) else row._mapping
        names = _field_names(cls)
        return cls(**{k: v for k, v in data.items() if k in names})


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """A record class's fields, in order (``dataclasses.fields`` rebuilds them every call)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(slots=True)
class SpanRecord(_Record):
    id: uuid.UUID
    trace_id: uuid.UUID
    parent_span_id: uuid.UUID | None
    name: str
    type: str
    start_time: datetime
    end_time: datetime | None = None
    duration_ms: float | None = None
    input_data: Any = None
    output_data: Any = None
    meta_data: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    provider: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    status: str = "ok"
    error: dict[str, Any] | None = None

    _json = ("input_data", "output_data", "meta_data")
    _limits = {"name": 255}


@dataclass(slots=True)
class EvaluationRecord(_Record):
    id: uuid.UUID
    trace_id: uuid.UUID
    metric_name: str
    score: float | None
    reason: str | None = None
    span_id: uuid.UUID | None = None
    status: str = "ok"
    meta_data: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    _json = ("meta_data",)
    _limits = {"metric_name": 100}


@dataclass(slots=True)
class TraceRecord(_Record):
    id: uuid.UUID
    name: str
    trace_type: str
    start_time: datetime
    end_time: datetime | None = None
    duration_ms: int | None = None
    input_data: Any = None
    output_data: Any = None
    meta_data: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    user_id: int | None = None
    project_id: int | None = None
    parent_trace_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None
    status: str = "ok"
    error: dict[str, Any] | None = None
    created_at: datetime | None = None

    _json = ("input_data", "output_data", "meta_data")
    _limits = {"name": 255, "trace_type": 50}

    def row(self) -> dict[str, Any]:
        out = _Record.row(self)
        out["tags"] = list(self.tags or [])
        out["created_at"] = self.created_at or self.end_time or self.start_time
        return out


# The run row a trace stands for gets these values, computed from the finished tree in the
# transaction that stores it (so a run row and its trace are never half-written). A
# ``status`` of "pending" gives the run back (its work was cut short by infrastructure):
# the row is released and the trace is not stored.
RunOutcome = Callable[["TraceTree"], dict[str, Any]]


@dataclass
class TraceTree:
    """A finished trace with everything under it; the store writes it in one transaction."""

    trace: TraceRecord
    spans: list[SpanRecord] = field(default_factory=list)
    evaluations: list[EvaluationRecord] = field(default_factory=list)
    run_outcome: RunOutcome | None = None
    run_owner: str | None = None  # the worker holding the run's lease; checked when written
    export: bool = False  # queue a copy for Opik in the same transaction
    export_project: str | None = None
