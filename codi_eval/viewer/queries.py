"""The viewer's own SQL: the traces users made outside experiments (``summarize``, the API)
and one trace with its spans. Experiments, cells and runs are read through
:mod:`codi_eval.store.experiments`, :mod:`codi_eval.analysis.cells` and
:mod:`codi_eval.analysis.outputs`, like everywhere else."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from codi_eval.store.engine import Store
from codi_eval.store.models import Evaluation, Span, Trace, User

JUDGE_METRIC = "summary_quality"


@dataclass
class TraceRow:
    id: str
    name: str
    trace_type: str
    user: str | None
    start_time: datetime
    duration_ms: int | None
    status: str
    summary: str | None
    summary_quality: float | None


def _summary(output: Any) -> str | None:
    if isinstance(output, dict) and isinstance(output.get("summary"), str):
        return str(output["summary"])
    return None


async def user_traces(
    store: Store, *, limit: int = 50, offset: int = 0
) -> tuple[int, list[TraceRow]]:
    """``(total, page)`` of the traces that are not an experiment's runs, newest first, with
    their user's name and judge score."""
    quality = (
        select(Evaluation.trace_id, func.max(Evaluation.score).label("score"))
        .where(Evaluation.metric_name == JUDGE_METRIC, Evaluation.status == "ok")
        .group_by(Evaluation.trace_id)
        .subquery()
    )
    where = Trace.run_id.is_(None)
    async with store.engine.connect() as conn:
        total = int(await conn.scalar(select(func.count()).select_from(Trace).where(where)) or 0)
        rows = (
            await conn.execute(
                select(
                    Trace.id,
                    Trace.name,
                    Trace.trace_type,
                    User.name,
                    Trace.start_time,
                    Trace.duration_ms,
                    Trace.status,
                    Trace.output_data,
                    quality.c.score,
                )
                .outerjoin(User, User.id == Trace.user_id)
                .outerjoin(quality, quality.c.trace_id == Trace.id)
                .where(where)
                .order_by(Trace.start_time.desc(), Trace.id.desc())
                .limit(limit)
                .offset(offset)
            )  # fmt: skip
        ).all()
    return total, [
        TraceRow(str(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], _summary(r[7]), r[8]) for r in rows
    ]


@dataclass
class TraceDetail:
    row: TraceRow
    input_data: Any
    run_id: str | None
    spans: list[Any]
    evaluations: list[Any]


async def trace_detail(store: Store, trace_id: uuid.UUID) -> TraceDetail | None:
    async with store.engine.connect() as conn:
        t = (
            await conn.execute(
                select(Trace, User.name.label("user_name"))
                .outerjoin(User, User.id == Trace.user_id)
                .where(Trace.id == trace_id)
            )
        ).first()
        if t is None:
            return None
        spans = (
            await conn.execute(
                select(Span).where(Span.trace_id == trace_id).order_by(Span.start_time, Span.id)
            )
        ).all()
        evaluations = (
            await conn.execute(
                select(
                    Evaluation.metric_name, Evaluation.score, Evaluation.reason, Evaluation.status
                )
                .where(Evaluation.trace_id == trace_id)
                .order_by(Evaluation.metric_name != JUDGE_METRIC, Evaluation.metric_name)
            )
        ).all()
    score = next((e.score for e in evaluations if e.metric_name == JUDGE_METRIC), None)
    row = TraceRow(
        str(t.id), t.name, t.trace_type, t.user_name, t.start_time, t.duration_ms, t.status,
        _summary(t.output_data), score,
    )  # fmt: skip
    return TraceDetail(
        row=row,
        input_data=t.input_data,
        run_id=str(t.run_id) if t.run_id else None,
        spans=list(spans),
        evaluations=list(evaluations),
    )
