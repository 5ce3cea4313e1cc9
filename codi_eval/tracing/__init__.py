"""Tracing: nested traces and spans recorded into the store."""

from codi_eval.store.records import EvaluationRecord, SpanRecord, TraceRecord, TraceTree, jsonable
from codi_eval.tracing.sinks import StoreSink, TraceWriteError
from codi_eval.tracing.tracer import (
    NOOP,
    CollectingSink,
    SpanHandle,
    TraceHandle,
    Tracer,
    current_span,
    current_trace,
)

__all__ = [
    "NOOP",
    "CollectingSink",
    "EvaluationRecord",
    "SpanHandle",
    "SpanRecord",
    "StoreSink",
    "TraceHandle",
    "TraceRecord",
    "TraceTree",
    "TraceWriteError",
    "Tracer",
    "current_span",
    "current_trace",
    "jsonable",
]
