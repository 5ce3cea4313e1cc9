"""Experiments in the store: finding one by what a user types, which evaluations are a
run's own (not judge-check re-judgements), listing them, their activity (for watching from
any machine), and deleting one whole."""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, delete, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from codi_eval.errors import NotFound
from codi_eval.store.engine import Store, safe_url
from codi_eval.store.models import (
    Dataset,
    Evaluation,
    Experiment,
    ExperimentCell,
    OutboxEntry,
    Run,
    Span,
    Trace,
    utcnow,
)


def own_evaluation() -> ColumnElement[bool]:
    """SQL for "an ok, scored evaluation that is one of its run's own, not a judge-check
    re-judgement" — the one definition every aggregate and frame uses."""
    flag = Evaluation.meta_data["judge_check"].as_boolean()
    return (
        (Evaluation.status == "ok")
        & Evaluation.score.is_not(None)
        & or_(Evaluation.meta_data.is_(None), flag.is_(None), flag == false())
    )


async def find_experiment(store: Store, ref: str) -> Experiment:
    """An experiment by id (or unique id prefix of 6+ characters) or by name (the newest
    with that name). :class:`NotFound` names the store it looked in and suggests a name."""
    async with store.session() as session:
        exp = None
        try:
            exp = await session.get(Experiment, uuid.UUID(ref))
        except ValueError:
            pass
        if exp is None:
            exp = await session.scalar(
                select(Experiment)
                .where(Experiment.name == ref)
                .order_by(Experiment.created_at.desc())
                .limit(1)
            )
        if exp is not None:
            return exp
        names = list(await session.scalars(select(Experiment.name).distinct()))
        if len(ref) >= 6:
            ids = [
                i for i in await session.scalars(select(Experiment.id)) if str(i).startswith(ref)
            ]
            if len(ids) == 1:
                found = await session.get(Experiment, ids[0])
                if found is not None:
                    return found
    close = difflib.get_close_matches(ref, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    have = (
        f" (it has {len(names)}: {', '.join(sorted(names)[:8])}{', ...' if len(names) > 8 else ''})"
        if names
        else " (it has none yet)"
    )
    raise NotFound(
        f"no experiment with id or name {ref!r} in the store {safe_url(store.url)}{have}{hint}"
    )


@dataclass(frozen=True)
class ExperimentRow:
    """One experiment in a listing: what it is, where it came from, how far it got."""

    id: uuid.UUID
    name: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    spec_path: str | None
    dataset: str
    cells: int
    runs: int
    succeeded: int
    failed: int

    @property
    def pending(self) -> int:
        return self.runs - self.succeeded - self.failed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "id": str(self.id), "pending": self.pending}


async def list_experiments(store: Store) -> list[ExperimentRow]:
    """Every experiment, newest first, with its dataset, cell count and run counts (one query)."""
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
            Experiment.id, Experiment.name, Experiment.status, Experiment.created_at,
            Experiment.finished_at, Experiment.spec_path, Dataset.name, Dataset.version,
            func.coalesce(cells.c.cells, 0), func.coalesce(runs.c.total, 0),
            func.coalesce(runs.c.succeeded, 0), func.coalesce(runs.c.failed, 0),
        )
        .join(Dataset, Dataset.id == Experiment.dataset_id)
        .outerjoin(runs, runs.c.experiment_id == Experiment.id)
        .outerjoin(cells, cells.c.experiment_id == Experiment.id)
        .order_by(Experiment.created_at.desc(), Experiment.id.desc())
    )  # fmt: skip
    async with store.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        ExperimentRow(
            id=r[0], name=r[1], status=r[2], created_at=r[3], finished_at=r[4], spec_path=r[5],
            dataset=f"{r[6]} v{r[7]}", cells=int(r[8]), runs=int(r[9]), succeeded=int(r[10]),
            failed=int(r[11]),
        )
        for r in rows
    ]  # fmt: skip


_CHUNK = 500


async def experiment_footprint(store: Store, exp: Experiment) -> dict[str, int]:
    """How many rows of each kind belong to the experiment (what a delete would remove)."""
    async with store.session() as session:
        return await _footprint(session, exp, await _trace_ids(session, exp))


async def _trace_ids(session: AsyncSession, exp: Experiment) -> list[uuid.UUID]:
    run_ids = select(Run.id).where(Run.experiment_id == exp.id)
    linked = select(Run.trace_id).where(Run.experiment_id == exp.id, Run.trace_id.is_not(None))
    rows = await session.scalars(
        select(Trace.id).where(or_(Trace.run_id.in_(run_ids), Trace.id.in_(linked)))
    )
    return list(rows)


async def _count_in(
    session: AsyncSession, column: Any, ids: Sequence[Any], *extra: ColumnElement[bool]
) -> int:
    total = 0
    for i in range(0, len(ids), _CHUNK):
        total += int(
            await session.scalar(
                select(func.count()).where(column.in_(ids[i : i + _CHUNK]), *extra)
            )
            or 0
        )
    return total


async def _footprint(
    session: AsyncSession, exp: Experiment, trace_ids: list[uuid.UUID]
) -> dict[str, int]:
    texts = [str(t) for t in trace_ids]
    outbox = await _count_in(session, OutboxEntry.entity_id, texts, OutboxEntry.kind == "trace")
    outbox += int(
        await session.scalar(
            select(func.count()).where(
                OutboxEntry.kind == "experiment", OutboxEntry.entity_id == str(exp.id)
            )
        )
        or 0
    )
    return {
        "runs": int(
            await session.scalar(select(func.count()).where(Run.experiment_id == exp.id)) or 0
        ),
        "cells": int(
            await session.scalar(select(func.count()).where(ExperimentCell.experiment_id == exp.id))
            or 0
        ),
        "traces": len(trace_ids),
        "spans": await _count_in(session, Span.trace_id, trace_ids),
        "evaluations": await _count_in(session, Evaluation.trace_id, trace_ids),
        "outbox": outbox,
    }


async def delete_experiment(store: Store, exp: Experiment) -> dict[str, int]:
    """Delete the experiment with its cells, runs, their traces, spans and evaluations
    (judge-check re-judgements included) and its Opik outbox rows, in ONE transaction:
    either all of it goes or none. The dataset and the model-answer cache stay (other
    experiments share them). Returns how many rows of each kind were deleted."""
    async with store.transaction() as session:
        # Locks the experiment row first, so a concurrent delete of the same one waits.
        locked = await session.scalar(
            select(Experiment.id).where(Experiment.id == exp.id).with_for_update()
        )
        if locked is None:
            raise NotFound(f"experiment {exp.name} ({exp.id}) is already gone")
        trace_ids = await _trace_ids(session, exp)
        counts = await _footprint(session, exp, trace_ids)
        texts = [str(t) for t in trace_ids]
        for i in range(0, len(trace_ids), _CHUNK):
            chunk = trace_ids[i : i + _CHUNK]
            await session.execute(delete(Evaluation).where(Evaluation.trace_id.in_(chunk)))
            await session.execute(delete(Span).where(Span.trace_id.in_(chunk)))
            await session.execute(
                delete(OutboxEntry).where(
                    OutboxEntry.kind == "trace", OutboxEntry.entity_id.in_(texts[i : i + _CHUNK])
                )
            )
            # A run's trace may be another trace's parent only within the experiment.
            await session.execute(
                update(Trace).where(Trace.parent_trace_id.in_(chunk)).values(parent_trace_id=None)
            )
            await session.execute(delete(Trace).where(Trace.id.in_(chunk)))
        await session.execute(
            delete(OutboxEntry).where(
                OutboxEntry.kind == "experiment", OutboxEntry.entity_id == str(exp.id)
            )
        )
        await session.execute(delete(Run).where(Run.experiment_id == exp.id))
        await session.execute(delete(ExperimentCell).where(ExperimentCell.experiment_id == exp.id))
        await session.execute(delete(Experiment).where(Experiment.id == exp.id))
    return counts


@dataclass(frozen=True)
class FailureClass:
    error_class: str
    runs: int
    first_message: str


async def run_status(
    store: Store, experiment_id: uuid.UUID
) -> tuple[dict[str, int], list[FailureClass]]:
    """Runs by status, and the failed runs by error class with the first message of each."""
    async with store.session() as session:
        counts = await _status_counts(session, experiment_id)
        rows = (
            await session.execute(
                select(Run.error_class, Run.error_message)
                .where(Run.experiment_id == experiment_id, Run.status == "failed")
                .order_by(Run.finished_at, Run.id)
            )
        ).all()
    classes: dict[str, FailureClass] = {}
    for error_class, message in rows:
        key = error_class or "error"
        seen = classes.get(key)
        classes[key] = FailureClass(
            key, (seen.runs if seen else 0) + 1, seen.first_message if seen else (message or "")
        )
    return {str(k): int(v) for k, v in counts.items()}, sorted(
        classes.values(), key=lambda c: -c.runs
    )


async def _status_counts(session: AsyncSession, experiment_id: uuid.UUID) -> dict[Any, Any]:
    """The experiment's runs by status."""
    rows = await session.execute(
        select(Run.status, func.count())
        .where(Run.experiment_id == experiment_id)
        .group_by(Run.status)
    )
    return dict(rows.all())


@dataclass(frozen=True)
class Activity:
    """An experiment's runs right now, as any machine sees them in the store."""

    counts: dict[str, int]
    workers: int  # distinct lease holders of running runs with a live lease
    finished_last_minute: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return self.counts.get("succeeded", 0) + self.counts.get("failed", 0)


async def activity(store: Store, experiment_id: uuid.UUID) -> Activity:
    """Runs by status, the workers holding live leases, and runs finished in the last minute."""
    now = utcnow()
    async with store.session() as session:
        counts = await _status_counts(session, experiment_id)
        workers = await session.scalar(
            select(func.count(func.distinct(Run.lease_owner))).where(
                Run.experiment_id == experiment_id,
                Run.status == "running",
                Run.lease_expires_at > now,
            )
        )
        recent = await session.scalar(
            select(func.count()).where(
                Run.experiment_id == experiment_id,
                Run.status.in_(("succeeded", "failed")),
                Run.finished_at > now - timedelta(minutes=1),
            )
        )
    return Activity(
        {str(k): int(v) for k, v in counts.items()}, int(workers or 0), int(recent or 0)
    )
