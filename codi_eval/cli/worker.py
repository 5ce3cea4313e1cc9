"""``codi-eval worker``: join experiments and run their runs, on this machine or any other.

A worker needs only the store (``CODI_EVAL_DATABASE_URL``, PostgreSQL for many machines):
the spec, cells, dataset and prompt versions of an experiment are read from it. Runs are
claimed with leases, so any number of workers (and ``codi-eval run`` processes) share an
experiment and do each run once.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import click
from sqlalchemy import and_, or_, select

from codi_eval.cli import Failed, console, emit_json, run_async
from codi_eval.cli.run import _opik_export_enabled
from codi_eval.experiments.leases import new_owner
from codi_eval.experiments.runner import Runner, load_prepared
from codi_eval.settings import get_settings
from codi_eval.store.engine import Store
from codi_eval.store.experiments import find_experiment
from codi_eval.store.models import Experiment, Run, utcnow


async def claimable_experiments(store: Store, only: uuid.UUID | None) -> list[uuid.UUID]:
    """Experiments with runs left to claim (pending, or a lease that lapsed), oldest first."""
    now = utcnow()
    stmt = (
        select(Run.experiment_id)
        .join(Experiment, Experiment.id == Run.experiment_id)
        .where(
            or_(
                Run.status == "pending",
                and_(
                    Run.status == "running",
                    or_(Run.lease_expires_at.is_(None), Run.lease_expires_at < now),
                ),
            )
        )
        .group_by(Run.experiment_id, Experiment.created_at)
        .order_by(Experiment.created_at)
    )
    if only is not None:
        stmt = stmt.where(Run.experiment_id == only)
    async with store.session() as session:
        return list((await session.scalars(stmt)).all())


@click.command()
@click.option(
    "--experiment",
    "experiment_ref",
    default=None,
    help="Work on this experiment only (id, id prefix or name) [default: every one with work left].",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=None,
    help="Runs in flight [default: each experiment's run.concurrency].",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="When nothing is left, look again for this many seconds before exiting.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
@run_async
async def worker(
    experiment_ref: str | None, concurrency: int | None, wait_s: float, as_json: bool
) -> None:
    """Claim and run the runs of experiments in the store until none is left.

    Start as many as you like, on any machines that share the store: each run is done once,
    a killed worker's runs come back when its lease expires, and requests_per_minute and
    per-model concurrency hold across all of them (PostgreSQL). Exit 1 if a run failed.
    """
    settings = get_settings()
    store = await Store.open(settings.database_url)
    owner = new_owner()
    done: dict[str, dict[str, int]] = {}
    try:
        only = None
        if experiment_ref is not None:
            only = (await find_experiment(store, experiment_ref)).id
        idle_since = time.monotonic()
        while True:
            todo = await claimable_experiments(store, only)
            if not todo:
                if time.monotonic() - idle_since >= wait_s:
                    break
                await asyncio.sleep(min(2.0, max(0.1, wait_s / 10)))
                continue
            for experiment_id in todo:
                async with store.session() as session:
                    experiment = await session.get(Experiment, experiment_id)
                assert experiment is not None
                spec, prepared = await load_prepared(store, experiment)
                runner = Runner(
                    store,
                    spec,
                    prepared,
                    settings=settings,
                    concurrency=concurrency,
                    export_to_opik=_opik_export_enabled(spec, settings),
                    owner=owner,
                    lease_s=settings.lease_s,
                    outage_s=settings.store_outage_s,
                )
                if not as_json:
                    console.print(f"worker {owner}: joining {experiment.name} ({experiment.id})")
                progress = await runner.run()
                seen = done.setdefault(experiment.name, {"succeeded": 0, "failed": 0})
                seen["succeeded"] += progress.succeeded
                seen["failed"] += progress.failed
            idle_since = time.monotonic()
            if only is not None:
                break
    finally:
        await store.close()
    failed = sum(d["failed"] for d in done.values())
    if as_json:
        emit_json({"worker": owner, "experiments": done})
    else:
        for name, counts in done.items():
            console.print(
                f"{name}: {counts['succeeded']} succeeded, {counts['failed']} failed here"
            )
        if not done:
            console.print("nothing to do: no experiment has runs left")
    if failed:
        raise Failed(f"{failed} runs failed; see `codi-eval run SPEC` for the summary")


commands = [worker]
