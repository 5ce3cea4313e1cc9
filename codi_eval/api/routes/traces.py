"""``/traces``: the caller's traces, a trace's span tree, and totals. Only ever the caller's."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from codi_eval.api import queries
from codi_eval.api.auth import connection, current_user
from codi_eval.api.errors import not_found
from codi_eval.api.http import iso, json_ok
from codi_eval.api.state import QUERY


def _evaluation(row: Any) -> dict[str, Any]:
    return {
        "metric_name": row.metric_name,
        "score": row.score,
        "reason": row.reason,
        "span_id": str(row.span_id) if row.span_id is not None else None,
    }


def _trace(row: Any, evaluations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "trace_type": row.trace_type,
        "name": row.name,
        "start_time": iso(row.start_time),
        "end_time": iso(row.end_time),
        "duration_ms": row.duration_ms,
        "input_data": row.input_data,
        "output_data": row.output_data,
        "meta_data": row.meta_data,
        "tags": list(row.tags or []),
        "status": row.status,
        "evaluations": evaluations,
    }


def _group_evaluations(rows: Sequence[Any]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    grouped: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row.trace_id, []).append(_evaluation(row))
    return grouped


def span_tree(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Spans nested by parent_span_id, siblings in start order; orphans become roots."""
    nodes: dict[uuid.UUID, dict[str, Any]] = {}
    for s in rows:
        nodes[s.id] = {
            "id": str(s.id),
            "parent_span_id": str(s.parent_span_id) if s.parent_span_id is not None else None,
            "name": s.name,
            "type": s.type,
            "model": s.model,
            "provider": s.provider,
            "tokens": {
                "prompt": s.prompt_tokens,
                "completion": s.completion_tokens,
                "total": s.total_tokens,
            },
            "cost": s.cost,
            "start_time": iso(s.start_time),
            "end_time": iso(s.end_time),
            "duration_ms": s.duration_ms,
            "input": s.input,
            "output": s.output,
            "metadata": s.meta_data,
            "status": s.status,
            "error": s.error,
            "children": [],
        }
    roots: list[dict[str, Any]] = []
    for s in rows:  # rows come in start order, so children lists do too
        parent = nodes.get(s.parent_span_id) if s.parent_span_id is not None else None
        (parent["children"] if parent is not None else roots).append(nodes[s.id])
    return roots


async def list_traces(request: web.Request) -> web.Response:
    user = current_user(request)
    q = request[QUERY]
    page, page_size = q["page"], q["page_size"]
    f = queries.TraceFilter(
        user_id=user.id,
        trace_type=q["trace_type"],
        tag=q["tag"],
        since=q["since"],
        until=q["until"],
    )
    conn = connection(request)
    rows = await queries.trace_page(conn, f, limit=page_size, offset=(page - 1) * page_size)
    total = await queries.trace_count(conn, f)
    evaluations = _group_evaluations(await queries.evaluations_of(conn, [r.id for r in rows]))
    return json_ok(
        {
            "traces": [_trace(r, evaluations.get(r.id, [])) for r in rows],
            "total": total,
            "page": page,
            "page_size": page_size,
        }
    )


async def get_trace(request: web.Request) -> web.Response:
    user = current_user(request)
    try:
        trace_id = uuid.UUID(request.match_info["trace_id"])
    except ValueError:
        # A malformed id cannot name a trace: the same 404 as a missing one.
        raise not_found("trace", field="trace_id") from None
    conn = connection(request)
    row = await queries.trace_of_user(conn, user.id, trace_id)
    if row is None:
        raise not_found("trace", field="trace_id")
    spans = await queries.spans_of(conn, trace_id)
    evaluations = await queries.evaluations_of(conn, [trace_id])
    body = _trace(row, [_evaluation(e) for e in evaluations])
    body["error"] = row.error
    body["spans"] = span_tree(spans)
    return json_ok(body)


async def trace_stats(request: web.Request) -> web.Response:
    user = current_user(request)
    conn = connection(request)
    stats = await queries.trace_stats(conn, user.id)
    return json_ok(
        {
            "total_traces": stats.total_traces,
            "average_quality": stats.average_quality,
            "by_type": stats.by_type,
            "total_tokens": stats.total_tokens,
            "total_cost": stats.total_cost,
        }
    )


ROUTES = {"listTraces": list_traces, "traceStats": trace_stats, "getTrace": get_trace}
