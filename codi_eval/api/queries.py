"""Every SQL statement the API runs, one function per question.

Reads use a plain connection (no ORM identity map to fill for a response we are about to
serialise). A list is three statements whatever the page size: the page, the total (a
sum over ``trace_counts`` unless a tag or time range filters it), and the evaluations of
the page's traces, so nothing grows with the number of rows shown.
The one dialect switch, the tag filter, lives here: ``tags`` is ``TEXT[]`` on PostgreSQL
and a JSON list on SQLite.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Text,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from codi_eval.store.models import (
    Evaluation,
    Experiment,
    ExperimentCell,
    Prompt,
    Run,
    Span,
    Trace,
    TraceCount,
    User,
    utcnow,
)

QUALITY_METRIC = "summary_quality"

# ------------------------------------------------------------------------------- users

_USER_COLUMNS = (
    User.id,
    User.name,
    User.opik_enabled,
    User.opik_workspace,
    User.opik_api_key_encrypted.is_not(None).label("has_api_key"),
    User.revoked_at,
    User.token_expires_at,
)

# Every authenticated request runs this one: built once (see _page_statement).
_USER_BY_TOKEN_HASH = select(*_USER_COLUMNS).where(User.token_hash == bindparam("token_hash"))


async def user_by_token_hash(conn: AsyncConnection, token_hash: str) -> Any:
    """The user whose token hashes to ``token_hash`` (unique index on users.token_hash),
    with the token's revocation and expiry for the caller to check."""
    result = await conn.execute(_USER_BY_TOKEN_HASH, {"token_hash": token_hash})
    return result.first()


async def user_by_id(conn: AsyncConnection, user_id: int) -> Any:
    return (await conn.execute(select(*_USER_COLUMNS).where(User.id == user_id))).first()


async def touch_user(conn: AsyncConnection, user_id: int, now: datetime) -> None:
    await conn.execute(update(User).where(User.id == user_id).values(last_used_at=now))


async def create_user(
    conn: AsyncConnection, name: str, token_hash: str, *, expires_at: datetime | None = None
) -> int | None:
    """A new user; None when the name is taken (unique users.name)."""
    taken = (await conn.execute(select(User.id).where(User.name == name))).first()
    if taken is not None:
        return None
    now = utcnow()
    result = await conn.execute(
        insert(User)
        .values(
            name=name,
            token_hash=token_hash,
            opik_enabled=False,
            created_at=now,
            token_created_at=now,
            token_expires_at=expires_at,
        )
        .returning(User.id)
    )
    return int(result.scalar_one())


async def rotate_token(
    conn: AsyncConnection, name: str, token_hash: str, *, expires_at: datetime | None
) -> bool:
    """Give user ``name`` a new token (the old one stops working); False if there is no such user.

    Rotating a revoked user's token is how access is given back.
    """
    result = await conn.execute(
        update(User)
        .where(User.name == name)
        .values(
            token_hash=token_hash,
            token_created_at=utcnow(),
            token_expires_at=expires_at,
            revoked_at=None,
        )
    )
    return bool(result.rowcount)


async def revoke_token(conn: AsyncConnection, name: str) -> bool:
    """Revoke user ``name``'s token at once; False if there is no such user."""
    result = await conn.execute(
        update(User)
        .where(User.name == name)
        .values(revoked_at=func.coalesce(User.revoked_at, utcnow()))
    )
    return bool(result.rowcount)


async def all_users(conn: AsyncConnection) -> Any:
    stmt = select(
        *_USER_COLUMNS, User.created_at, User.token_created_at, User.last_used_at
    ).order_by(User.id)
    return (await conn.execute(stmt)).all()


async def update_user(conn: AsyncConnection, user_id: int, values: dict[str, Any]) -> None:
    """Set columns of one user (keys are users column names)."""
    if values:
        await conn.execute(update(User).where(User.id == user_id).values(**values))


# ------------------------------------------------------------------------------ traces


@dataclass(frozen=True)
class TraceFilter:
    user_id: int
    trace_type: str | None = None
    tag: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _trace_conditions(f: TraceFilter, dialect: str) -> list[Any]:
    # user_id (then trace_type) first, so ix_traces_user_[type_]start serves both the
    # page and the count; since/until bound the same index's start_time range. Values are
    # bound parameters (_trace_params), so each shape of filter is one prebuilt statement.
    conds: list[Any] = [Trace.user_id == bindparam("user_id")]
    if f.trace_type is not None:
        conds.append(Trace.trace_type == bindparam("trace_type"))
    if f.since is not None:
        conds.append(Trace.start_time >= bindparam("since", type_=Trace.start_time.type))
    if f.until is not None:
        conds.append(Trace.start_time < bindparam("until", type_=Trace.start_time.type))
    if f.tag is not None:
        conds.append(_has_tag(dialect))
    return conds


def _trace_params(f: TraceFilter) -> dict[str, Any]:
    return {k: v for k, v in vars(f).items() if v is not None}


def _shape(f: TraceFilter) -> TraceFilter:
    """The filter with its values replaced by a marker: what a prebuilt statement depends on."""
    on = datetime.min
    return TraceFilter(
        user_id=0,
        trace_type="" if f.trace_type is not None else None,
        tag="" if f.tag is not None else None,
        since=on if f.since is not None else None,
        until=on if f.until is not None else None,
    )


def _has_tag(dialect: str) -> Any:
    tag = bindparam("tag", type_=Text())
    if dialect == "postgresql":
        return tag == func.any(Trace.tags)
    # SQLite keeps tags as a JSON list: look inside it with json_each.
    each = func.json_each(Trace.tags).table_valued("value")
    return exists(select(literal_column("1")).select_from(each).where(each.c.value == tag))


_LIST_COLUMNS = (
    Trace.id,
    Trace.trace_type,
    Trace.name,
    Trace.start_time,
    Trace.end_time,
    Trace.duration_ms,
    Trace.input_data,
    Trace.output_data,
    Trace.meta_data,
    Trace.tags,
    Trace.status,
)

# The read statements a request runs are built once, not per request: building a select
# and adapting its cached compilation to a new statement object was a third of the
# server's CPU on GET /traces/{id}. Values go in as bound parameters.


@functools.cache
def _page_statement(shape: TraceFilter, dialect: str) -> Any:
    page = (
        select(Trace.id, Trace.start_time)
        .where(*_trace_conditions(shape, dialect))
        .order_by(Trace.start_time.desc(), Trace.id.desc())
        .limit(bindparam("limit", type_=Integer()))
        .offset(bindparam("offset", type_=Integer()))
        .subquery("page")
    )
    return (
        select(*_LIST_COLUMNS)
        .join(page, page.c.id == Trace.id)
        .order_by(page.c.start_time.desc(), page.c.id.desc())
    )


async def trace_page(
    conn: AsyncConnection,
    f: TraceFilter,
    *,
    limit: int,
    offset: int,
) -> Any:
    """One page of a user's traces, newest first (id breaks ties so pages never overlap).

    A deferred join: the page's ids come from the (user_id, [trace_type,] start_time, id)
    index alone, and only those rows are read, so page 500 does not read 10,000 rows.
    """
    stmt = _page_statement(_shape(f), conn.dialect.name)
    params = {**_trace_params(f), "limit": limit, "offset": offset}
    return (await conn.execute(stmt, params)).all()


_COUNTED = select(func.coalesce(func.sum(TraceCount.n), 0)).where(
    TraceCount.user_id == bindparam("user_id")
)
_COUNTED_OF_TYPE = _COUNTED.where(TraceCount.trace_type == bindparam("trace_type"))


@functools.cache
def _count_statement(shape: TraceFilter, dialect: str) -> Any:
    if shape.tag is None and shape.since is None and shape.until is None:
        return _COUNTED if shape.trace_type is None else _COUNTED_OF_TYPE
    return select(func.count()).select_from(Trace).where(*_trace_conditions(shape, dialect))


async def trace_count(conn: AsyncConnection, f: TraceFilter) -> int:
    """The filter's total: from trace_counts (kept by triggers) unless a tag or time bounds it."""
    stmt = _count_statement(_shape(f), conn.dialect.name)
    return int((await conn.execute(stmt, _trace_params(f))).scalar_one())


_EVALUATIONS = (
    select(
        Evaluation.trace_id,
        Evaluation.metric_name,
        Evaluation.score,
        Evaluation.reason,
        Evaluation.span_id,
    )
    .where(
        Evaluation.trace_id.in_(bindparam("trace_ids", expanding=True)),
        Evaluation.status == "ok",
        Evaluation.score.is_not(None),
    )
    # summary_quality first: it is the badge the app shows.
    .order_by(
        Evaluation.trace_id, (Evaluation.metric_name != QUALITY_METRIC), Evaluation.metric_name
    )
)


async def evaluations_of(conn: AsyncConnection, trace_ids: Sequence[uuid.UUID]) -> Any:
    """Scored evaluations of these traces (failed judgements have no score to show)."""
    if not trace_ids:
        return []
    return (await conn.execute(_EVALUATIONS, {"trace_ids": list(trace_ids)})).all()


_TRACE_OF_USER = select(*_LIST_COLUMNS, Trace.error).where(
    Trace.id == bindparam("trace_id"), Trace.user_id == bindparam("user_id")
)


async def trace_of_user(conn: AsyncConnection, user_id: int, trace_id: uuid.UUID) -> Any:
    """A trace by id, only if it belongs to ``user_id`` (others' traces look missing)."""
    params = {"trace_id": trace_id, "user_id": user_id}
    return (await conn.execute(_TRACE_OF_USER, params)).first()


_SPANS_OF = (
    select(
        Span.id,
        Span.parent_span_id,
        Span.name,
        Span.type,
        Span.model,
        Span.provider,
        Span.prompt_tokens,
        Span.completion_tokens,
        Span.total_tokens,
        Span.cost,
        Span.start_time,
        Span.end_time,
        Span.duration_ms,
        Span.input_data,
        Span.output_data,
        Span.meta_data,
        Span.status,
        Span.error,
    )
    .where(Span.trace_id == bindparam("trace_id"))
    .order_by(Span.start_time, Span.id)
)


async def spans_of(conn: AsyncConnection, trace_id: uuid.UUID) -> Any:
    return (await conn.execute(_SPANS_OF, {"trace_id": trace_id})).all()


@dataclass(frozen=True)
class TraceStats:
    total_traces: int
    average_quality: float | None
    by_type: dict[str, int]
    total_tokens: int
    total_cost: float


async def trace_stats(conn: AsyncConnection, user_id: int) -> TraceStats:
    """Totals over a user's traces: counts by type, mean judge score, model-call usage.

    Tokens and cost are summed over spans, where each model call records its usage once
    (on its llm or judge span); trace metadata is not used because it is free-form.
    """
    rows = (
        await conn.execute(
            select(TraceCount.trace_type, TraceCount.n).where(
                TraceCount.user_id == user_id, TraceCount.n > 0
            )
        )
    ).all()
    quality = (
        await conn.execute(
            select(func.avg(Evaluation.score))
            .select_from(Trace)
            .join(Evaluation, Evaluation.trace_id == Trace.id)
            .where(
                Trace.user_id == user_id,
                Evaluation.metric_name == QUALITY_METRIC,
                Evaluation.status == "ok",
                Evaluation.score.is_not(None),
            )
        )
    ).scalar_one()
    tokens, cost = (
        await conn.execute(
            select(func.sum(Span.total_tokens), func.sum(Span.cost))
            .select_from(Trace)
            .join(Span, Span.trace_id == Trace.id)
            .where(Trace.user_id == user_id)
        )
    ).one()
    by_type = {str(t): int(n) for t, n in rows}
    return TraceStats(
        total_traces=sum(by_type.values()),
        average_quality=float(quality) if quality is not None else None,
        by_type=by_type,
        total_tokens=int(tokens or 0),
        total_cost=float(cost or 0.0),
    )


# --------------------------------------------------------------------------- experiments


async def experiment_summaries(conn: AsyncConnection) -> Any:
    """Every experiment, newest first, with its cell count and run counts by status."""
    runs = (
        select(
            Run.experiment_id,
            func.count().label("total"),
            func.sum(case((Run.status == "succeeded", 1), else_=0)).label("succeeded"),
            func.sum(case((Run.status == "failed", 1), else_=0)).label("failed"),
        )
        .group_by(Run.experiment_id)
        .subquery()
    )
    cells = (
        select(ExperimentCell.experiment_id, func.count().label("cells"))
        .group_by(ExperimentCell.experiment_id)
        .subquery()
    )
    stmt = (
        select(
            Experiment.id,
            Experiment.name,
            Experiment.status,
            Experiment.created_at,
            Experiment.finished_at,
            func.coalesce(cells.c.cells, 0).label("cells"),
            func.coalesce(runs.c.total, 0).label("total"),
            func.coalesce(runs.c.succeeded, 0).label("succeeded"),
            func.coalesce(runs.c.failed, 0).label("failed"),
        )
        .outerjoin(runs, runs.c.experiment_id == Experiment.id)
        .outerjoin(cells, cells.c.experiment_id == Experiment.id)
        .order_by(Experiment.created_at.desc(), Experiment.id.desc())
    )
    return (await conn.execute(stmt)).all()


async def cells_by_key(conn: AsyncConnection, experiment_id: uuid.UUID) -> dict[str, uuid.UUID]:
    stmt = (
        select(ExperimentCell.key, ExperimentCell.id)
        .where(ExperimentCell.experiment_id == experiment_id)
        .order_by(ExperimentCell.position)
    )
    return {key: cell_id for key, cell_id in (await conn.execute(stmt)).all()}


async def cell_values(
    conn: AsyncConnection, experiment_id: uuid.UUID, cell_ids: Sequence[uuid.UUID], metric: str
) -> Any:
    """(cell_id, dataset_item_id, repeat, value) for every succeeded run of these cells.

    ``summary_quality`` is the runs table's judge score; any other metric comes from the
    evaluations of each run's trace. A run without the value yields None (counted missing).
    """
    base = (
        Run.experiment_id == experiment_id,
        Run.cell_id.in_(cell_ids),
        Run.status == "succeeded",
    )
    if metric == QUALITY_METRIC:
        stmt = select(
            Run.cell_id, Run.dataset_item_id, Run.repeat, Run.judge_score.label("value")
        ).where(*base)
    else:
        stmt = (
            select(Run.cell_id, Run.dataset_item_id, Run.repeat, Evaluation.score.label("value"))
            .outerjoin(
                Evaluation,
                and_(
                    Evaluation.trace_id == Run.trace_id,
                    Evaluation.metric_name == metric,
                    Evaluation.status == "ok",
                ),
            )
            .where(*base)
        )
    return (await conn.execute(stmt.order_by(Run.cell_id, Run.dataset_item_id, Run.repeat))).all()


async def experiment_metrics(conn: AsyncConnection, experiment_id: uuid.UUID) -> list[str]:
    """Metric names recorded for an experiment's runs (for a helpful unknown-metric error)."""
    stmt = (
        select(Evaluation.metric_name)
        .distinct()
        .join(Run, Run.trace_id == Evaluation.trace_id)
        .where(Run.experiment_id == experiment_id)
        .order_by(Evaluation.metric_name)
    )
    return [name for (name,) in (await conn.execute(stmt)).all()]


# ------------------------------------------------------------------------------- prompts


async def prompts(conn: AsyncConnection, name: str | None = None) -> Any:
    stmt = select(
        Prompt.name,
        Prompt.version,
        Prompt.variables,
        Prompt.description,
        Prompt.template_hash,
        Prompt.created_at,
        Prompt.template,
    )
    if name is not None:
        stmt = stmt.where(Prompt.name == name)
    return (await conn.execute(stmt.order_by(Prompt.name, Prompt.version))).all()


__all__ = [
    "QUALITY_METRIC",
    "TraceFilter",
    "TraceStats",
    "all_users",
    "revoke_token",
    "rotate_token",
    "touch_user",
    "cell_values",
    "cells_by_key",
    "create_user",
    "evaluations_of",
    "experiment_metrics",
    "experiment_summaries",
    "prompts",
    "spans_of",
    "trace_count",
    "trace_of_user",
    "trace_page",
    "trace_stats",
    "update_user",
    "user_by_id",
    "user_by_token_hash",
]
