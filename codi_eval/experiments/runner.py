"""The experiment runner: a spec becomes stored cells and runs, executed concurrently.

One run = one cell × dataset item × repeat. Runs are created ``pending`` when the
experiment is created; a run is committed (trace, spans, evaluations and its own row, in
one transaction) when it finishes, so a crash at any moment loses at most the runs in
flight, and running the same spec again picks up exactly the runs that are not finished.
Items and runs stream from the store page by page; memory holds what is in flight.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from codi_eval.errors import InputError
from codi_eval.experiments.cache import ResponseCache
from codi_eval.experiments.calls import CallStats, ManagedModel, RateLimiter, RetryPolicy, run_stats
from codi_eval.experiments.spec import Spec, spec_hash
from codi_eval.ids import uuid7
from codi_eval.prompts import ensure_seeded, get_prompt, template_hash
from codi_eval.settings import Settings
from codi_eval.store.datasets import import_file
from codi_eval.store.engine import Store
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

PAGE = 512


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


def sample_positions(count: int, n: int | None, seed: int) -> list[int]:
    """The same item positions every time for the same (count, n, seed)."""
    if n is None or n >= count:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), n))


async def prepare(
    store: Store, spec: Spec, settings: Settings, *, new: bool = False, create: bool = True
) -> Prepared:
    """Resolve prompts and dataset, then find the experiment to resume or create it.

    Everything that can be wrong with the input is checked before anything is written
    for the experiment (the dataset and prompt versions are immutable, so storing them is safe).
    """
    from codi_eval.datasets import DatasetError

    try:
        imported = await import_file(store, spec.dataset_path)
    except DatasetError as exc:
        raise InputError(str(exc), file=spec.path, field="dataset") from exc
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

    async with store.transaction() as session:
        same = await session.scalar(
            select(Experiment)
            .where(Experiment.name == spec.name, Experiment.spec_hash == digest)
            .order_by(Experiment.created_at.desc())
            .limit(1)
        )
        if same is not None and not new:
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
            return Prepared(
                same,
                cells,
                imported.dataset,
                prompts,
                False,
                sum(counts.values()),
                counts.get("succeeded", 0) + counts.get("failed", 0),
                counts.get("failed", 0),
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
        if not create:
            return Prepared(
                Experiment(
                    id=uuid.UUID(int=0),
                    name=spec.name,
                    spec=spec.resolved(),
                    spec_hash=digest,
                    dataset_id=imported.dataset.id,
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
                imported.dataset,
                prompts,
                True,
                len(spec.cells())
                * len(
                    sample_positions(imported.dataset.item_count, spec.sample.n, spec.sample.seed)
                )
                * spec.repeats,
                0,
                0,
            )
        experiment = Experiment(
            id=uuid7(),
            name=spec.name,
            spec=spec.resolved(),
            spec_hash=digest,
            spec_path=spec.path,
            dataset_id=imported.dataset.id,
            prompt_hashes=prompt_hashes,
            status="created",
            meta_data={
                "dataset": {
                    "name": imported.dataset.name,
                    "version": imported.dataset.version,
                    "content_hash": imported.dataset.content_hash,
                }
            },
        )
        session.add(experiment)
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
        positions = sample_positions(imported.dataset.item_count, spec.sample.n, spec.sample.seed)
        item_ids: list[uuid.UUID] = []
        for start in range(0, len(positions), 1000):
            chunk = positions[start : start + 1000]
            rows = (
                await session.execute(
                    select(DatasetItem.id, DatasetItem.position).where(
                        DatasetItem.dataset_id == imported.dataset.id,
                        DatasetItem.position.in_(chunk),
                    )
                )
            ).all()
            by_pos = {pos: item_id for item_id, pos in rows}
            item_ids.extend(by_pos[p] for p in chunk)
        total = 0
        batch: list[dict[str, Any]] = []
        for cell in cells:
            for item_id in item_ids:
                for repeat in range(spec.repeats):
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
    return Prepared(experiment, cells, imported.dataset, prompts, True, total, 0, 0)


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
    started_at: float = field(default_factory=time.monotonic)
    stats: CallStats = field(default_factory=CallStats)

    @property
    def done(self) -> int:
        return self.succeeded + self.failed


@dataclass
class _Work:
    run_id: uuid.UUID
    cell_id: uuid.UUID
    repeat: int
    item_key: str
    language: str
    code: str
    instruction: str | None
    reference: str | None


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
    ) -> None:
        self.store = store
        self.spec = spec
        self.prepared = prepared
        self.settings = settings
        self.concurrency = concurrency or spec.run.concurrency
        self.use_cache = spec.run.cache if use_cache is None else use_cache
        self.export = export_to_opik
        self.on_progress = on_progress
        # Runs do not wait for their trace's commit: a run whose trace never lands stays
        # 'running' and is simply run again on resume, and the slot is free for the next run.
        self.sink = sink or StoreSink(store, wait_for_commit=False)
        self.tracer = Tracer(self.sink)
        self.progress = Progress(total=prepared.runs_total, done_before=prepared.runs_done)
        self._models: dict[str, ManagedModel] = {}
        self._summarizers: dict[tuple[uuid.UUID, int], Summarizer] = {}
        self._cells = {c.id: c for c in prepared.cells}
        self._cache = ResponseCache(store)

    def managed(self, name: str) -> ManagedModel:
        if name not in self._models:
            from codi_eval.models.registry import get_model

            inner = get_model(name)
            run = self.spec.run
            limits = run.models.get(name)
            remote = inner.provider != "offline"
            rpm = (
                (
                    limits.requests_per_minute
                    if limits and limits.requests_per_minute
                    else run.requests_per_minute
                )
                if remote
                else None
            )
            semaphore = (
                asyncio.Semaphore(limits.concurrency) if limits and limits.concurrency else None
            )
            # The offline baseline is deterministic and free: caching it would only add writes.
            cache = self._cache if self.use_cache and remote else None
            managed = ManagedModel(
                inner,
                cache=cache,
                limiter=RateLimiter(rpm),
                semaphore=semaphore,
                policy=RetryPolicy(
                    max_retries=run.max_retries, backoff_s=run.backoff_s, timeout_s=run.timeout_s
                ),
                totals=self.progress.stats,
            )
            # The spec's name, ?base_url and all: the cache key's identity is read from it
            # (an OpenAI-compatible model's own name drops the endpoint).
            managed.name = name
            self._models[name] = managed
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

    async def _pending(self) -> AsyncIterator[list[_Work]]:
        """Unfinished runs page by page; each page is marked running before it is handed out."""
        last: uuid.UUID | None = None
        experiment_id = self.prepared.experiment.id
        while True:
            async with self.store.transaction() as session:
                stmt = (
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
                    .where(
                        Run.experiment_id == experiment_id, Run.status.in_(("pending", "running"))
                    )
                    .order_by(Run.id)
                    .limit(PAGE)
                )
                if last is not None:
                    stmt = stmt.where(Run.id > last)
                rows = (await session.execute(stmt)).all()
                if not rows:
                    return
                ids = [r[0] for r in rows]
                await session.execute(
                    update(Run).where(Run.id.in_(ids)).values(status="running", started_at=utcnow())
                )
            last = ids[-1]
            yield [_Work(*r) for r in rows]

    async def run(self) -> Progress:
        experiment = self.prepared.experiment
        async with self.store.transaction() as session:
            await session.execute(
                update(Experiment).where(Experiment.id == experiment.id).values(status="running")
            )
        queue: asyncio.Queue[_Work | None] = asyncio.Queue(maxsize=self.concurrency * 2)

        async def produce() -> None:
            async for page in self._pending():
                for work in page:
                    await queue.put(work)
            for _ in range(self.concurrency):
                await queue.put(None)

        async def consume() -> None:
            while (work := await queue.get()) is not None:
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
        try:
            await asyncio.gather(produce(), *(consume() for _ in range(self.concurrency)))
            await self.sink.close()
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
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
        return self.progress

    async def _execute(self, work: _Work) -> None:
        cell = self._cells[work.cell_id]
        stats = CallStats()
        token = run_stats.set(stats)
        deadline = time.monotonic() + self.spec.run.run_deadline_s
        ok = False

        def record_run(trace: Any) -> None:
            # The run row changes in the same transaction as its trace: never half-written.
            trace.record_run(lambda tree: run_outcome(tree, stats, deadline))

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
            ok = True
        except Exception:  # recorded on the trace and its run row; never stops the experiment
            ok = False
        finally:
            run_stats.reset(token)
        if ok:
            self.progress.succeeded += 1
        else:
            self.progress.failed += 1
        self._notify()

    def _notify(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)


def run_outcome(tree: TraceTree, stats: CallStats, deadline: float) -> dict[str, Any]:
    """The run row's final values, read off its finished trace."""
    trace = tree.trace
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
        error = trace.error or {}
        kind = error.get("kind") or error.get("type") or "error"
        message = error.get("message") or ""
        if error.get("type") in ("CancelledError", "TimeoutError") and time.monotonic() >= deadline:
            kind, message = "deadline", "the run did not finish within run.run_deadline_s"
        values.update(status="failed", error_class=str(kind)[:100], error_message=message[:4000])
    return values
