"""The experiment runner: a spec becomes stored cells and runs, executed concurrently.

One run = one cell × dataset item × repeat. Runs are created ``pending`` when the
experiment is created. A runner *claims* runs with a lease (:mod:`.leases`), so any number
of runner processes on any number of machines share an experiment and do each run once; a
dead runner's runs come back when its lease expires. A run is committed (trace, spans,
evaluations and its own row, in one transaction) when it finishes, so a crash loses at most
the runs in flight, and running the same spec again picks up exactly what is not done.

What the infrastructure does is not a result: a store that goes away is waited for (within
an outage budget) and otherwise stops the work cleanly; a run cut short by the store, or a
model stopped because its configuration is wrong (no key), goes back to ``pending``; only
what the model and judge really did becomes ``succeeded`` or ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from codi_eval.errors import InputError
from codi_eval.experiments.cache import ResponseCache, model_identity
from codi_eval.experiments.calls import (
    CallMemo,
    CallStats,
    Limiter,
    ManagedModel,
    RateLimiter,
    RetryPolicy,
    Slots,
    run_stats,
)
from codi_eval.experiments.leases import (
    DEFAULT_LEASE_S,
    Work,
    claim_runs,
    held_elsewhere,
    new_owner,
    release_runs,
    renew_leases,
    requeue_failed,
)
from codi_eval.experiments.ratelimit import SharedRateLimiter, SharedSlots
from codi_eval.experiments.spec import Spec, spec_hash
from codi_eval.ids import uuid7
from codi_eval.models.base import ModelError
from codi_eval.prompts import ensure_seeded, get_prompt, template_hash
from codi_eval.settings import Settings
from codi_eval.store.datasets import import_file
from codi_eval.store.engine import Store
from codi_eval.store.faults import DEFAULT_OUTAGE_S, StoreUnavailable, is_store_fault, retrying
from codi_eval.store.models import (
    Dataset,
    DatasetItem,
    Experiment,
    ExperimentCell,
    Run,
    utcnow,
)
from codi_eval.store.records import TraceTree
from codi_eval.summarize import CoDSettings, PromptVersion, Summarizer
from codi_eval.tracing import StoreSink, Tracer

log = logging.getLogger(__name__)

# Error classes that say the configuration is wrong, not that the model had a bad moment.
CONFIG_ERRORS = frozenset({"auth", "bad_request"})
# A model whose first calls fail this many times with a configuration error, before any
# succeeds, is stopped: its remaining runs stay pending until the configuration is fixed.
FAIL_FAST_AFTER = 3
# How long finished runs gather before their batch is written. At a few hundred runs a
# second a write with no wait took a dozen runs; gathering for 0.1 s takes forty or more,
# and the database server's share fell by a third (BENCHMARKS.md, "The runner beside
# today's code"). A crash loses at most this much work: those runs keep their leases and
# are run again.
WRITE_LINGER_S = 0.1


class SpecChanged(InputError):
    pass


@dataclass
class Prepared:
    experiment: Experiment
    cells: list[ExperimentCell]
    dataset: Dataset
    prompts: dict[str, PromptVersion]
    created: bool
    runs_total: int
    runs_done: int
    runs_failed: int

    @property
    def runs_to_do(self) -> int:
        return self.runs_total - self.runs_done


def sample_positions(count: int, n: int | None, seed: int) -> list[int]:
    """The same item positions every time for the same (count, n, seed)."""
    if n is None or n >= count:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), n))


async def prepare(
    store: Store,
    spec: Spec,
    settings: Settings,
    *,
    new: bool = False,
    create: bool = True,
    retry_failed: bool = False,
) -> Prepared:
    """Resolve prompts and dataset, then find the experiment to resume or create it.

    Everything that can be wrong with the input is checked before anything is written
    for the experiment (the dataset and prompt versions are immutable, so storing them is
    safe). Creating is safe under concurrency: two processes that create the same
    experiment at once get one — the second's insert conflicts and it resumes the first's.
    With ``retry_failed`` the failed runs go back to pending (each attempt's trace stays).
    """
    from codi_eval.datasets import DatasetError

    try:
        imported = await import_file(store, spec.dataset_path)
    except DatasetError as exc:
        raise InputError(str(exc), file=spec.path, field="dataset") from exc
    if imported.dataset.item_count == 0:
        raise InputError(
            "the dataset has no items; an experiment over it would have no runs",
            file=spec.path,
            field="dataset",
        )
    await ensure_seeded(store, settings.prompts_dir)
    prompts: dict[str, PromptVersion] = {}
    refs = [*spec.matrix.prompt, spec.final_prompt, spec.judge.prompt]
    fields = [
        *(f"matrix.prompt[{i}]" for i in range(len(spec.matrix.prompt))),
        "final_prompt",
        "judge.prompt",
    ]
    for ref, field_name in zip(refs, fields, strict=True):
        try:
            prompt = await get_prompt(store, ref)
        except InputError as exc:
            raise InputError(exc.message, file=spec.path, field=field_name) from None
        prompts[ref] = PromptVersion(prompt.ref, prompt.template)
    prompt_hashes = {ref: template_hash(p.template) for ref, p in prompts.items()}
    digest = spec_hash(spec.identity(), imported.dataset.content_hash, prompt_hashes)
    for _ in range(3):
        try:
            return await _find_or_create(
                store, spec, imported.dataset, prompts, prompt_hashes, digest,
                new=new, create=create, retry_failed=retry_failed,
            )  # fmt: skip
        except IntegrityError:
            # Another process created it a moment ago: resume theirs.
            new = False
    raise RuntimeError("the experiment could not be created or found")  # pragma: no cover


async def _find_or_create(
    store: Store,
    spec: Spec,
    dataset: Dataset,
    prompts: dict[str, PromptVersion],
    prompt_hashes: dict[str, str],
    digest: str,
    *,
    new: bool,
    create: bool,
    retry_failed: bool,
) -> Prepared:
    async with store.transaction() as session:
        same = await session.scalar(
            select(Experiment)
            .where(Experiment.name == spec.name, Experiment.spec_hash == digest)
            .order_by(Experiment.generation.desc())
            .limit(1)
        )
        if same is not None and not new:
            if retry_failed and create:
                await requeue_failed(session, same.id)
            cells = list(
                (
                    await session.scalars(
                        select(ExperimentCell)
                        .where(ExperimentCell.experiment_id == same.id)
                        .order_by(ExperimentCell.position)
                    )
                ).all()
            )
            counts = await _status_counts(session, same.id)
            failed = counts.get("failed", 0)
            # A dry run with --retry-failed counts the failed runs as still to do.
            done = counts.get("succeeded", 0) + (0 if retry_failed else failed)
            return Prepared(
                same, cells, dataset, prompts, False, sum(counts.values()), done, failed
            )
        other = await session.scalar(
            select(Experiment.id).where(Experiment.name == spec.name).limit(1)
        )
        if other is not None and not new:
            raise SpecChanged(
                f"an experiment named {spec.name!r} already exists with a different spec, dataset or "
                "prompt templates; rename it, or pass --new to start a new experiment under this name",
                file=spec.path,
                field="name",
            )
        positions = sample_positions(dataset.item_count, spec.sample.n, spec.sample.seed)
        if not create:
            return Prepared(
                Experiment(
                    id=uuid.UUID(int=0),
                    name=spec.name,
                    spec=spec.resolved(),
                    spec_hash=digest,
                    dataset_id=dataset.id,
                ),
                [
                    ExperimentCell(
                        key=c.key,
                        prompt=c.prompt,
                        density_iterations=c.density_iterations,
                        model=c.model,
                        position=i,
                    )
                    for i, c in enumerate(spec.cells())
                ],
                dataset,
                prompts,
                True,
                len(spec.cells()) * len(positions) * spec.repeats,
                0,
                0,
            )
        # Only --new adds a generation. Without it, no experiment had this name and hash a
        # moment ago, so this is generation 0: reading the maximum again here would see one
        # another runner committed since, and make a second experiment instead of joining it.
        generation = (
            await session.scalar(
                select(func.max(Experiment.generation)).where(
                    Experiment.name == spec.name, Experiment.spec_hash == digest
                )
            )
            if new
            else None
        )
        experiment = Experiment(
            id=uuid7(),
            name=spec.name,
            spec=spec.resolved(),
            spec_hash=digest,
            spec_path=spec.path,
            dataset_id=dataset.id,
            prompt_hashes=prompt_hashes,
            status="created",
            generation=0 if generation is None else generation + 1,
            meta_data={
                "dataset": {
                    "name": dataset.name,
                    "version": dataset.version,
                    "content_hash": dataset.content_hash,
                }
            },
        )
        session.add(experiment)
        # The unique (name, spec_hash, generation) decides a race here, before any run exists.
        await session.flush()
        cells = [
            ExperimentCell(
                id=uuid7(),
                experiment_id=experiment.id,
                key=c.key,
                position=i,
                prompt=c.prompt,
                density_iterations=c.density_iterations,
                model=c.model,
                params={
                    "prompt": c.prompt,
                    "density_iterations": c.density_iterations,
                    "model": c.model,
                    "final_prompt": spec.final_prompt,
                    "judge": {"model": spec.judge.model, "prompt": spec.judge.prompt},
                    "word_budget": spec.word_budget,
                },
            )
            for i, c in enumerate(spec.cells())
        ]
        session.add_all(cells)
        await session.flush()
        item_ids: list[uuid.UUID] = []
        for start in range(0, len(positions), 1000):
            chunk = positions[start : start + 1000]
            rows = (
                await session.execute(
                    select(DatasetItem.id, DatasetItem.position).where(
                        DatasetItem.dataset_id == dataset.id,
                        DatasetItem.position.in_(chunk),
                    )
                )
            ).all()
            by_pos = {pos: item_id for item_id, pos in rows}
            item_ids.extend(by_pos[p] for p in chunk)
        total = 0
        batch: list[dict[str, Any]] = []
        # Item by item, then repeat, then cell: the runs of one item (which share their first
        # Chain-of-Density iterations across density cells) are claimed together.
        for item_id in item_ids:
            for repeat in range(spec.repeats):
                for cell in cells:
                    batch.append(
                        {
                            "id": uuid7(),
                            "experiment_id": experiment.id,
                            "cell_id": cell.id,
                            "dataset_item_id": item_id,
                            "repeat": repeat,
                            "status": "pending",
                            "attempts": 0,
                            "model_calls": 0,
                            "cache_hits": 0,
                        }
                    )
                    if len(batch) >= 2000:
                        await session.execute(insert(Run), batch)
                        total += len(batch)
                        batch = []
        if batch:
            await session.execute(insert(Run), batch)
            total += len(batch)
    return Prepared(experiment, cells, dataset, prompts, True, total, 0, 0)


async def load_prepared(store: Store, experiment: Experiment) -> tuple[Spec, Prepared]:
    """What a worker needs to join an experiment it did not create: the stored spec, the
    cells, the dataset version and the prompt versions, all read from the store."""
    from codi_eval.experiments.spec import spec_from_stored

    spec = spec_from_stored(experiment.spec, path=experiment.spec_path or experiment.name)
    async with store.session() as session:
        cells = list(
            (
                await session.scalars(
                    select(ExperimentCell)
                    .where(ExperimentCell.experiment_id == experiment.id)
                    .order_by(ExperimentCell.position)
                )
            ).all()
        )
        dataset = await session.get(Dataset, experiment.dataset_id)
        counts = await _status_counts(session, experiment.id)
    assert dataset is not None
    prompts: dict[str, PromptVersion] = {}
    for ref in [*spec.matrix.prompt, spec.final_prompt, spec.judge.prompt]:
        prompt = await get_prompt(store, ref)
        prompts[ref] = PromptVersion(prompt.ref, prompt.template)
    done = counts.get("succeeded", 0) + counts.get("failed", 0)
    return spec, Prepared(
        experiment, cells, dataset, prompts, False, sum(counts.values()), done,
        counts.get("failed", 0),
    )  # fmt: skip


async def _status_counts(session: AsyncSession, experiment_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(Run.status, func.count())
        .where(Run.experiment_id == experiment_id)
        .group_by(Run.status)
    )
    return {status: count for status, count in rows.all()}


@dataclass
class Progress:
    """Live counters a progress display reads."""

    total: int = 0
    done_before: int = 0
    succeeded: int = 0
    failed: int = 0
    released: int = 0  # runs given back (infrastructure, or a stopped model)
    started_at: float = field(default_factory=time.monotonic)
    stats: CallStats = field(default_factory=CallStats)

    @property
    def done(self) -> int:
        return self.succeeded + self.failed


@dataclass
class StoppedModel:
    """A model stopped at once because its first calls failed with a configuration error."""

    model: str
    kind: str
    message: str
    failures: int


class Runner:
    def __init__(
        self,
        store: Store,
        spec: Spec,
        prepared: Prepared,
        *,
        settings: Settings,
        concurrency: int | None = None,
        use_cache: bool | None = None,
        export_to_opik: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
        sink: StoreSink | None = None,
        owner: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        outage_s: float = DEFAULT_OUTAGE_S,
    ) -> None:
        self.store = store
        self.spec = spec
        self.prepared = prepared
        self.settings = settings
        self.concurrency = concurrency or spec.run.concurrency
        self.use_cache = spec.run.cache if use_cache is None else use_cache
        self.export = export_to_opik
        self.on_progress = on_progress
        self.owner = owner or new_owner()
        self.lease_s = lease_s
        self.outage_s = outage_s
        # Runs do not wait for their trace's commit: the slot is free for the next run, and
        # a run whose trace never lands keeps its lease, which expires, so it is run again.
        # A batch gathers for WRITE_LINGER_S before it is written, so runs finishing a few
        # milliseconds apart share a transaction instead of paying one each. On PostgreSQL
        # two transactions are in flight, so the server stores one batch while the next is
        # built (SQLite has one writer at a time: a second would only wait for the lock).
        self.sink = sink or StoreSink(
            store,
            wait_for_commit=False,
            outage_s=outage_s,
            max_delay_s=WRITE_LINGER_S,
            writers=2 if store.dialect == "postgresql" else 1,
        )
        self.tracer = Tracer(self.sink)
        self.progress = Progress(total=prepared.runs_total, done_before=prepared.runs_done)
        self._models: dict[str, ManagedModel] = {}
        self._summarizers: dict[tuple[uuid.UUID, int], Summarizer] = {}
        self._cells = {c.id: c for c in prepared.cells}
        self._cache = ResponseCache(store)
        # Identical calls are made once: density cells of one item share their iterations.
        self._memo = CallMemo() if spec.run.share_calls else None
        self.stopped: dict[str, StoppedModel] = {}
        self._config_failures: Counter[str] = Counter()
        self._config_first: dict[str, tuple[str, str]] = {}
        self._model_worked: set[str] = set()
        self._stopped_cells: set[uuid.UUID] = set()
        self.fatal: StoreUnavailable | None = None

    def managed(self, name: str) -> ManagedModel:
        """The runner's one managed model for spec name ``name``.

        A remote model's ``requests_per_minute`` and ``concurrency`` are kept in the store,
        keyed by provider, endpoint and model, so they hold across every worker on this
        experiment (and any other experiment calling the same endpoint and model). The
        offline baseline is free and local: no limit, and its answers are shared in memory
        but never written to the store cache (a write costs more than the answer).
        """
        if name not in self._models:
            from codi_eval.models.registry import get_model

            inner = get_model(name)
            run = self.spec.run
            limits = run.models.get(name)
            remote = inner.provider != "offline"
            identity = model_identity(name, inner.provider)
            key = "|".join(str(identity.get(k) or "") for k in ("provider", "endpoint", "model"))
            limiter: Limiter = RateLimiter(None)
            slots: Slots | None = None
            if remote:
                rpm = (
                    limits.requests_per_minute
                    if limits and limits.requests_per_minute
                    else run.requests_per_minute
                )
                limiter = SharedRateLimiter(self.store, key, rpm)
            if limits and limits.concurrency:
                slots = (
                    SharedSlots(
                        self.store,
                        key,
                        limits.concurrency,
                        owner=self.owner,
                        hold_s=run.timeout_s + 30.0,
                    )
                    if remote
                    else asyncio.Semaphore(limits.concurrency)
                )
            self._models[name] = ManagedModel(
                inner,
                name=name,
                cache=self._cache if self.use_cache and remote else None,
                limiter=limiter,
                semaphore=slots,
                policy=RetryPolicy(
                    max_retries=run.max_retries, backoff_s=run.backoff_s, timeout_s=run.timeout_s
                ),
                totals=self.progress.stats,
                memo=self._memo,
            )
        return self._models[name]

    def summarizer(self, cell: ExperimentCell, repeat: int) -> Summarizer:
        key = (cell.id, repeat)
        if key not in self._summarizers:
            from codi_eval.judging import Judge, build_score_judge, judge_prompt

            spec = self.spec
            judge: Judge | None = None
            # A pairwise judge compares two cells' summaries after the runs
            # (codi-eval compare --pairwise); runs then carry no score judgement.
            if spec.judge.mode == "score":
                jp = self.prepared.prompts[spec.judge.prompt]
                judge = build_score_judge(
                    spec.judge.model,
                    judge_prompt(jp.ref, jp.template, self.settings.prompts_dir),
                    models=lambda name: self.managed(name).for_repeat(repeat),
                )
            seed = None if spec.seed is None else spec.seed + repeat
            self._summarizers[key] = Summarizer(
                model=self.managed(cell.model).for_repeat(repeat),
                judge=judge,
                iteration_prompt=self.prepared.prompts[cell.prompt],
                final_prompt=self.prepared.prompts[spec.final_prompt],
                tracer=self.tracer,
                settings=CoDSettings(
                    density_iterations=cell.density_iterations,
                    word_budget=spec.word_budget,
                    temperature=spec.temperature,
                    seed=seed,
                    max_tokens=spec.max_tokens,
                    timeout_s=spec.run.timeout_s,
                ),
                metrics=[m for m in spec.metrics if m != "summary_quality"],
            )
        return self._summarizers[key]

    # ------------------------------------------------------------------ running

    async def _store(self, operation: Callable[[], Any], what: str) -> Any:
        return await retrying(operation, what=what, url=self.store.url, outage_s=self.outage_s)

    async def _claims(self, queue: asyncio.Queue[Work | None]) -> None:
        """Claim runs a page at a time while there are any, keeping the queue about a page
        ahead; then wait for runs other workers hold, taking over any whose lease lapses,
        until none is left."""
        experiment_id = self.prepared.experiment.id
        # Waiting for runs another worker holds: look again soon (the last runs of a fast
        # experiment end within a second), then less often, up to a third of a lease.
        wait_s = 0.1
        try:
            while True:
                # At least a concurrency's worth per claim: topping a full queue up run by run
                # cost one claim transaction per run. What does not fit waits in this task's
                # hands (under the same leases) for the queue to drain.
                room = min(512, max(self.concurrency, self.concurrency * 2 - queue.qsize()))
                page = await self._store(
                    functools.partial(
                        claim_runs,
                        self.store,
                        experiment_id,
                        self.owner,
                        room,
                        lease_s=self.lease_s,
                        skip_cells=self._stopped_cells,
                    ),
                    "claiming runs",
                )
                if not page:
                    held, freed = await self._store(
                        functools.partial(held_elsewhere, self.store, experiment_id, self.owner),
                        "looking at other workers' runs",
                    )
                    if freed:
                        continue  # a dead worker's runs: claim them now
                    if not held or self.fatal is not None:
                        return
                    await asyncio.sleep(min(wait_s, self.lease_s / 3))
                    wait_s = min(2.0, wait_s * 2)
                    continue
                wait_s = 0.1
                for work in page:
                    await queue.put(work)
        finally:
            for _ in range(self.concurrency):
                await queue.put(None)

    async def _heartbeat(self) -> None:
        """Renew this worker's leases a few times per lease, so they never lapse while it works."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                async with asyncio.timeout(self.lease_s / 3):
                    await renew_leases(self.store, self.owner, lease_s=self.lease_s)
            except Exception as exc:  # a cut: the writes' own retries decide what happens
                if not is_store_fault(exc):
                    raise
                log.warning("could not renew leases (%s); retrying", type(exc).__name__)

    async def run(self) -> Progress:
        """Run (this worker's share of) the experiment's unfinished runs."""
        experiment = self.prepared.experiment

        async def mark_running() -> None:
            async with self.store.transaction() as session:
                await session.execute(
                    update(Experiment)
                    .where(Experiment.id == experiment.id)
                    .values(status="running")
                )

        await self._store(mark_running, "starting the experiment")
        queue: asyncio.Queue[Work | None] = asyncio.Queue(maxsize=self.concurrency * 2)

        async def consume() -> None:
            while (work := await queue.get()) is not None:
                if self.fatal is not None:
                    continue  # the store is gone: what is queued keeps its lease, to expire
                if work.cell_id in self._stopped_cells:
                    await self._release(work, counted=False)
                    continue
                await self._execute(work)

        self.progress.started_at = time.monotonic()
        self._notify()
        # Everything loaded so far (SDKs, SQLAlchemy, caches) lives for the whole run: move it
        # out of the collector's sight so full collections stop rescanning it (they stalled
        # the event loop for tens of milliseconds, delaying every run in flight).
        # A run allocates many short-lived objects; collecting the young generation less
        # often costs a few MB and saves CPU the event loop needs.
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], 20_000), *thresholds[1:])
        heartbeat = asyncio.create_task(self._heartbeat(), name="codi-eval-leases")
        try:
            await asyncio.gather(self._claims(queue), *(consume() for _ in range(self.concurrency)))
            await self.sink.close()
            if self.sink.fatal is not None:
                self.fatal = self.sink.fatal
        except StoreUnavailable as exc:
            self.fatal = exc
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            gc.set_threshold(*thresholds)
            gc.unfreeze()
            await self._close_models()
        if self.fatal is not None:
            raise self.fatal
        # Claimed but never started (a stopped model, an interrupted run): back to pending.
        await self._store(lambda: release_runs(self.store, self.owner), "releasing runs")
        await self._store(lambda: self._finish(experiment), "finishing the experiment")
        return self.progress

    async def _close_models(self) -> None:
        """Close the providers' HTTP sessions (an SDK client left open warns at exit)."""
        for managed in self._models.values():
            closing = getattr(managed.inner, "aclose", None)
            if closing is not None:
                with contextlib.suppress(Exception):
                    await closing()

    async def _finish(self, experiment: Experiment) -> None:
        async with self.store.transaction() as session:
            counts = await _status_counts(session, experiment.id)
            finished = counts.get("pending", 0) == 0 and counts.get("running", 0) == 0
            await session.execute(
                update(Experiment)
                .where(Experiment.id == experiment.id)
                .values(
                    status="finished" if finished else "incomplete",
                    finished_at=utcnow() if finished else None,
                )
            )
            if self.export:
                from codi_eval.opik_sync import enqueue

                # One Opik experiment per cell, linking dataset items to the traces above.
                await enqueue(
                    session, "experiment", str(experiment.id), project=self.spec.opik.project
                )

    async def _release(self, work: Work, *, counted: bool = True) -> None:
        await self._store(
            lambda: release_runs(self.store, self.owner, [work.run_id]), "releasing a run"
        )
        if counted:
            self.progress.released += 1

    async def _execute(self, work: Work) -> None:
        cell = self._cells[work.cell_id]
        stats = CallStats()
        token = run_stats.set(stats)
        deadline = time.monotonic() + self.spec.run.run_deadline_s
        handle: list[Any] = []
        error: BaseException | None = None

        def record_run(trace: Any) -> None:
            # The run row changes in the same transaction as its trace: never half-written,
            # and only while this worker still holds the run's lease.
            handle.append(trace)
            trace.record_run(lambda tree: run_outcome(tree, stats, deadline), owner=self.owner)

        try:
            async with asyncio.timeout(self.spec.run.run_deadline_s):
                await self.summarizer(cell, work.repeat).summarize(
                    code=work.code,
                    instruction=work.instruction or self.spec.instruction,
                    language=work.language,
                    reference=work.reference,
                    trace_name=f"{self.spec.name}: {work.item_key}",
                    trace_kwargs={
                        "run_id": work.run_id,
                        "tags": [self.spec.name, cell.key],
                        "metadata": {
                            "experiment_id": str(self.prepared.experiment.id),
                            "cell": cell.key,
                            "item": work.item_key,
                            "repeat": work.repeat,
                        },
                        "export": self.export,
                        "export_project": self.spec.opik.project,
                        "trace_type": "experiment",
                    },
                    on_trace=record_run,
                )
        except StoreUnavailable as exc:  # the sink gave up on the store: stop the work
            self.fatal = exc
            return
        except Exception as exc:  # recorded on the trace and its run row
            error = exc
        finally:
            run_stats.reset(token)
        if error is None:
            self.progress.succeeded += 1
            self._model_worked.update({cell.model, self.spec.judge.model})
        elif _released(error):
            self.progress.released += 1
        else:
            self.progress.failed += 1
            if isinstance(error, ModelError) and error.kind in CONFIG_ERRORS:
                self._config_failed(cell, error, handle[0] if handle else None)
        self._notify()

    def _config_failed(self, cell: ExperimentCell, error: ModelError, trace: Any) -> None:
        """Count a configuration failure against the model that made it; stop that model's
        cells once it has failed this way a few times and never worked."""
        failing = [
            s for s in (trace.spans if trace is not None else []) if s.status == "error" and s.model
        ]
        model = failing[-1].model if failing else cell.model
        name = next(
            (n for n in (cell.model, self.spec.judge.model) if n.partition("?")[0] == model),
            cell.model,
        )
        if name in self._model_worked or name in self.stopped:
            return
        self._config_failures[name] += 1
        self._config_first.setdefault(name, (error.kind, str(error)))
        if self._config_failures[name] < FAIL_FAST_AFTER:
            return
        kind, message = self._config_first[name]
        self.stopped[name] = StoppedModel(name, kind, message, self._config_failures[name])
        judge = name == self.spec.judge.model
        self._stopped_cells.update(c.id for c in self.prepared.cells if judge or c.model == name)
        log.warning("stopping %s: %s", name, message)

    def _notify(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)


def _released(error: BaseException) -> bool:
    """Whether a run's failure belongs to the infrastructure (it is given back, not failed)."""
    return is_store_fault(error) or isinstance(error, asyncio.CancelledError)


def run_outcome(tree: TraceTree, stats: CallStats, deadline: float) -> dict[str, Any]:
    """The run row's final values, read off its finished trace.

    A run cut short by the store (a dropped connection in the response cache, say) is not
    a result: it goes back to ``pending`` and its trace is not stored.
    """
    trace = tree.trace
    error = trace.error or {}
    if trace.status != "ok" and error.get("store_fault"):
        return {"status": "pending"}
    llm_like = [s for s in tree.spans if s.type in ("llm", "judge")]
    costs = [s.cost for s in llm_like if s.total_tokens is not None or s.cost is not None]
    values: dict[str, Any] = {
        "trace_id": trace.id,
        "finished_at": trace.end_time,
        "latency_ms": trace.duration_ms,
        "attempts": stats.model_calls + stats.cache_hits + stats.retries,
        "model_calls": stats.model_calls,
        "cache_hits": stats.cache_hits,
        "prompt_tokens": sum(s.prompt_tokens or 0 for s in llm_like),
        "completion_tokens": sum(s.completion_tokens or 0 for s in llm_like),
        "total_tokens": sum(s.total_tokens or 0 for s in llm_like),
        "cost": None if any(c is None for c in costs) else sum(c for c in costs if c is not None),
    }
    if trace.status == "ok":
        judge = next((e for e in tree.evaluations if e.metric_name == "summary_quality"), None)
        values.update(
            status="succeeded",
            error_class=None,
            error_message=None,
            summary=(trace.output_data or {}).get("summary"),
            judge_score=judge.score if judge is not None else None,
        )
    else:
        kind = error.get("kind") or error.get("type") or "error"
        message = error.get("message") or ""
        if error.get("type") in ("CancelledError", "TimeoutError") and time.monotonic() >= deadline:
            kind, message = "deadline", "the run did not finish within run.run_deadline_s"
        values.update(status="failed", error_class=str(kind)[:100], error_message=message[:4000])
    return values
