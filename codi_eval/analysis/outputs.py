"""What a run produced, read back from the store: the one place that answers "what did the
model write, and why did the judge score it so".

:func:`run_outputs` gives, per run, the item's code, every Chain-of-Density iteration with
the entities it added, the final summary, the judge's score (``summary_quality``) and
reason, every metric with its reason, tokens, cost, latency and the span timeline. It is
used by ``codi-eval show``, the local viewer, the API's experiment-runs routes and the
report's sample outputs. :func:`run_briefs` is the light version (no spans, no code) for
lists; :func:`cell_extremes` picks a cell's best and worst items.

A run's trace is laid out as :mod:`codi_eval.summarize` writes it: ``chain_of_density`` with
one llm span ``iteration N`` per iteration (``meta_data``: ``added_entities``,
``missing_entities``, ``word_count``, ``entity_density``), then ``final``; the judge span
``judge: summary_quality`` and the evaluations. Re-judgements by ``judge-check`` are not the
run's own and are left out.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from codi_eval.analysis.labels import resolve_cell, resolve_item
from codi_eval.errors import NotFound
from codi_eval.store.engine import Store, safe_url
from codi_eval.store.experiments import find_experiment
from codi_eval.store.models import DatasetItem, Evaluation, Experiment, ExperimentCell, Run, Span

__all__ = [
    "JUDGE_METRIC",
    "IterationOutput",
    "MetricOutput",
    "RunBrief",
    "RunOutput",
    "SpanTiming",
    "cell_extremes",
    "experiment_cells",
    "run_briefs",
    "run_output",
    "span_timeline",
    "run_outputs",
]

#: The judge's score: the evaluation's metric_name (the seed's name) and the name a user reads.
JUDGE_METRIC = "summary_quality"
_CHUNK = 500  # ids per IN (...) list


@dataclass
class IterationOutput:
    """One Chain-of-Density iteration: the denser summary and the code entities it added."""

    number: int
    summary: str
    added_entities: list[str]
    missing_entities: list[str]
    word_count: int | None
    entity_density: float | None
    prompt: str | None
    total_tokens: int | None
    cost: float | None
    duration_ms: float | None


@dataclass
class MetricOutput:
    name: str
    score: float | None
    reason: str | None


@dataclass
class SpanTiming:
    """One span on the trace's timeline (``start_ms`` from the first span's start)."""

    name: str
    type: str
    depth: int
    start_ms: float
    duration_ms: float | None
    model: str | None
    total_tokens: int | None
    cost: float | None
    status: str


@dataclass
class RunBrief:
    """A run in a list: which cell and item, its outcome and the judge's verdict."""

    run_id: str
    cell: str
    item_key: str
    repeat: int
    status: str
    summary: str | None
    summary_quality: float | None
    judge_reason: str | None
    total_tokens: int | None
    cost: float | None
    latency_ms: float | None
    error_class: str | None
    error_message: str | None
    trace_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunOutput(RunBrief):
    """Everything one run produced (see the module docstring)."""

    experiment_id: str = ""
    experiment: str = ""
    prompt: str = ""
    density_iterations: int = 0
    model: str = ""
    language: str = ""
    code: str = ""
    instruction: str | None = None
    reference: str | None = None
    judge_status: str | None = None  # ok | failed | None (no judge)
    iterations: list[IterationOutput] = field(default_factory=list)
    metrics: list[MetricOutput] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model_calls: int = 0
    cache_hits: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    spans: list[SpanTiming] = field(default_factory=list)


# ------------------------------------------------------------------------- experiments


async def experiment_cells(store: Store, exp: Experiment) -> list[ExperimentCell]:
    async with store.session() as session:
        return list(
            (
                await session.scalars(
                    select(ExperimentCell)
                    .where(ExperimentCell.experiment_id == exp.id)
                    .order_by(ExperimentCell.position)
                )
            ).all()
        )


async def _item_keys(store: Store, exp: Experiment) -> list[str]:
    async with store.session() as session:
        rows = await session.scalars(
            select(DatasetItem.item_key)
            .join(Run, Run.dataset_item_id == DatasetItem.id)
            .where(Run.experiment_id == exp.id)
            .group_by(DatasetItem.item_key)
            .order_by(DatasetItem.item_key)
        )
        return list(rows)


async def _resolve(
    store: Store,
    experiment: Experiment | str,
    cell: str | None,
    item: str | None,
    name_store: bool = True,
) -> tuple[Experiment, list[ExperimentCell], str | None, str | None]:
    exp = (
        experiment
        if isinstance(experiment, Experiment)
        else await find_experiment(store, experiment)
    )
    cells = await experiment_cells(store, exp)
    where = safe_url(store.url) if name_store else None
    cell_key = resolve_cell(cell, cells, experiment=exp.name, store=where) if cell else None
    item_key = None
    if item is not None:
        item_key = resolve_item(
            item, await _item_keys(store, exp), experiment=exp.name, store=where
        )
    return exp, cells, cell_key, item_key


# ------------------------------------------------------------------------------- briefs


def _brief_columns() -> tuple[Any, ...]:
    return (
        Run.id, ExperimentCell.key, DatasetItem.item_key, Run.repeat, Run.status, Run.summary,
        Run.judge_score, Run.total_tokens, Run.cost, Run.latency_ms, Run.error_class,
        Run.error_message, Run.trace_id,
    )  # fmt: skip


async def _judge_reasons(store: Store, trace_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    reasons: dict[uuid.UUID, str] = {}
    async with store.engine.connect() as conn:
        for i in range(0, len(trace_ids), _CHUNK):
            rows = await conn.execute(
                select(Evaluation.trace_id, Evaluation.reason, Evaluation.meta_data)
                .where(
                    Evaluation.trace_id.in_(trace_ids[i : i + _CHUNK]),
                    Evaluation.metric_name == JUDGE_METRIC,
                )
                .order_by(Evaluation.created_at)
            )
            for trace_id, reason, meta in rows:
                if not _is_recheck(meta) and trace_id not in reasons and reason is not None:
                    reasons[trace_id] = reason
    return reasons


def _is_recheck(meta: Any) -> bool:
    return isinstance(meta, dict) and bool(meta.get("judge_check"))


def _brief(row: Any, reasons: dict[uuid.UUID, str]) -> dict[str, Any]:
    return {
        "run_id": str(row[0]), "cell": row[1], "item_key": row[2], "repeat": row[3],
        "status": row[4], "summary": row[5], "summary_quality": row[6],
        "judge_reason": reasons.get(row[12]) if row[12] is not None else None,
        "total_tokens": row[7], "cost": row[8], "latency_ms": row[9], "error_class": row[10],
        "error_message": row[11], "trace_id": str(row[12]) if row[12] is not None else None,
    }  # fmt: skip


async def run_briefs(
    store: Store,
    experiment: Experiment | str,
    cell: str | None = None,
    item: str | None = None,
    *,
    status: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    name_store: bool = True,
) -> tuple[int, list[RunBrief]]:
    """``(total, page)`` of the experiment's runs (optionally of one cell, one item, one
    status), in cell order, then item key, then repeat. ``cell`` may be a key or a table
    label, ``item`` a key or its unique ending; unknown ones raise :class:`NotFound` with
    a did-you-mean (naming the store unless ``name_store`` is false, as for API clients)."""
    exp, _cells, cell_key, item_key = await _resolve(store, experiment, cell, item, name_store)
    conditions = [Run.experiment_id == exp.id]
    if cell_key is not None:
        conditions.append(ExperimentCell.key == cell_key)
    if item_key is not None:
        conditions.append(DatasetItem.item_key == item_key)
    if status is not None:
        conditions.append(Run.status == status)
    base = (
        select(*_brief_columns())
        .join(ExperimentCell, ExperimentCell.id == Run.cell_id)
        .join(DatasetItem, DatasetItem.id == Run.dataset_item_id)
        .where(*conditions)
    )
    async with store.engine.connect() as conn:
        total = int(await conn.scalar(select(func.count()).select_from(base.subquery())) or 0)
        stmt = base.order_by(ExperimentCell.position, DatasetItem.item_key, Run.repeat)
        if limit is not None:
            stmt = stmt.limit(limit).offset(offset)
        rows = (await conn.execute(stmt)).all()
    reasons = await _judge_reasons(store, [r[12] for r in rows if r[12] is not None])
    return total, [RunBrief(**_brief(r, reasons)) for r in rows]


async def cell_extremes(
    store: Store, experiment: Experiment | str, cell: str, n: int = 3
) -> tuple[list[RunBrief], list[RunBrief]]:
    """The cell's ``n`` best and ``n`` worst succeeded runs by ``summary_quality`` (ties
    broken by item key), best first and worst first. With fewer than ``2n`` scored runs the
    two lists do not overlap: the worst list takes what the best list left."""
    _total, runs = await run_briefs(store, experiment, cell, status="succeeded")
    scored = sorted(
        (r for r in runs if r.summary_quality is not None),
        key=lambda r: (-(r.summary_quality or 0.0), r.item_key, r.repeat),
    )
    best = scored[:n]
    rest = scored[len(best) :]
    worst = list(reversed(rest[-n:])) if rest else []
    return best, worst


# ------------------------------------------------------------------------------ outputs


def _iteration_summary(span: Any) -> str:
    from codi_eval.summarize import parse_iteration_answer

    text = (span.output_data or {}).get("text") if isinstance(span.output_data, dict) else None
    if not isinstance(text, str):
        return ""
    summary, _named = parse_iteration_answer(text)
    return summary


def _iteration_number(name: str) -> int | None:
    head, _, number = name.partition(" ")
    return int(number) if head == "iteration" and number.isdigit() else None


def span_timeline(spans: Sequence[Any]) -> list[SpanTiming]:
    if not spans:
        return []
    parents = {s.id: s.parent_span_id for s in spans}

    def depth(span_id: uuid.UUID) -> int:
        d, parent = 0, parents.get(span_id)
        while parent is not None and parent in parents and d < 32:
            d, parent = d + 1, parents.get(parent)
        return d

    start = min(s.start_time for s in spans)
    return [
        SpanTiming(
            name=s.name,
            type=s.type,
            depth=depth(s.id),
            start_ms=(s.start_time - start).total_seconds() * 1000.0,
            duration_ms=s.duration_ms,
            model=s.model,
            total_tokens=s.total_tokens,
            cost=s.cost,
            status=s.status,
        )
        for s in spans
    ]


def _meta(span: Any) -> dict[str, Any]:
    return span.meta_data if isinstance(span.meta_data, dict) else {}


def _iterations(spans: Sequence[Any]) -> list[IterationOutput]:
    out = []
    for s in spans:
        number = _iteration_number(s.name)
        if number is None or s.type != "llm":
            continue
        meta = _meta(s)
        out.append(
            IterationOutput(
                number=number,
                summary=_iteration_summary(s),
                added_entities=[str(e) for e in meta.get("added_entities") or []],
                missing_entities=[str(e) for e in meta.get("missing_entities") or []],
                word_count=meta.get("word_count"),
                entity_density=meta.get("entity_density"),
                prompt=meta.get("prompt"),
                total_tokens=s.total_tokens,
                cost=s.cost,
                duration_ms=s.duration_ms,
            )
        )
    return sorted(out, key=lambda it: it.number)


async def run_outputs(
    store: Store,
    experiment: Experiment | str,
    cell: str | None = None,
    item: str | None = None,
    *,
    repeat: int | None = None,
    run_ids: Sequence[str | uuid.UUID] | None = None,
) -> list[RunOutput]:
    """Every matching run's :class:`RunOutput`, in cell order, then item key, then repeat.

    ``cell`` is a key or a results-table label, ``item`` an item key or its unique ending;
    an unknown experiment, cell or item raises :class:`NotFound` naming the store and the
    closest match. ``run_ids`` restricts to those runs (the report's samples). Reads the
    store with four queries (runs, spans, evaluations, and the names to resolve).
    """
    exp, _cells, cell_key, item_key = await _resolve(store, experiment, cell, item)
    conditions = [Run.experiment_id == exp.id]
    if cell_key is not None:
        conditions.append(ExperimentCell.key == cell_key)
    if item_key is not None:
        conditions.append(DatasetItem.item_key == item_key)
    if repeat is not None:
        conditions.append(Run.repeat == repeat)
    if run_ids is not None:
        ids = [i if isinstance(i, uuid.UUID) else uuid.UUID(str(i)) for i in run_ids]
        if not ids:
            return []
        conditions.append(Run.id.in_(ids))
    stmt = (
        select(
            Run, ExperimentCell.key, ExperimentCell.prompt, ExperimentCell.density_iterations,
            ExperimentCell.model, DatasetItem.item_key, DatasetItem.language, DatasetItem.code,
            DatasetItem.instruction, DatasetItem.reference,
        )
        .join(ExperimentCell, ExperimentCell.id == Run.cell_id)
        .join(DatasetItem, DatasetItem.id == Run.dataset_item_id)
        .where(*conditions)
        .order_by(ExperimentCell.position, DatasetItem.item_key, Run.repeat)
    )  # fmt: skip
    async with store.session() as session:
        rows = (await session.execute(stmt)).all()
    if repeat is not None and not rows and cell_key is not None and item_key is not None:
        raise NotFound(
            f"cell {cell_key} of experiment {exp.name} has no repeat {repeat} of item {item_key}",
            field="repeat",
        )
    trace_ids = [r[0].trace_id for r in rows if r[0].trace_id is not None]
    spans: dict[uuid.UUID, list[Any]] = {}
    evaluations: dict[uuid.UUID, list[Any]] = {}
    async with store.engine.connect() as conn:
        for i in range(0, len(trace_ids), _CHUNK):
            chunk = trace_ids[i : i + _CHUNK]
            for s in await conn.execute(
                select(Span).where(Span.trace_id.in_(chunk)).order_by(Span.start_time, Span.id)
            ):
                spans.setdefault(s.trace_id, []).append(s)
            for e in await conn.execute(
                select(
                    Evaluation.trace_id, Evaluation.metric_name, Evaluation.score,
                    Evaluation.reason, Evaluation.status, Evaluation.meta_data,
                )
                .where(Evaluation.trace_id.in_(chunk))
                .order_by(Evaluation.created_at, Evaluation.id)
            ):  # fmt: skip
                if not _is_recheck(e.meta_data):
                    evaluations.setdefault(e.trace_id, []).append(e)
    out = []
    for run, key, prompt, density, model, item_key_, language, code, instruction, ref in rows:
        trace_spans = spans.get(run.trace_id, []) if run.trace_id else []
        evals = evaluations.get(run.trace_id, []) if run.trace_id else []
        judge = next((e for e in evals if e.metric_name == JUDGE_METRIC), None)
        out.append(
            RunOutput(
                run_id=str(run.id), cell=key, item_key=item_key_, repeat=run.repeat,
                status=run.status, summary=run.summary, summary_quality=run.judge_score,
                judge_reason=judge.reason if judge is not None else None,
                total_tokens=run.total_tokens, cost=run.cost, latency_ms=run.latency_ms,
                error_class=run.error_class, error_message=run.error_message,
                trace_id=str(run.trace_id) if run.trace_id else None,
                experiment_id=str(exp.id), experiment=exp.name, prompt=prompt,
                density_iterations=density, model=model, language=language, code=code,
                instruction=instruction, reference=ref,
                judge_status=judge.status if judge is not None else None,
                iterations=_iterations(trace_spans),
                metrics=[
                    MetricOutput(e.metric_name, e.score, e.reason)
                    for e in evals if e.metric_name != JUDGE_METRIC
                ],
                prompt_tokens=run.prompt_tokens, completion_tokens=run.completion_tokens,
                model_calls=run.model_calls, cache_hits=run.cache_hits,
                started_at=run.started_at, finished_at=run.finished_at,
                spans=span_timeline(trace_spans),
            )
        )  # fmt: skip
    return out


async def run_output(
    store: Store, experiment: Experiment | str | None, run_id: str | uuid.UUID
) -> RunOutput:
    """One run by id (of ``experiment``, or of whichever experiment it belongs to when that
    is None); :class:`NotFound` when there is no such run there."""
    try:
        parsed = run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))
    except ValueError:
        raise NotFound(f"{run_id!r} is not a run id", field="run_id") from None
    if experiment is None:
        async with store.session() as session:
            exp_id = await session.scalar(select(Run.experiment_id).where(Run.id == parsed))
            exp = await session.get(Experiment, exp_id) if exp_id is not None else None
        if exp is None:
            raise NotFound(f"no run {parsed} in the store {safe_url(store.url)}", field="run_id")
        experiment = exp
    runs = await run_outputs(store, experiment, run_ids=[parsed])
    if not runs:
        raise NotFound(f"no run {parsed} in this experiment", field="run_id")
    return runs[0]


def mark_entities(text: str, entities: Sequence[str]) -> list[tuple[str, bool]]:
    """``text`` cut into ``(segment, is_entity)`` pieces, marking where each entity is
    mentioned as a whole token (``s`` is not marked inside ``values``; longer entities win,
    so ``bytes.maketrans`` is one mark). For highlighting what an iteration added."""
    import re

    wanted = sorted({e for e in entities if e}, key=len, reverse=True)
    if not wanted or not text:
        return [(text, False)] if text else []
    pattern = re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(e) for e in wanted) + r")(?![\w])")
    pieces: list[tuple[str, bool]] = []
    at = 0
    for match in pattern.finditer(text):
        if match.start() > at:
            pieces.append((text[at : match.start()], False))
        pieces.append((match.group(0), True))
        at = match.end()
    if at < len(text):
        pieces.append((text[at:], False))
    return pieces
