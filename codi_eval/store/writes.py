"""Bulk writes shared by the tracer's sink, the runner and the seeders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from codi_eval.store.models import Base, Evaluation, OutboxEntry, Run, Span, Trace, utcnow
from codi_eval.store.records import TraceTree


async def insert_ignore(
    session: AsyncSession,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    conflict: Sequence[str],
) -> None:
    """INSERT rows, skipping any that collide on ``conflict`` (idempotent enqueueing)."""
    if not rows:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    if dialect == "postgresql":
        pg_stmt = postgresql.insert(model).on_conflict_do_nothing(index_elements=list(conflict))
        await session.execute(pg_stmt, list(rows))
    else:
        lite_stmt = sqlite.insert(model).on_conflict_do_nothing(index_elements=list(conflict))
        await session.execute(lite_stmt, list(rows))


async def _copy_rows(conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """COPY rows into ``table`` on the session's own connection, inside its transaction.

    On PostgreSQL this replaces an executemany whose per-row parameter handling was a
    fifth of the runner's CPU. Values are adapted the way the column types would: JSON
    columns as JSONB, everything else by psycopg's own dumpers (UUID, timestamptz, text[]).
    """
    from psycopg.types.json import Jsonb

    columns = list(rows[0])
    json_columns = {
        c
        for c in columns
        if isinstance(table.c[c].type.dialect_impl(conn.dialect), postgresql.JSONB)
    }
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    names = ", ".join(f'"{c}"' for c in columns)
    async with (
        driver.cursor() as cursor,
        cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy,
    ):
        for row in rows:
            await copy.write_row(
                [
                    (None if row[c] is None else Jsonb(row[c])) if c in json_columns else row[c]
                    for c in columns
                ]
            )


def outbox_row(
    kind: str,
    entity_id: str,
    *,
    user_id: int | None = None,
    project: str | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "entity_id": entity_id,
        "user_id": user_id,
        "project": project,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "created_at": utcnow(),
    }


async def write_trees(session: AsyncSession, trees: Sequence[TraceTree]) -> None:
    """Write finished traces with their spans, evaluations, run rows and Opik outbox rows.

    Core statements, not ORM bulk inserts: a batch of hundreds of traces is a handful of
    executemany calls (the ORM path cost several times more CPU per row).
    """
    conn = await session.connection()
    traces = [t.trace.row() for t in trees]
    spans = [s.row() for t in trees for s in t.spans]
    evaluations = [e.row() for t in trees for e in t.evaluations]
    for table, rows in (
        (cast(Table, Trace.__table__), traces),
        (cast(Table, Span.__table__), spans),
        (cast(Table, Evaluation.__table__), evaluations),
    ):
        if not rows:
            continue
        if conn.dialect.name == "postgresql":
            await _copy_rows(conn, table, rows)
        else:
            await conn.execute(insert(table), rows)
    # A run row changes with its trace; runs setting the same columns share one executemany.
    grouped: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for tree in trees:
        if tree.run_outcome is None or tree.trace.run_id is None:
            continue
        values = tree.run_outcome(tree)
        grouped.setdefault(tuple(sorted(values)), []).append(
            {"row_id": tree.trace.run_id, **{f"v_{k}": v for k, v in values.items()}}
        )
    for columns, params in grouped.items():
        stmt = (
            update(Run)
            .where(Run.id == bindparam("row_id"))
            .values({c: bindparam(f"v_{c}") for c in columns})
        )
        await conn.execute(stmt, params)
    exports = [
        outbox_row("trace", str(t.trace.id), user_id=t.trace.user_id, project=t.export_project)
        for t in trees
        if t.export
    ]
    await insert_ignore(session, OutboxEntry, exports, ("kind", "entity_id"))
