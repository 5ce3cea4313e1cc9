"""The Opik outbox: what the store queued for Opik, sent through :mod:`codi_eval.opik_export`.

Rows are written in the same transaction as the data they copy (see
``store.writes.write_trees``); this module sends them. A row becomes ``sent`` only when
the exporter has read the copy back from Opik; otherwise it is ``failed`` with the last
error and is sent again next time (ids make a re-send an upsert, never a second copy).
Nothing here imports the opik SDK until there is something to send.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from codi_eval.store.models import (
    Dataset,
    DatasetItem,
    Evaluation,
    Experiment,
    ExperimentCell,
    OutboxEntry,
    Prompt,
    Run,
    Span,
    Trace,
    User,
    utcnow,
)
from codi_eval.store.records import EvaluationRecord, SpanRecord, TraceRecord, TraceTree
from codi_eval.store.writes import outbox_row

log = logging.getLogger(__name__)
KIND_ORDER = {"prompt": 0, "dataset": 1, "trace": 2, "experiment": 3}


@dataclass
class SyncReport:
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"sent": dict(self.sent), "failed": dict(self.failed), "last_error": self.last_error}

    def __str__(self) -> str:
        sent = sum(self.sent.values())
        failed = sum(self.failed.values())
        text = f"{sent} sent" + (
            f", {failed} failed (will retry: codi-eval opik sync)" if failed else ""
        )
        return text + (f"; last error: {self.last_error}" if failed and self.last_error else "")


async def opik_reachable(settings: Settings, timeout_s: float = 2.0) -> str | None:
    """None when Opik answers its health check, else why not (within ``timeout_s``).

    The SDK retries a refused connection, a 429 or a 5xx for ~11 s or more per call; asking
    ``is-alive/ping`` first lets a run finish at once and leave its copies queued. Without
    OPIK_URL_OVERRIDE (the cloud or ~/.opik.config) the SDK's own handling is trusted.
    """
    import aiohttp

    if not settings.opik_url:
        return None
    url = settings.opik_url.rstrip("/") + "/is-alive/ping"
    try:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as resp:
                if resp.status != 200:
                    return f"Opik answered {resp.status} at {settings.opik_url}"
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return f"Opik is unreachable at {settings.opik_url} ({type(exc).__name__})"
    return None


async def enqueue(
    session: AsyncSession,
    kind: str,
    entity_id: str,
    *,
    user_id: int | None = None,
    project: str | None = None,
) -> None:
    """Queue (or re-queue) one copy; a sent row goes back to pending so new data follows it."""
    existing = await session.scalar(
        select(OutboxEntry).where(OutboxEntry.kind == kind, OutboxEntry.entity_id == entity_id)
    )
    if existing is None:
        session.add(OutboxEntry(**outbox_row(kind, entity_id, user_id=user_id, project=project)))
    else:
        existing.status = "pending"
        existing.project = project or existing.project
        # A sync sending the older copy must not mark this newer one sent: drop its claim.
        existing.claimed_by = None
        existing.claim_expires_at = None


async def outbox_status(store: Store) -> dict[str, Any]:
    async with store.session() as session:
        counts = (
            await session.execute(
                select(OutboxEntry.status, OutboxEntry.kind, func.count()).group_by(
                    OutboxEntry.status, OutboxEntry.kind
                )
            )
        ).all()
        last = await session.scalar(
            select(OutboxEntry)
            .where(OutboxEntry.last_error.is_not(None))
            .order_by(OutboxEntry.id.desc())
            .limit(1)
        )
    status: dict[str, Any] = {"pending": 0, "sent": 0, "failed": 0, "by_kind": {}}
    for st, kind, n in counts:
        status[st] = status.get(st, 0) + n
        status["by_kind"].setdefault(kind, {})[st] = n
    status["last_error"] = last.last_error if last is not None and last.status == "failed" else None
    return status


async def load_tree(session: AsyncSession, trace_id: uuid.UUID) -> TraceTree | None:
    """A stored trace with its spans and evaluations, as the records the tracer wrote."""
    conn = await session.connection()
    trace = (await conn.execute(select(Trace.__table__).where(Trace.id == trace_id))).first()
    if trace is None:
        return None
    spans = await conn.execute(
        select(Span.__table__).where(Span.trace_id == trace_id).order_by(Span.start_time)
    )
    evaluations = await conn.execute(
        select(Evaluation.__table__).where(Evaluation.trace_id == trace_id)
    )
    return TraceTree(
        trace=TraceRecord.from_row(trace),
        spans=[SpanRecord.from_row(s) for s in spans],
        evaluations=[EvaluationRecord.from_row(e) for e in evaluations],
    )


def dataset_export_name(dataset: Dataset) -> str:
    return f"{dataset.name}-v{dataset.version}"


async def _experiment_payload(
    session: AsyncSession, experiment_id: uuid.UUID
) -> dict[str, Any] | None:
    exp = await session.get(Experiment, experiment_id)
    if exp is None:
        return None
    dataset = await session.get(Dataset, exp.dataset_id)
    assert dataset is not None
    cells = (
        await session.scalars(
            select(ExperimentCell)
            .where(ExperimentCell.experiment_id == experiment_id)
            .order_by(ExperimentCell.position)
        )
    ).all()
    runs = (
        await session.execute(
            select(Run.cell_id, Run.dataset_item_id, Run.trace_id).where(
                Run.experiment_id == experiment_id, Run.status == "succeeded"
            )
        )
    ).all()
    used_items = {item_id for _, item_id, _ in runs}
    items = (
        (
            await session.scalars(
                select(DatasetItem)
                .where(DatasetItem.id.in_(used_items))
                .order_by(DatasetItem.position)
            )
        ).all()
        if used_items
        else []
    )
    refs = {c.prompt for c in cells} | {
        exp.spec.get("final_prompt", "cod_final@1"),
        exp.spec.get("judge", {}).get("prompt", "summary_judge@1"),
    }
    prompts = {}
    for ref in refs:
        name, _, version = ref.partition("@")
        p = await session.scalar(
            select(Prompt).where(Prompt.name == name, Prompt.version == int(version))
        )
        if p is not None:
            prompts[ref] = {
                "name": p.name,
                "template": p.template,
                "version_label": f"v{p.version}",
                "metadata": {"codi_eval_version": p.version, "template_hash": p.template_hash},
            }
    return {
        "dataset_name": dataset_export_name(dataset),
        "dataset_items": [
            {
                "id": str(i.id),
                "data": {
                    "item": i.item_key,
                    "language": i.language,
                    "code": i.code,
                    "instruction": i.instruction,
                    "reference": i.reference,
                },
            }
            for i in items
        ],
        "cells": [
            {
                "id": str(c.id),
                "name": f"{exp.name}/{c.key}",
                "config": {
                    **c.params,
                    "experiment": exp.name,
                    "experiment_id": str(exp.id),
                    "cell": c.key,
                    "spec_hash": exp.spec_hash,
                },
                "prompts": [
                    prompts[r]
                    for r in (c.prompt, exp.spec.get("final_prompt", "cod_final@1"))
                    if r in prompts
                ],
                "items": [
                    {"dataset_item_id": str(item), "trace_id": str(trace)}
                    for cell_id, item, trace in runs
                    if cell_id == c.id and trace is not None
                ],
            }
            for c in cells
        ],
    }


async def _credentials(
    session: AsyncSession, user_id: int | None, settings: Settings
) -> dict[str, Any]:
    if user_id is None:
        return {}
    user = await session.get(User, user_id)
    if user is None:
        return {}
    creds: dict[str, Any] = {}
    if user.opik_api_key_encrypted:
        from codi_eval.secrets import decrypt

        creds["api_key"] = decrypt(user.opik_api_key_encrypted, settings.secret_key)
        if user.opik_workspace:
            creds["workspace"] = user.opik_workspace
    elif user.opik_workspace and user.opik_workspace in settings.server_opik_workspaces():
        # With the server's key only a workspace the operator allows: otherwise any user
        # could make the server write into someone else's workspace (a confused deputy).
        creds["workspace"] = user.opik_workspace
    return creds


async def sync_outbox(
    store: Store,
    settings: Settings,
    *,
    limit: int = 500,
    timeout_s: float = 60.0,
    exporter_factory: Any = None,
) -> SyncReport:
    """Send pending and failed outbox rows (up to ``limit`` per pass) and record the outcome.

    Rows are claimed first (like runs: ``claimed_by`` and an expiry), so any number of
    syncs at once — a run's own, ``serve``'s background one, ``opik sync`` — send each row
    once; a sync that dies leaves its claims to expire.
    """
    report = SyncReport()
    owner = f"sync:{uuid.uuid4().hex[:12]}"
    rows = await _claim(store, owner, limit, claim_s=timeout_s + 60)
    if not rows:
        return report
    if exporter_factory is None:
        unreachable = await opik_reachable(settings)
        if unreachable is not None:
            async with store.transaction() as session:
                await session.execute(
                    update(OutboxEntry)
                    .where(
                        OutboxEntry.id.in_([r.id for r in rows]), OutboxEntry.claimed_by == owner
                    )
                    .values(
                        status="failed",
                        attempts=OutboxEntry.attempts + 1,
                        last_error=unreachable,
                        claimed_by=None,
                        claim_expires_at=None,
                    )
                )
            for row in rows:
                report.failed[row.kind] += 1
            report.last_error = unreachable
            return report
    if exporter_factory is None:
        from codi_eval.opik_export import OpikExporter

        exporter_factory = OpikExporter
    groups: dict[tuple[int | None, str | None], list[Claimed]] = {}
    for row in sorted(rows, key=lambda r: (KIND_ORDER.get(r.kind, 9), r.id)):
        groups.setdefault((row.user_id, row.project or settings.opik_project), []).append(row)
    for (user_id, project), group in groups.items():
        async with store.session() as session:
            creds = await _credentials(session, user_id, settings)
        if settings.opik_url:
            creds.setdefault("host", settings.opik_url)
        exporter = await asyncio.to_thread(
            functools.partial(exporter_factory, project_name=project, **creds)
        )
        try:
            await _send_group(store, exporter, group, report, timeout_s, owner)
        finally:
            await asyncio.to_thread(exporter.close)
    return report


async def _claim(store: Store, owner: str, limit: int, *, claim_s: float) -> list[Claimed]:
    now = utcnow()
    async with store.transaction() as session:
        ids = (
            select(OutboxEntry.id)
            .where(
                OutboxEntry.status != "sent",
                or_(OutboxEntry.claim_expires_at.is_(None), OutboxEntry.claim_expires_at < now),
            )
            .order_by(OutboxEntry.id)
            .limit(limit)
        )
        if store.dialect == "postgresql":
            ids = ids.with_for_update(skip_locked=True)
        rows = (
            await session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id.in_(ids.scalar_subquery()))
                .values(claimed_by=owner, claim_expires_at=now + timedelta(seconds=claim_s))
                .returning(
                    OutboxEntry.id,
                    OutboxEntry.kind,
                    OutboxEntry.entity_id,
                    OutboxEntry.user_id,
                    OutboxEntry.project,
                )
                .execution_options(synchronize_session=False)
            )
        ).all()
    return sorted((Claimed(*r) for r in rows), key=lambda r: r.id)


@dataclass(frozen=True)
class Claimed:
    """An outbox row this sync holds."""

    id: int
    kind: str
    entity_id: str
    user_id: int | None
    project: str | None


async def _send_group(
    store: Store,
    exporter: Any,
    group: list[Claimed],
    report: SyncReport,
    timeout_s: float,
    owner: str,
) -> None:
    queued: list[Claimed] = []
    errors: dict[int, str] = {}
    for row in group:
        try:
            async with store.session() as session:
                if row.kind == "trace":
                    tree = await load_tree(session, uuid.UUID(row.entity_id))
                    if tree is not None:
                        await asyncio.to_thread(exporter.export_trace_tree, tree)
                elif row.kind == "experiment":
                    payload = await _experiment_payload(session, uuid.UUID(row.entity_id))
                    if payload is not None:
                        await asyncio.to_thread(_export_experiment, exporter, payload)
                else:
                    # Not sent, and never marked sent: a newer codi-eval may know it.
                    raise ValueError(
                        f"unknown outbox kind {row.kind!r}; this codi-eval cannot send it"
                    )
            queued.append(row)
        except Exception as exc:  # OpikExportError, timeouts: keep the row for the next pass
            errors[row.id] = f"{type(exc).__name__}: {exc}"[:2000]
    flushed = await asyncio.to_thread(exporter.flush, timeout_s)
    problem = "; ".join(getattr(exporter, "last_flush_problems", []) or [])[:2000] or "flush failed"
    async with store.transaction() as session:
        for row in group:
            if row.id in errors or not flushed:
                report.failed[row.kind] += 1
                report.last_error = errors.get(row.id, problem)
                await session.execute(
                    update(OutboxEntry)
                    .where(OutboxEntry.id == row.id, OutboxEntry.claimed_by == owner)
                    .values(
                        status="failed",
                        attempts=OutboxEntry.attempts + 1,
                        last_error=report.last_error,
                        claimed_by=None,
                        claim_expires_at=None,
                    )
                )
            else:
                report.sent[row.kind] += 1
                # Only if still ours: a row re-queued meanwhile (new data) stays pending.
                await session.execute(
                    update(OutboxEntry)
                    .where(OutboxEntry.id == row.id, OutboxEntry.claimed_by == owner)
                    .values(
                        status="sent",
                        attempts=OutboxEntry.attempts + 1,
                        sent_at=utcnow(),
                        last_error=None,
                        claimed_by=None,
                        claim_expires_at=None,
                    )
                )


def _export_experiment(exporter: Any, payload: dict[str, Any]) -> None:
    exporter.export_dataset(
        payload["dataset_name"], payload["dataset_items"], description="codi-eval dataset version"
    )
    for cell in payload["cells"]:
        exporter.export_experiment(
            cell["name"],
            payload["dataset_name"],
            cell["config"],
            cell["prompts"],
            cell["items"],
            experiment_id=cell["id"],
        )
