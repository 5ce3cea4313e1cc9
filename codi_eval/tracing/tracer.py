"""Async-safe nested traces and spans.

The current trace and span live in :mod:`contextvars`, so each asyncio task (and each
of 200 concurrent summarizations under ``asyncio.gather``) keeps its own tree. A
finished trace goes to a sink as one :class:`TraceTree`; spans outside any trace, and
everything when tracing is off, cost one attribute check and a shared no-op object.
"""

from __future__ import annotations

import functools
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from codi_eval.ids import uuid7
from codi_eval.store.records import (
    EvaluationRecord,
    RunOutcome,
    SpanRecord,
    TraceRecord,
    TraceTree,
    error_info,
)

SPAN_TYPES = frozenset({"general", "llm", "judge", "metric", "tool"})
F = TypeVar("F", bound=Callable[..., Any])


class Sink(Protocol):
    async def submit(self, tree: TraceTree) -> None: ...


class _Clock:
    """Wall-clock start plus a monotonic offset: timestamps that never run backwards."""

    __slots__ = ("wall", "mono")

    def __init__(self) -> None:
        self.wall = datetime.now(UTC)
        self.mono = time.perf_counter()

    def now(self) -> tuple[datetime, float]:
        elapsed = time.perf_counter() - self.mono
        return self.wall + timedelta(seconds=elapsed), elapsed * 1000.0


class TraceHandle:
    """The trace being recorded; what ``async with tracer.trace(...)`` yields."""

    __slots__ = (
        "record",
        "spans",
        "evaluations",
        "run_outcome",
        "run_owner",
        "_clock",
        "export",
        "export_project",
    )

    def __init__(self, record: TraceRecord, clock: _Clock) -> None:
        self.record = record
        self.spans: list[SpanRecord] = []
        self.evaluations: list[EvaluationRecord] = []
        self.run_outcome: RunOutcome | None = None
        self.run_owner: str | None = None
        self._clock = clock
        self.export = False
        self.export_project: str | None = None

    @property
    def id(self) -> uuid.UUID:
        return self.record.id

    @property
    def recording(self) -> bool:
        return True

    def set_output(self, output: Any) -> None:
        self.record.output_data = output

    def update(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        input: Any = None,
    ) -> None:
        if metadata:
            self.record.meta_data.update(metadata)
        if tags:
            self.record.tags.extend(t for t in tags if t not in self.record.tags)
        if input is not None:
            self.record.input_data = input

    def record_run(self, outcome: RunOutcome, owner: str | None = None) -> None:
        """Set the run row this trace stands for (``record.run_id``) to ``outcome(tree)``, in
        the transaction that stores the trace (batched with other traces' run rows) — only
        while ``owner`` still holds the run's lease; otherwise nothing of it is stored."""
        self.run_outcome = outcome
        self.run_owner = owner

    def add_evaluation(
        self,
        metric_name: str,
        score: float | None,
        reason: str | None = None,
        *,
        span_id: uuid.UUID | None = None,
        status: str = "ok",
        metadata: dict[str, Any] | None = None,
    ) -> EvaluationRecord:
        record = EvaluationRecord(
            id=uuid7(),
            trace_id=self.record.id,
            metric_name=metric_name,
            score=score,
            reason=reason,
            span_id=span_id,
            status=status,
            meta_data=metadata or {},
            created_at=datetime.now(UTC),
        )
        self.evaluations.append(record)
        return record


class SpanHandle:
    """The span being recorded; what ``async with tracer.span(...)`` yields."""

    __slots__ = ("record",)

    def __init__(self, record: SpanRecord) -> None:
        self.record = record

    @property
    def id(self) -> uuid.UUID:
        return self.record.id

    @property
    def recording(self) -> bool:
        return True

    @property
    def metadata(self) -> dict[str, Any]:
        return self.record.meta_data

    def set_output(self, output: Any) -> None:
        self.record.output_data = output

    def set_input(self, value: Any) -> None:
        self.record.input_data = value

    def update(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        model: str | None = None,
        provider: str | None = None,
    ) -> None:
        if metadata:
            self.record.meta_data.update(metadata)
        if model is not None:
            self.record.model = model
        if provider is not None:
            self.record.provider = provider

    def set_usage(
        self,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        total_tokens: int | None = None,
        cost: float | None = None,
    ) -> None:
        r = self.record
        r.prompt_tokens = _add(r.prompt_tokens, prompt_tokens)
        r.completion_tokens = _add(r.completion_tokens, completion_tokens)
        if total_tokens is None and (prompt_tokens is not None or completion_tokens is not None):
            total_tokens = (prompt_tokens or 0) + (completion_tokens or 0)
        r.total_tokens = _add(r.total_tokens, total_tokens)
        r.cost = _add(r.cost, cost)


def _add(a: Any, b: Any) -> Any:
    if b is None:
        return a
    return b if a is None else a + b


class _NoopHandle:
    """Stands in for a trace or span when nothing is recorded; every method does nothing."""

    __slots__ = ()
    id = None
    recording = False
    metadata: dict[str, Any] = {}  # never written to: callers check ``recording`` first

    def __getattr__(self, _name: str) -> Callable[..., None]:
        return _noop

    async def __aenter__(self) -> _NoopHandle:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


NOOP = _NoopHandle()

_current_trace: ContextVar[TraceHandle | None] = ContextVar("codi_eval_trace", default=None)
_current_span: ContextVar[SpanHandle | None] = ContextVar("codi_eval_span", default=None)


def current_trace() -> TraceHandle | None:
    return _current_trace.get()


def current_span() -> SpanHandle | None:
    return _current_span.get()


class Tracer:
    """Records traces and spans into a sink.

    ``Tracer(sink)`` records; ``Tracer(None)`` or ``enabled=False`` records nothing.
    A span opened outside any trace records nothing either, so library code can
    always open spans and leave the decision to whoever opened (or did not open) the trace.
    """

    def __init__(self, sink: Sink | None, *, enabled: bool = True) -> None:
        self.sink = sink
        self.enabled = enabled and sink is not None

    def trace(
        self,
        name: str,
        *,
        trace_type: str = "general",
        input: Any = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        user_id: int | None = None,
        project_id: int | None = None,
        parent_trace_id: uuid.UUID | None = None,
        run_id: uuid.UUID | None = None,
        id: uuid.UUID | None = None,
        enabled: bool = True,
        export: bool = False,
        export_project: str | None = None,
    ) -> Any:
        """``async with tracer.trace("name") as t:`` — a new root trace in this context."""
        if not (self.enabled and enabled):
            return _DisabledTrace()
        return self._trace(
            name,
            trace_type,
            input,
            metadata,
            tags,
            user_id,
            project_id,
            parent_trace_id,
            run_id,
            id,
            export,
            export_project,
        )

    @asynccontextmanager
    async def _trace(
        self,
        name: str,
        trace_type: str,
        input: Any,
        metadata: dict[str, Any] | None,
        tags: list[str] | None,
        user_id: int | None,
        project_id: int | None,
        parent_trace_id: uuid.UUID | None,
        run_id: uuid.UUID | None,
        id: uuid.UUID | None,
        export: bool,
        export_project: str | None,
    ) -> AsyncIterator[TraceHandle]:
        clock = _Clock()
        record = TraceRecord(
            id=id or uuid7(),
            name=name,
            trace_type=trace_type,
            start_time=clock.wall,
            input_data=input,
            meta_data=dict(metadata or {}),
            tags=list(tags or []),
            user_id=user_id,
            project_id=project_id,
            parent_trace_id=parent_trace_id,
            run_id=run_id,
        )
        handle = TraceHandle(record, clock)
        handle.export = export
        handle.export_project = export_project
        trace_token = _current_trace.set(handle)
        span_token = _current_span.set(None)
        try:
            yield handle
        except BaseException as exc:
            record.status = "error"
            record.error = error_info(exc)
            raise
        finally:
            _current_span.reset(span_token)
            _current_trace.reset(trace_token)
            record.end_time, elapsed = clock.now()
            record.duration_ms = int(round(elapsed))
            assert self.sink is not None
            await self.sink.submit(
                TraceTree(
                    trace=record,
                    spans=handle.spans,
                    evaluations=handle.evaluations,
                    run_outcome=handle.run_outcome,
                    run_owner=handle.run_owner,
                    export=handle.export,
                    export_project=handle.export_project,
                )
            )

    def span(
        self,
        name: str,
        *,
        type: str = "general",
        input: Any = None,
        metadata: dict[str, Any] | None = None,
        model: str | None = None,
        provider: str | None = None,
    ) -> Any:
        """``async with tracer.span("name", type="llm") as s:`` — nested under the current span."""
        trace = _current_trace.get()
        if trace is None or not self.enabled:
            return NOOP
        if type not in SPAN_TYPES:
            raise ValueError(f"span type must be one of {sorted(SPAN_TYPES)}, not {type!r}")
        return self._span(trace, name, type, input, metadata, model, provider)

    @asynccontextmanager
    async def _span(
        self,
        trace: TraceHandle,
        name: str,
        type: str,
        input: Any,
        metadata: dict[str, Any] | None,
        model: str | None,
        provider: str | None,
    ) -> AsyncIterator[SpanHandle]:
        parent = _current_span.get()
        start, start_ms = trace._clock.now()
        record = SpanRecord(
            id=uuid7(),
            trace_id=trace.record.id,
            parent_span_id=parent.record.id if parent is not None else None,
            name=name,
            type=type,
            start_time=start,
            input_data=input,
            meta_data=dict(metadata or {}),
            model=model,
            provider=provider,
        )
        handle = SpanHandle(record)
        token = _current_span.set(handle)
        try:
            yield handle
        except BaseException as exc:
            record.status = "error"
            record.error = error_info(exc)
            raise
        finally:
            _current_span.reset(token)
            record.end_time, end_ms = trace._clock.now()
            record.duration_ms = end_ms - start_ms
            trace.spans.append(record)

    def evaluation(
        self,
        metric_name: str,
        score: float | None,
        reason: str | None = None,
        *,
        span_id: uuid.UUID | None = None,
        status: str = "ok",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Attach a score to the current trace (no-op outside a trace)."""
        trace = _current_trace.get()
        if trace is not None and self.enabled:
            trace.add_evaluation(
                metric_name, score, reason, span_id=span_id, status=status, metadata=metadata
            )

    def track(
        self,
        name: str | None = None,
        *,
        type: str = "general",
        capture_input: bool = True,
        capture_output: bool = True,
    ) -> Callable[[F], F]:
        """Decorator: run the function inside a span (async or sync functions).

        When tracing is off or no trace is open the wrapper calls straight through.
        """

        def decorate(fn: F) -> F:
            span_name = name or fn.__qualname__
            signature = inspect.signature(fn)

            def bound_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                if not capture_input:
                    return None
                try:
                    bound = signature.bind_partial(*args, **kwargs)
                except TypeError:
                    return {"args": args, "kwargs": kwargs}
                return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}

            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    if not self.enabled or _current_trace.get() is None:
                        return await fn(*args, **kwargs)
                    async with self.span(
                        span_name, type=type, input=bound_input(args, kwargs)
                    ) as s:
                        result = await fn(*args, **kwargs)
                        if capture_output:
                            s.set_output(result)
                        return result

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(fn)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                trace = _current_trace.get()
                if not self.enabled or trace is None:
                    return fn(*args, **kwargs)
                # A sync function cannot enter an async context manager; record the span by hand.
                parent = _current_span.get()
                start, start_ms = trace._clock.now()
                record = SpanRecord(
                    id=uuid7(),
                    trace_id=trace.record.id,
                    parent_span_id=parent.record.id if parent else None,
                    name=span_name,
                    type=type,
                    start_time=start,
                    input_data=bound_input(args, kwargs),
                )
                token = _current_span.set(SpanHandle(record))
                try:
                    result = fn(*args, **kwargs)
                    if capture_output:
                        record.output_data = result
                    return result
                except BaseException as exc:
                    record.status, record.error = "error", error_info(exc)
                    raise
                finally:
                    _current_span.reset(token)
                    record.end_time, end_ms = trace._clock.now()
                    record.duration_ms = end_ms - start_ms
                    trace.spans.append(record)

            return sync_wrapper  # type: ignore[return-value]

        return decorate


class _DisabledTrace:
    """A trace that records nothing but still hides any outer trace from nested spans."""

    __slots__ = ("_token",)

    async def __aenter__(self) -> _NoopHandle:
        self._token = _current_trace.set(None)
        return NOOP

    async def __aexit__(self, *exc: object) -> None:
        _current_trace.reset(self._token)


class CollectingSink:
    """Keeps finished trees in memory (tests, dry runs, and the benchmark's enabled case)."""

    def __init__(self) -> None:
        self.trees: list[TraceTree] = []

    async def submit(self, tree: TraceTree) -> None:
        self.trees.append(tree)
