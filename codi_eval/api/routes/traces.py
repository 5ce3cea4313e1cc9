"""``/traces``: the caller's traces, a trace's span tree, and totals. Only ever the caller's."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from codi_eval.api import queries
from codi_eval.api.auth import connection, current_user
from codi_eval.api.errors import not_found
from codi_eval.api.operations import Inputs, operation
from codi_eval.api.schemas import (
    Evaluation,
    ListTracesQuery,
    Span,
    TraceDetail,
    TraceList,
    TracePath,
    TraceStats,
    TraceSummary,
)


def _group_evaluations(rows: Sequence[Any]) -> dict[uuid.UUID, list[Evaluation]]:
    grouped: dict[uuid.UUID, list[Evaluation]] = {}
    for row in rows:
        grouped.setdefault(row.trace_id, []).append(Evaluation.model_validate(row))
    return grouped


def span_tree(rows: Sequence[Any]) -> list[Span]:
    """Spans nested by parent_span_id, siblings in start order; orphans become roots."""
    nodes: dict[uuid.UUID, Span] = {}
    for s in rows:
        nodes[s.id] = Span.model_validate(
            {
                **s._mapping,
                "tokens": {
                    "prompt": s.prompt_tokens,
                    "completion": s.completion_tokens,
                    "total": s.total_tokens,
                },
                "children": [],
            }
        )
    roots: list[Span] = []
    for s in rows:  # rows come in start order, so children lists do too
        parent = nodes.get(s.parent_span_id) if s.parent_span_id is not None else None
        (parent.children if parent is not None else roots).append(nodes[s.id])
    return roots


def _summary(row: Any, evaluations: list[Evaluation]) -> dict[str, Any]:
    return {**row._mapping, "tags": list(row.tags or []), "evaluations": evaluations}


@operation(
    "GET",
    "/traces",
    id="listTraces",
    tag="traces",
    summary="The caller's traces, newest first, with their evaluations.",
    response=TraceList,
    query=ListTracesQuery,
)
async def list_traces(request: web.Request, inputs: Inputs) -> TraceList:
    user = current_user(request)
    q: ListTracesQuery = inputs.query
    f = queries.TraceFilter(
        user_id=user.id, trace_type=q.trace_type, tag=q.tag, since=q.since, until=q.until
    )
    conn = await connection(request)
    rows = await queries.trace_page(conn, f, limit=q.page_size, offset=(q.page - 1) * q.page_size)
    total = await queries.trace_count(conn, f)
    evaluations = _group_evaluations(await queries.evaluations_of(conn, [r.id for r in rows]))
    return TraceList(
        traces=[TraceSummary.model_validate(_summary(r, evaluations.get(r.id, []))) for r in rows],
        total=total,
        page=q.page,
        page_size=q.page_size,
    )


@operation(
    "GET",
    "/traces/stats",
    id="traceStats",
    tag="traces",
    summary="Totals over the caller's traces.",
    response=TraceStats,
)
async def trace_stats(request: web.Request, inputs: Inputs) -> TraceStats:
    user = current_user(request)
    stats = await queries.trace_stats(await connection(request), user.id)
    return TraceStats.model_validate(stats)


@operation(
    "GET",
    "/traces/{trace_id}",
    id="getTrace",
    tag="traces",
    summary="One of the caller's traces with its span tree and evaluations.",
    response=TraceDetail,
    path_params=TracePath,
    errors=(404,),
)
async def get_trace(request: web.Request, inputs: Inputs) -> TraceDetail:
    user = current_user(request)
    try:
        trace_id = uuid.UUID(inputs.path.trace_id)
    except ValueError:
        # A malformed id cannot name a trace: the same 404 as a missing one.
        raise not_found("trace", field="trace_id") from None
    conn = await connection(request)
    row = await queries.trace_of_user(conn, user.id, trace_id)
    if row is None:
        raise not_found("trace", field="trace_id")
    spans = await queries.spans_of(conn, trace_id)
    evaluations = await queries.evaluations_of(conn, [trace_id])
    return TraceDetail.model_validate(
        {
            **_summary(row, [Evaluation.model_validate(e) for e in evaluations]),
            "spans": span_tree(spans),
        }
    )
