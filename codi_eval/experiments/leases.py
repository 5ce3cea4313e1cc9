"""Run leases: many runner processes share one experiment and do each run exactly once.

A worker *claims* runs — ``pending`` ones, or ``running`` ones whose lease has expired
(their worker died) — by setting ``lease_owner`` to its own id and ``lease_expires_at`` a
lease ahead, and *renews* the lease of the runs it holds while it works. On PostgreSQL the
claim is ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)``: concurrent workers
never wait for, or get, each other's rows. On SQLite the same single ``UPDATE ...
RETURNING`` runs under the database's write lock, which serialises claims across the
processes sharing the file.

A finished run is written only if its worker still holds the lease (checked with the rows
locked, in the transaction that writes the trace: ``store.writes.write_trees``), so a worker that
lost its lease — it stalled past the expiry, or the network cut it off — cannot add a
second result for a run another worker has taken over.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from codi_eval.store.engine import Store
from codi_eval.store.models import DatasetItem, Run, utcnow

DEFAULT_LEASE_S = 60.0


def new_owner() -> str:
    """An id for this worker: host, process and a random part (a pid can be reused)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Work:
    """One claimed run and the item it summarises."""

    run_id: uuid.UUID
    cell_id: uuid.UUID
    repeat: int
    item_key: str
    language: str
    code: str
    instruction: str | None
    reference: str | None


def _claimable(
    experiment_id: uuid.UUID, now: object, skip_cells: Collection[uuid.UUID]
) -> list[Any]:
    conditions = [
        Run.experiment_id == experiment_id,
        or_(
            Run.status == "pending",
            # A dead worker's runs come back when their lease expires (or never had one).
            and_(
                Run.status == "running",
                or_(Run.lease_expires_at.is_(None), Run.lease_expires_at < now),
            ),
        ),
    ]
    if skip_cells:
        conditions.append(Run.cell_id.not_in(list(skip_cells)))
    return conditions


async def claim_runs(
    store: Store,
    experiment_id: uuid.UUID,
    owner: str,
    limit: int,
    *,
    lease_s: float = DEFAULT_LEASE_S,
    skip_cells: Collection[uuid.UUID] = (),
) -> list[Work]:
    """Claim up to ``limit`` runs of the experiment for ``owner``; [] when none is left."""
    now = utcnow()
    async with store.transaction() as session:
        ids = (
            select(Run.id)
            .where(*_claimable(experiment_id, now, skip_cells))
            .order_by(Run.id)
            .limit(limit)
        )
        if store.dialect == "postgresql":
            ids = ids.with_for_update(skip_locked=True)
        claimed = (
            (
                await session.execute(
                    update(Run)
                    .where(Run.id.in_(ids.scalar_subquery()))
                    .values(
                        status="running",
                        lease_owner=owner,
                        lease_expires_at=now + timedelta(seconds=lease_s),
                        started_at=now,
                    )
                    .returning(Run.id)
                    .execution_options(synchronize_session=False)
                )
            )
            .scalars()
            .all()
        )
        if not claimed:
            return []
        rows = (
            await session.execute(
                select(
                    Run.id,
                    Run.cell_id,
                    Run.repeat,
                    DatasetItem.item_key,
                    DatasetItem.language,
                    DatasetItem.code,
                    DatasetItem.instruction,
                    DatasetItem.reference,
                )
                .join(DatasetItem, DatasetItem.id == Run.dataset_item_id)
                .where(Run.id.in_(list(claimed)))
                .order_by(Run.id)
            )
        ).all()
    return [Work(*row) for row in rows]


async def renew_leases(store: Store, owner: str, *, lease_s: float = DEFAULT_LEASE_S) -> int:
    """Push the expiry of every run ``owner`` holds a lease ahead; the number renewed.

    A run a store write has locked is skipped, not waited for: the write is finishing it
    (or, should it fail, the lease still has two thirds of its time until the next beat).
    Waiting could deadlock: the renewal holds the rows it has updated while it waits, and
    with two write transactions in flight the second may be waiting for one of those.
    """
    mine = select(Run.id).where(Run.lease_owner == owner, Run.status == "running")
    if store.dialect == "postgresql":
        mine = mine.with_for_update(skip_locked=True)
    async with store.transaction() as session:
        result = await session.execute(
            update(Run)
            .where(Run.id.in_(mine.scalar_subquery()))
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False)
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def release_runs(store: Store, owner: str, run_ids: Sequence[uuid.UUID] | None = None) -> int:
    """Give runs ``owner`` still holds back to ``pending`` (work stopped before they finished)."""
    conditions = [Run.lease_owner == owner, Run.status == "running"]
    if run_ids is not None:
        conditions.append(Run.id.in_(list(run_ids)))
    async with store.transaction() as session:
        result = await session.execute(
            update(Run)
            .where(*conditions)
            .values(status="pending", lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def requeue_failed(session: AsyncSession, experiment_id: uuid.UUID) -> int:
    """Failed runs go back to ``pending`` for another attempt (their traces stay)."""
    result = await session.execute(
        update(Run)
        .where(Run.experiment_id == experiment_id, Run.status == "failed")
        .values(status="pending", lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


async def held_elsewhere(store: Store, experiment_id: uuid.UUID, owner: str) -> tuple[int, int]:
    """(runs other workers hold right now, runs just taken back from dead local workers).

    A lease held by a process of this machine that no longer exists (killed) is expired on
    the spot, so its runs come back at once instead of after the lease.
    """
    now = utcnow()
    async with store.transaction() as session:
        rows = (
            await session.execute(
                select(Run.lease_owner, func.count())
                .where(
                    Run.experiment_id == experiment_id,
                    Run.status == "running",
                    Run.lease_owner != owner,
                    Run.lease_expires_at >= now,
                )
                .group_by(Run.lease_owner)
            )
        ).all()
        host = socket.gethostname()[:100]
        held = freed = 0
        for other, n in rows:
            other_host, _, rest = str(other).partition(":")
            pid = rest.partition(":")[0]
            if other_host == host and pid.isdigit() and not _pid_alive(int(pid)):
                await session.execute(
                    update(Run)
                    .where(Run.lease_owner == other, Run.status == "running")
                    .values(lease_expires_at=now)
                    .execution_options(synchronize_session=False)
                )
                freed += int(n)
                continue
            held += int(n)
    return held, freed
