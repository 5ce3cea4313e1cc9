"""Bulk writes shared by the tracer's sink, the runner and the seeders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from codi_eval.store.models import Base, Evaluation, OutboxEntry, Span, Trace, utcnow
from codi_eval.tracing.records import TraceTree


async def insert_ignore(session: AsyncSession, model: type[Base], rows: Sequence[dict[str, Any]],
                        conflict: Sequence[str]) -> None:
    """INSERT rows, skipping any that collide on ``conflict`` (idempotent enqueueing)."""
    if not rows:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    if dialect == "postgresql":
        stmt = postgresql.insert(model).on_conflict_do_nothing(index_elements=list(conflict))
    else:
        stmt = sqlite.insert(model).on_conflict_do_nothing(index_elements=list(conflict))
    await session.execute(stmt, list(rows))


def outbox_row(kind: str, entity_id: str, *, user_id: int | None = None,
               project: str | None = None, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": kind, "entity_id": entity_id, "user_id": user_id, "project": project,
            "payload": payload, "status": "pending", "attempts": 0, "created_at": utcnow()}


async def write_trees(session: AsyncSession, trees: Sequence[TraceTree]) -> None:
    """Write finished traces with their spans, evaluations, row updates, finalizers and outbox rows.

    Core statements, not ORM bulk inserts: a batch of hundreds of traces is a handful of
    executemany calls (the ORM path cost several times more CPU per row).
    """
    conn = await session.connection()
    traces = [t.trace.row() for t in trees]
    spans = [s.row() for t in trees for s in t.spans]
    evaluations = [e.row() for t in trees for e in t.evaluations]
    await conn.execute(insert(Trace.__table__), traces)
    if spans:
        await conn.execute(insert(Span.__table__), spans)
    if evaluations:
        await conn.execute(insert(Evaluation.__table__), evaluations)
    grouped: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
    for tree in trees:
        for change in tree.row_updates:
            values = change.compute(tree)
            key = (change.table, tuple(sorted(values)))
            grouped.setdefault(key, []).append({"row_id": change.row_id, **{f"v_{k}": v for k, v in values.items()}})
    for (table_name, columns), params in grouped.items():
        table = Base.metadata.tables[table_name]
        stmt = (update(table).where(table.c.id == bindparam("row_id"))
                .values({c: bindparam(f"v_{c}") for c in columns}))
        await conn.execute(stmt, params)
    exports = [
        outbox_row("trace", str(t.trace.id), user_id=t.trace.user_id, project=t.export_project)
        for t in trees if t.export
    ]
    await insert_ignore(session, OutboxEntry, exports, ("kind", "entity_id"))
    for tree in trees:
        for finalize in tree.finalizers:
            await finalize(session, tree)
