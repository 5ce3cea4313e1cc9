"""Bulk writes shared by the tracer's sink, the runner and the seeders."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
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
    columns as JSON text encoded by orjson (records are JSON-safe already, see
    :func:`~codi_eval.store.records.jsonable`; the standard encoder was a twentieth of the
    runner's CPU), everything else by psycopg's own dumpers (UUID, timestamptz, text[]).
    """
    import orjson

    columns = list(rows[0])
    # A JSON value goes as its JSON text: the COPY turns text into JSONB as it would the
    # Jsonb adapter's output, without a Python dumper call per value (a third of the COPY).
    pairs = [
        (c, isinstance(table.c[c].type.dialect_impl(conn.dialect), postgresql.JSONB))
        for c in columns
    ]
    dumps = orjson.dumps
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
                    (None if (v := row[c]) is None else dumps(v).decode()) if json_ else row[c]
                    for c, json_ in pairs
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


async def owned_runs(conn: AsyncConnection, owners: dict[uuid.UUID, str]) -> set[uuid.UUID]:
    """The runs in ``owners`` (run id → worker) whose lease that worker still holds, locked
    for the rest of the transaction (PostgreSQL) or under its write lock (SQLite)."""
    if not owners:
        return set()
    stmt = select(Run.id, Run.lease_owner, Run.status).where(Run.id.in_(list(owners)))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    rows = (await conn.execute(stmt)).all()
    return {rid for rid, owner, status in rows if owner == owners[rid] and status == "running"}


@dataclass
class WriteReport:
    written: int = 0
    released: int = 0  # runs given back to pending (their trace not stored)
    lost: int = 0  # runs whose lease another worker holds now (nothing stored)


async def write_trees(session: AsyncSession, trees: Sequence[TraceTree]) -> WriteReport:
    """Write finished traces with their spans, evaluations, run rows and Opik outbox rows.

    A tree that stands for a run is written only while its worker still holds the run's
    lease; one whose outcome gives the run back ("pending") updates only the run row.
    Core statements, not ORM bulk inserts: a batch of hundreds of traces is a handful of
    executemany calls (the ORM path cost several times more CPU per row).
    """
    conn = await session.connection()
    report = WriteReport()
    owners = {
        t.trace.run_id: t.run_owner
        for t in trees
        if t.trace.run_id is not None and t.run_owner is not None
    }
    owned = await owned_runs(conn, owners)
    kept: list[TraceTree] = []
    # A run row changes with its trace; runs setting the same columns share one executemany.
    grouped: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for tree in trees:
        run_id = tree.trace.run_id
        if run_id is not None and tree.run_owner is not None and run_id not in owned:
            report.lost += 1
            continue
        values = tree.run_outcome(tree) if tree.run_outcome and run_id is not None else None
        if values is not None:
            if values.get("status") == "pending":
                report.released += 1
                values = {"status": "pending", "lease_owner": None, "lease_expires_at": None}
            else:
                kept.append(tree)
                values = {**values, "lease_expires_at": None}
            grouped.setdefault(tuple(sorted(values)), []).append(
                {"row_id": run_id, **{f"v_{k}": v for k, v in values.items()}}
            )
        else:
            kept.append(tree)
    traces = [t.trace.row() for t in kept]
    spans = [s.row() for t in kept for s in t.spans]
    evaluations = [e.row() for t in kept for e in t.evaluations]
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
    for columns, params in grouped.items():
        stmt = (
            update(Run)
            .where(Run.id == bindparam("row_id"))
            .values({c: bindparam(f"v_{c}") for c in columns})
        )
        await conn.execute(stmt, params)
    exports = [
        outbox_row("trace", str(t.trace.id), user_id=t.trace.user_id, project=t.export_project)
        for t in kept
        if t.export
    ]
    await insert_ignore(session, OutboxEntry, exports, ("kind", "entity_id"))
    report.written = len(kept)
    return report
