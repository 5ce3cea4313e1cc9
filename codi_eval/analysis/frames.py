"""Experiment results as pandas DataFrames: one row per run, per cell, or per span.

Each frame is read with ONE query (the store does the joins; pandas pivots), so an
experiment of 100,000 runs loads in seconds on either store. ``experiment`` may be an
:class:`~codi_eval.store.models.Experiment`, its id (or a unique id prefix), or its name
(the newest experiment with that name); a name or id costs one extra lookup query.

Notebooks use the synchronous ``load_*`` wrappers, which open the configured store
(``CODI_EVAL_DATABASE_URL`` unless ``url`` is given) and work inside Jupyter's running
event loop::

    runs = load_runs("quickstart")
    cells = load_cells("quickstart")

Re-judgements written by ``codi-eval judge-check`` (evaluations whose ``meta_data`` has
``judge_check: true``) are not part of the experiment's scores and never enter these frames.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import String, and_, cast, select
from sqlalchemy.sql.elements import ColumnElement

from codi_eval.analysis.cells import CellInfo, RunValues, aggregate_cells
from codi_eval.analysis.stats import PairedComparison, compare_many, paired_comparison
from codi_eval.errors import InputError
from codi_eval.store.engine import Store
from codi_eval.store.experiments import find_experiment, own_evaluation
from codi_eval.store.models import (
    DatasetItem,
    Evaluation,
    Experiment,
    ExperimentCell,
    Run,
    Span,
)

__all__ = [
    "CELL_FACTORS",
    "JUDGE_METRIC",
    "cells_frame",
    "compare_all",
    "compare_cells",
    "compare_runs",
    "factor_differences",
    "load_cells",
    "load_runs",
    "load_spans",
    "metric_columns",
    "resolve_experiment",
    "run_sync",
    "runs_frame",
    "spans_frame",
    "summarize_cells",
]

T = TypeVar("T")

#: The metric the experiment's judge writes (``runs.judge_score`` holds the same value).
JUDGE_METRIC = "summary_quality"
#: The factors of the experiment matrix, in the order a cell key spells them.
CELL_FACTORS = ("prompt", "density_iterations", "model")

ExperimentRef = Experiment | uuid.UUID | str

#: runs_frame's columns before and after the metric columns.
_RUN_COLUMNS = [
    "run_id", "experiment_id", "cell", "prompt", "density_iterations", "model", "repeat",
    "item_key", "status", "judge_score",
]  # fmt: skip
_TAIL_COLUMNS = [
    "prompt_tokens", "completion_tokens", "total_tokens", "cost", "latency_ms",
    "model_calls", "cache_hits", "error_class", "error_message", "trace_id", "summary",
    "judge_reason",
]  # fmt: skip
_INT_COLUMNS = ["prompt_tokens", "completion_tokens", "total_tokens", "model_calls", "cache_hits"]


# --------------------------------------------------------------------------- experiments


async def resolve_experiment(store: Store, experiment: ExperimentRef) -> Experiment:
    """The :class:`Experiment` for an Experiment, a UUID, an id (prefix) or a name.

    Raises :class:`~codi_eval.errors.NotFound` (an ``InputError``) when none matches.
    """
    if isinstance(experiment, Experiment):
        return experiment
    return await find_experiment(store, str(experiment))


def _spec_metrics(experiment: Experiment) -> list[str]:
    metrics = (experiment.spec or {}).get("metrics") or []
    return [str(m) for m in metrics]


def _text(column: Any) -> ColumnElement[str]:
    # Ids as text: building 100,000s of uuid.UUID objects costs more than the query itself.
    return cast(column, String)


async def _fetch_columns(store: Store, stmt: Any) -> list[tuple[Any, ...]]:
    """All rows of ``stmt`` transposed into one tuple per column (Core, no ORM loading)."""
    async with store.engine.connect() as conn:
        result = await conn.execute(stmt)
        width = len(result.keys())
        rows = result.all()
    if not rows:
        return [() for _ in range(width)]
    return list(zip(*rows, strict=True))


def _frame(columns: Sequence[Any], names: list[str]) -> pd.DataFrame:
    data = {name: pd.Series(list(col)) for name, col in zip(names, columns, strict=True)}
    return pd.DataFrame(data, columns=names)


def _uuid_strings(values: pd.Series, dialect: str) -> pd.Series:
    """Canonical hyphenated UUID text (SQLite stores 32 hex digits, PostgreSQL prints hyphens)."""
    if dialect != "sqlite":
        return pd.Series([None if v is None or v != v else str(v) for v in values],
                         index=values.index, dtype=object)  # fmt: skip
    out = [
        f"{v[:8]}-{v[8:12]}-{v[12:16]}-{v[16:20]}-{v[20:]}"
        if isinstance(v, str) and len(v) == 32
        else (None if v is None or v != v else str(v))
        for v in values.tolist()
    ]
    return pd.Series(out, index=values.index, dtype=object)


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The metric columns of a :func:`runs_frame` (between ``judge_score`` and the token columns)."""
    cols = list(runs.columns)
    try:
        start = cols.index("judge_score") + 1
        end = cols.index("prompt_tokens")
    except ValueError:
        return []
    return cols[start:end]


# --------------------------------------------------------------------------- runs


async def runs_frame(store: Store, experiment: ExperimentRef) -> pd.DataFrame:
    """One row per run of the experiment, in cell order, then item key, then repeat.

    Columns: ``run_id, experiment_id, cell, prompt, density_iterations, model, repeat,
    item_key, status, judge_score``, then one float column per metric the runs were scored
    on (the spec's metrics first, in spec order, then any others alphabetically; NaN where a
    run has no ok score for it), then ``prompt_tokens, completion_tokens, total_tokens, cost,
    latency_ms, model_calls, cache_hits, error_class, error_message, trace_id, summary,
    judge_reason`` (``summary`` is the final summary the model wrote; ``judge_reason`` the
    judge's explanation of its ``summary_quality`` score). ``judge_score`` is the same number
    as the ``summary_quality`` column (the runs table keeps it as its own column). Ids are
    strings; token and call counts are nullable integers (``Int64``). Failed and unfinished
    runs are included (filter on ``status``). Reads the store with one query.
    """
    exp = await resolve_experiment(store, experiment)
    stmt = (
        select(
            _text(Run.id), ExperimentCell.key, ExperimentCell.prompt,
            ExperimentCell.density_iterations, ExperimentCell.model, Run.repeat,
            DatasetItem.item_key, Run.status, Run.judge_score, Run.prompt_tokens,
            Run.completion_tokens, Run.total_tokens, Run.cost, Run.latency_ms, Run.model_calls,
            Run.cache_hits, Run.error_class, Run.error_message, _text(Run.trace_id),
            Run.summary, ExperimentCell.position, Evaluation.reason, Evaluation.metric_name,
            Evaluation.score,
        )
        .join(ExperimentCell, ExperimentCell.id == Run.cell_id)
        .join(DatasetItem, DatasetItem.id == Run.dataset_item_id)
        .outerjoin(
            Evaluation,
            and_(Evaluation.trace_id == Run.trace_id, own_evaluation()),
        )
        .where(Run.experiment_id == exp.id)
    )  # fmt: skip
    return _runs_from_columns(await _fetch_columns(store, stmt), exp, store.dialect)


def _runs_from_columns(
    columns: list[tuple[Any, ...]], exp: Experiment, dialect: str
) -> pd.DataFrame:
    names = [
        "run_id", "cell", "prompt", "density_iterations", "model", "repeat", "item_key",
        "status", "judge_score", "prompt_tokens", "completion_tokens", "total_tokens", "cost",
        "latency_ms", "model_calls", "cache_hits", "error_class", "error_message", "trace_id",
        "summary", "_position", "_reason", "_metric", "_score",
    ]  # fmt: skip
    # A run comes back once per metric: its own columns are built from its first row only.
    run_ids = pd.Series(columns[0], dtype=object)
    first = (~run_ids.duplicated()).to_numpy()
    run_cols = names[:-3]
    base = _frame([np.asarray(col, dtype=object)[first] for col in columns[:-3]], run_cols)
    reasons = {
        run_id: reason
        for run_id, reason, metric in zip(columns[0], columns[-3], columns[-2], strict=True)
        if metric == JUDGE_METRIC and reason is not None
    }
    base["judge_reason"] = pd.Series(
        [reasons.get(r) for r in base["run_id"].tolist()], index=base.index, dtype=object
    )
    scores = pd.DataFrame({
        "run_id": run_ids,
        "_metric": pd.Series(columns[-2], dtype=object),
        "_score": pd.to_numeric(pd.Series(columns[-1], dtype=object), errors="coerce"),
    })  # fmt: skip
    scores = scores[scores["_metric"].notna()]
    if len(scores):
        wide = scores.groupby(["run_id", "_metric"], sort=False)["_score"].mean().unstack("_metric")
    else:
        wide = pd.DataFrame(index=pd.Index([], name="run_id"))
    spec = _spec_metrics(exp)
    found = [str(c) for c in wide.columns]
    metrics = [m for m in spec if m in found] + sorted(m for m in found if m not in spec)
    frame = base.join(wide.reindex(columns=metrics), on="run_id") if metrics else base
    frame = frame.sort_values(["_position", "item_key", "repeat"], kind="stable")
    frame = frame.reset_index(drop=True)
    for col in ("run_id", "trace_id"):
        frame[col] = _uuid_strings(frame[col], dialect)
    frame.insert(1, "experiment_id", str(exp.id))
    for col in ["judge_score", "cost", "latency_ms", *metrics]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for col in _INT_COLUMNS:
        frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
    frame["density_iterations"] = frame["density_iterations"].astype("int64")
    frame["repeat"] = frame["repeat"].astype("int64")
    ordered = [*_RUN_COLUMNS, *metrics, *_TAIL_COLUMNS]
    frame = frame[ordered]
    frame.attrs["experiment_id"] = str(exp.id)
    frame.attrs["experiment_name"] = exp.name
    frame.attrs["metrics"] = metrics
    return frame


# --------------------------------------------------------------------------- cells


def summarize_cells(runs: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per-cell summary of a :func:`runs_frame` (or any filter of one), one row per cell in
    the frame's cell order: :func:`codi_eval.analysis.cells.aggregate_cells` as a frame.

    Columns: ``cell, prompt, density_iterations, model, n`` (runs), ``succeeded, failed,
    pending`` (pending counts running too), ``judge_n, judge_mean, judge_ci_low,
    judge_ci_high`` (Student-t interval at ``1 - alpha`` over succeeded runs' judge scores),
    one ``<metric>`` mean per metric column (succeeded runs), ``failure_rate``,
    ``prompt_tokens, completion_tokens, total_tokens`` (sums), ``cost`` (sum; NaN when a
    finished run's cost is unknown), ``latency_p50_ms, latency_p95_ms`` (succeeded runs).
    """
    metrics = metric_columns(runs)
    firsts = runs.drop_duplicates("cell")
    cells = [
        CellInfo(str(r["cell"]), str(r["prompt"]), int(r["density_iterations"]), str(r["model"]))
        for r in firsts.to_dict("records")
    ]

    def number(value: Any) -> Any:
        return None if value is None or value is pd.NA or pd.isna(value) else value

    values = [
        RunValues(
            cell=str(row["cell"]),
            status=str(row["status"]),
            judge_score=number(row["judge_score"]),
            latency_ms=number(row["latency_ms"]),
            prompt_tokens=number(row["prompt_tokens"]),
            completion_tokens=number(row["completion_tokens"]),
            total_tokens=number(row["total_tokens"]),
            cost=number(row["cost"]),
            error_class=number(row["error_class"]),
            metrics={m: float(row[m]) for m in metrics if number(row[m]) is not None},
        )
        for row in runs.to_dict("records")
    ]
    records = []
    for r in aggregate_cells(cells, values, alpha=alpha):
        records.append({
            "cell": r.key, "prompt": r.prompt, "density_iterations": r.density_iterations,
            "model": r.model, "n": r.runs, "succeeded": r.succeeded, "failed": r.failed,
            "pending": r.pending, "judge_n": r.judge_n, "judge_mean": r.judge_mean,
            "judge_ci_low": r.judge_ci_low, "judge_ci_high": r.judge_ci_high,
            **{m: r.metrics.get(m) for m in metrics}, "failure_rate": r.failure_rate,
            "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
            "total_tokens": r.total_tokens, "cost": r.cost,
            "latency_p50_ms": r.latency_p50_ms, "latency_p95_ms": r.latency_p95_ms,
        })  # fmt: skip
    columns = [
        "cell", "prompt", "density_iterations", "model", "n", "succeeded", "failed", "pending",
        "judge_n", "judge_mean", "judge_ci_low", "judge_ci_high", *metrics, "failure_rate",
        "prompt_tokens", "completion_tokens", "total_tokens", "cost", "latency_p50_ms",
        "latency_p95_ms",
    ]  # fmt: skip
    frame = pd.DataFrame.from_records(records, columns=columns)
    floats = ["judge_mean", "judge_ci_low", "judge_ci_high", *metrics, "failure_rate", "cost",
              "latency_p50_ms", "latency_p95_ms"]  # fmt: skip
    for col in floats:
        frame[col] = pd.to_numeric(frame[col]).astype("float64")
    frame.attrs.update(runs.attrs)
    return frame


async def cells_frame(store: Store, experiment: ExperimentRef, alpha: float = 0.05) -> pd.DataFrame:
    """One row per cell of the experiment: :func:`summarize_cells` of :func:`runs_frame`.

    Reads the store with one query.
    """
    return summarize_cells(await runs_frame(store, experiment), alpha=alpha)


# --------------------------------------------------------------------------- spans


async def spans_frame(store: Store, experiment: ExperimentRef) -> pd.DataFrame:
    """One row per span of the experiment's run traces, ordered by cell, item, repeat, start.

    Columns: ``trace_id, run_id, cell, item_key, repeat, span_id, parent_span_id, name, type,
    model, provider, prompt_tokens, completion_tokens, total_tokens, cost, duration_ms,
    status, start_time, output, added_entities``. ``model``/``provider`` are the span's own
    (None for spans that call no model). ``output`` is what the span produced for a reader:
    a Chain-of-Density iteration's denser summary, the final summary, the judge's reason
    (None for other spans); ``added_entities`` lists the code entities an iteration added
    (None for other spans). Reads the store with one query.
    """
    exp = await resolve_experiment(store, experiment)
    stmt = (
        select(
            _text(Span.trace_id), _text(Run.id), ExperimentCell.key, DatasetItem.item_key,
            Run.repeat, _text(Span.id), _text(Span.parent_span_id), Span.name, Span.type, Span.model, Span.provider,
            Span.prompt_tokens, Span.completion_tokens, Span.total_tokens, Span.cost,
            Span.duration_ms, Span.status, Span.start_time, ExperimentCell.position,
            Span.output_data, Span.meta_data,
        )
        .join(ExperimentCell, ExperimentCell.id == Run.cell_id)
        .join(DatasetItem, DatasetItem.id == Run.dataset_item_id)
        .join(Span, Span.trace_id == Run.trace_id)
        .where(Run.experiment_id == exp.id)
    )  # fmt: skip
    columns = await _fetch_columns(store, stmt)
    names = [
        "trace_id", "run_id", "cell", "item_key", "repeat", "span_id", "parent_span_id", "name",
        "type", "model", "provider", "prompt_tokens", "completion_tokens", "total_tokens",
        "cost", "duration_ms", "status", "start_time", "_position", "_output", "_meta",
    ]  # fmt: skip
    frame = _frame(columns, names)
    frame["output"] = pd.Series(
        [_span_output(t, n, o) for t, n, o in zip(frame["type"], frame["name"], frame["_output"],
                                                  strict=True)],
        index=frame.index, dtype=object,
    )  # fmt: skip
    frame["added_entities"] = pd.Series(
        [list(m.get("added_entities") or []) if isinstance(m, dict) and n.startswith("iteration ")
         else None for n, m in zip(frame["name"], frame["_meta"], strict=True)],
        index=frame.index, dtype=object,
    )  # fmt: skip
    frame = frame.drop(columns=["_output", "_meta"])
    frame = frame.sort_values(["_position", "item_key", "repeat", "start_time"], kind="stable")
    frame = frame.drop(columns="_position").reset_index(drop=True)
    for col in ("trace_id", "run_id", "span_id", "parent_span_id"):
        frame[col] = _uuid_strings(frame[col], store.dialect)
    for col in ("prompt_tokens", "completion_tokens", "total_tokens"):
        frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
    for col in ("cost", "duration_ms"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame["repeat"] = frame["repeat"].astype("int64")
    frame.attrs["experiment_id"] = str(exp.id)
    frame.attrs["experiment_name"] = exp.name
    return frame


def _span_output(span_type: str, name: str, output: Any) -> str | None:
    if not isinstance(output, dict):
        return None
    if span_type == "judge":
        reason = output.get("reason")
        return reason if isinstance(reason, str) else None
    text = output.get("text")
    if span_type != "llm" or not isinstance(text, str):
        return None
    if name.startswith("iteration "):
        from codi_eval.summarize import parse_iteration_answer

        return parse_iteration_answer(text)[0]
    return text


# --------------------------------------------------------------------------- A/B


def _check_cells(runs: pd.DataFrame, *cells: str) -> list[str]:
    """The cell keys ``cells`` name: keys, or their labels in the results table (``v2/d3``).
    An unknown one raises :class:`InputError` listing the cells, with a did-you-mean."""
    from codi_eval.analysis.labels import cell_labels, suggest

    firsts = runs.drop_duplicates("cell")
    infos = [
        CellInfo(str(r["cell"]), str(r["prompt"]), int(r["density_iterations"]), str(r["model"]))
        for r in firsts.to_dict("records")
    ]
    known = [c.key for c in infos]
    by_label = {label: key for key, label in cell_labels(infos).labels.items()}
    keys = []
    for cell in cells:
        if cell in known:
            keys.append(cell)
        elif cell in by_label:
            keys.append(by_label[cell])
        else:
            name = runs.attrs.get("experiment_name", "the experiment")
            raise InputError(
                f"no cell {cell!r} in experiment {name}; its cells are: "
                f"{', '.join(known) or 'none'}{suggest(cell, [*known, *by_label])}",
                field="cell",
            )
    return keys


def _check_metric(runs: pd.DataFrame, metric: str) -> None:
    available = [*metric_columns(runs), "judge_score", "latency_ms", "total_tokens", "cost"]
    if metric not in available:
        raise InputError(
            f"no metric {metric!r} in this experiment; have: {', '.join(available)}",
            field="metric",
        )


def compare_runs(
    runs: pd.DataFrame, a: str, b: str, metric: str = JUDGE_METRIC, **options: Any
) -> PairedComparison:
    """Cell ``b`` against cell ``a`` of a :func:`runs_frame` on ``metric`` (``b - a``);
    a cell is named by its key or its label in the results table (``v2/d3``).

    Succeeded runs only; runs are paired by ``item_key`` and repeats of an item are averaged
    inside :func:`~codi_eval.analysis.stats.paired_comparison` (``options`` go to it, e.g.
    ``seed``, ``alpha``). Raises :class:`InputError` naming the experiment's cell keys (or
    metrics) when ``a``, ``b`` or ``metric`` is unknown.
    """
    a, b = _check_cells(runs, a, b)
    _check_metric(runs, metric)
    ok = runs[runs["status"] == "succeeded"]
    cols = ["item_key", "repeat", metric]
    side_a = ok.loc[ok["cell"] == a, cols]
    side_b = ok.loc[ok["cell"] == b, cols]
    return paired_comparison(
        side_a, side_b, item_col="item_key", value_col=metric, metric=metric,
        label_a=a, label_b=b, **options,
    )  # fmt: skip


async def compare_cells(
    store: Store,
    experiment: ExperimentRef,
    a: str,
    b: str,
    metric: str = JUDGE_METRIC,
    **options: Any,
) -> PairedComparison:
    """Paired comparison of two cells (by key) of a stored experiment; see :func:`compare_runs`."""
    return compare_runs(await runs_frame(store, experiment), a, b, metric, **options)


def _compare_all_runs(
    runs: pd.DataFrame, a: str, b: str, metrics: Sequence[str] | None, **options: Any
) -> dict[str, PairedComparison]:
    a, b = _check_cells(runs, a, b)
    chosen = list(metrics) if metrics is not None else metric_columns(runs)
    for metric in chosen:
        _check_metric(runs, metric)
    ok = runs[runs["status"] == "succeeded"]
    pairs: dict[str, tuple[Any, ...]] = {}
    for metric in chosen:
        cols = ["item_key", "repeat", metric]
        pairs[metric] = (
            ok.loc[ok["cell"] == a, cols],
            ok.loc[ok["cell"] == b, cols],
            {"value_col": metric},
        )
    return compare_many(pairs, item_col="item_key", label_a=a, label_b=b, **options)


async def compare_all(
    store: Store,
    experiment: ExperimentRef,
    a: str,
    b: str,
    metrics: Sequence[str] | None = None,
    **options: Any,
) -> dict[str, PairedComparison]:
    """Cell ``b`` against cell ``a`` on several metrics (default: every metric column).

    Returns ``{metric: PairedComparison}`` with Holm-adjusted p-values over the family
    (``p_adjusted``; ``significant`` uses it). Reads the store with one query.
    """
    return _compare_all_runs(await runs_frame(store, experiment), a, b, metrics, **options)


# --------------------------------------------------------------------------- notebooks


def run_sync(coro_factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, in or out of an event loop.

    Jupyter kernels already run a loop in the main thread, where ``asyncio.run`` refuses to
    start; then the coroutine runs on a fresh loop in a worker thread.
    """

    async def main() -> T:
        return await coro_factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _with_store(url: str | None, fn: Callable[[Store], Awaitable[T]]) -> T:
    async def go() -> T:
        from codi_eval.settings import get_settings

        store = await Store.open(url or get_settings().database_url)
        try:
            return await fn(store)
        finally:
            await store.close()

    return run_sync(go)


def load_runs(experiment: ExperimentRef, url: str | None = None) -> pd.DataFrame:
    """:func:`runs_frame` from synchronous code (notebooks); ``url`` defaults to the settings'."""
    return _with_store(url, lambda store: runs_frame(store, experiment))


def load_cells(experiment: ExperimentRef, url: str | None = None) -> pd.DataFrame:
    """:func:`cells_frame` from synchronous code (notebooks)."""
    return _with_store(url, lambda store: cells_frame(store, experiment))


def load_spans(experiment: ExperimentRef, url: str | None = None) -> pd.DataFrame:
    """:func:`spans_frame` from synchronous code (notebooks)."""
    return _with_store(url, lambda store: spans_frame(store, experiment))


def factor_differences(cells: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """Pairs of cells that differ in exactly one factor, as ``(a, b, factor)``.

    ``cells`` maps a cell key to its factor values (``prompt``, ``density_iterations``,
    ``model``). Pairs keep the given cell order (``a`` before ``b``).
    """
    keys = list(cells)
    pairs = []
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            differing = [f for f in CELL_FACTORS if cells[a].get(f) != cells[b].get(f)]
            if len(differing) == 1:
                pairs.append((a, b, differing[0]))
    return pairs
