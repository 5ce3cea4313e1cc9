"""Frames: one row per run / cell / span, read with one query on both stores."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import event, insert

from codi_eval.analysis import (
    cells_frame,
    compare_all,
    compare_cells,
    load_cells,
    load_runs,
    runs_frame,
    spans_frame,
)
from codi_eval.errors import InputError
from codi_eval.ids import uuid7
from codi_eval.store.engine import Store
from codi_eval.store.models import (
    Dataset,
    DatasetItem,
    Evaluation,
    Experiment,
    ExperimentCell,
    Run,
    Span,
    Trace,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)

CELLS = [
    ("cod_iteration@1", 1, "offline"),
    ("cod_iteration@1", 3, "offline"),
    ("cod_iteration@2", 1, "offline"),
    ("cod_iteration@2", 3, "offline"),
]


def cell_key(prompt: str, density: int, model: str) -> str:
    return f"{prompt}/d{density}/{model}"


def known_score(cell_index: int, item_index: int, repeat: int) -> float:
    """Judge score: cell level + a per-item offset + a tiny repeat wobble."""
    return round(0.2 + 0.1 * cell_index + 0.01 * item_index + 0.002 * repeat, 6)


def known_metric(name: str, cell_index: int, item_index: int, repeat: int) -> float:
    return {
        "entity_density": 0.05 * (cell_index + 1),
        "rouge_l": 0.01 * item_index + 0.001 * repeat,
    }[name]


@dataclass
class Seeded:
    experiment_id: uuid.UUID
    name: str
    cells: list[str]
    items: list[str]
    repeats: int
    failed: set[tuple[int, int, int]] = field(default_factory=set)
    run_ids: dict[tuple[int, int, int], uuid.UUID] = field(default_factory=dict)
    trace_ids: dict[tuple[int, int, int], uuid.UUID] = field(default_factory=dict)


async def seed_experiment(
    store: Store,
    *,
    name: str = "frames-test",
    n_items: int = 6,
    repeats: int = 2,
    cells: list[tuple[str, int, str]] | None = None,
    failed: set[tuple[int, int, int]] | None = None,
    metrics: tuple[str, ...] = ("entity_density", "rouge_l"),
    spans: bool = True,
    score: Callable[[int, int, int], float] = known_score,
    batch: int = 5000,
) -> Seeded:
    """An experiment inserted directly (Core executemany: every row of a table has the same keys): cells × items × repeats runs with known scores.

    Run (c, i, r) has judge_score ``score(c, i, r)``, metrics from :func:`known_metric`, a
    latency of ``10 * (c + 1) + i`` ms, 100 prompt + 20·(c+1) completion tokens and a cost
    of 0.001. Runs listed in ``failed`` fail (no scores, error_class "rate_limited").
    """
    cells = cells or CELLS
    failed = failed or set()
    dataset_id, experiment_id = uuid7(), uuid7()
    items = [f"mod:func_{i:03d}" for i in range(n_items)]
    seeded = Seeded(experiment_id, name, [cell_key(*c) for c in cells], items, repeats, failed)
    async with store.transaction() as session:
        await session.execute(insert(Dataset.__table__), [{
            "id": dataset_id, "name": f"{name}-data", "version": 1, "content_hash": uuid7().hex,
            "item_count": n_items}])  # fmt: skip
        item_ids = [uuid7() for _ in items]
        await session.execute(insert(DatasetItem.__table__), [
            {"id": item_ids[i], "dataset_id": dataset_id, "position": i, "item_key": key,
             "language": "python", "code": f"def func_{i}(x):\n    return x + {i}\n",
             "instruction": None if i % 2 else "Explain the algorithm.",
             "reference": f"Adds {i} to x."}
            for i, key in enumerate(items)
        ] or [{"id": uuid7(), "dataset_id": dataset_id, "position": 0, "item_key": "unused",
                "language": "python", "code": "pass"}])  # fmt: skip
        await session.execute(insert(Experiment.__table__), [{
            "id": experiment_id, "name": name, "spec_hash": "0" * 64, "dataset_id": dataset_id,
            "status": "finished", "prompt_hashes": {}, "meta_data": {},
            "spec": {"name": name, "instruction": "Explain what this function does and how.",
                     "metrics": ["summary_quality", *metrics], "repeats": repeats,
                     "judge": {"model": "offline", "prompt": "summary_judge@1"}}}])  # fmt: skip
        cell_ids = [uuid7() for _ in cells]
        await session.execute(insert(ExperimentCell.__table__), [
            {"id": cell_ids[c], "experiment_id": experiment_id, "key": seeded.cells[c],
             "position": c, "prompt": p, "density_iterations": d, "model": m, "params": {}}
            for c, (p, d, m) in enumerate(cells)
        ])  # fmt: skip
        runs: list[dict[str, Any]] = []
        traces: list[dict[str, Any]] = []
        span_rows: list[dict[str, Any]] = []
        evals: list[dict[str, Any]] = []

        async def flush(force: bool = False) -> None:
            if len(runs) < batch and not force:
                return
            if runs:
                await session.execute(insert(Run.__table__), runs)
            if traces:
                await session.execute(insert(Trace.__table__), traces)
            if span_rows:
                await session.execute(insert(Span.__table__), span_rows)
            if evals:
                await session.execute(insert(Evaluation.__table__), evals)
            for rows in (runs, traces, span_rows, evals):
                rows.clear()

        for c in range(len(cells)):
            for i in range(n_items):
                for r in range(repeats):
                    run_id, trace_id = uuid7(), uuid7()
                    seeded.run_ids[(c, i, r)] = run_id
                    seeded.trace_ids[(c, i, r)] = trace_id
                    is_failed = (c, i, r) in failed
                    s = score(c, i, r)
                    runs.append({
                        "id": run_id, "experiment_id": experiment_id, "cell_id": cell_ids[c],
                        "dataset_item_id": item_ids[i], "repeat": r,
                        "status": "failed" if is_failed else "succeeded", "trace_id": trace_id,
                        "attempts": 1, "error_class": "rate_limited" if is_failed else None,
                        "error_message": "429 from the provider" if is_failed else None,
                        "summary": None if is_failed else f"Summary {c}/{i}/{r}: adds {i} to x.",
                        "judge_score": None if is_failed else s, "prompt_tokens": 100,
                        "completion_tokens": 20 * (c + 1), "total_tokens": 100 + 20 * (c + 1),
                        "cost": 0.001, "latency_ms": float(10 * (c + 1) + i),
                        "model_calls": cells[c][1] + 1, "cache_hits": 0,
                    })  # fmt: skip
                    traces.append({
                        "id": trace_id, "run_id": run_id, "trace_type": "experiment",
                        "name": f"{name}: {items[i]}", "start_time": T0, "duration_ms": 10,
                        "status": "error" if is_failed else "ok",
                    })  # fmt: skip
                    if spans:
                        root = uuid7()
                        span_rows.append({
                            "id": root, "trace_id": trace_id, "parent_span_id": None,
                            "name": "chain_of_density", "type": "general", "model": None,
                            "provider": None, "prompt_tokens": None, "completion_tokens": None,
                            "total_tokens": None, "cost": None, "start_time": T0,
                            "duration_ms": 9.0})  # fmt: skip
                        span_rows.append({
                            "id": uuid7(), "trace_id": trace_id, "parent_span_id": root,
                            "name": "final", "type": "llm", "model": "offline",
                            "provider": "offline", "prompt_tokens": 100,
                            "completion_tokens": 20 * (c + 1), "total_tokens": 100 + 20 * (c + 1),
                            "cost": 0.001, "start_time": T0 + timedelta(milliseconds=1),
                            "duration_ms": 5.0})  # fmt: skip
                    if is_failed:
                        continue
                    evals.append(
                        {
                            "id": uuid7(),
                            "trace_id": trace_id,
                            "metric_name": "summary_quality",
                            "score": s,
                            "status": "ok",
                            "meta_data": {"judge": "offline"},
                        }
                    )
                    for m in metrics:
                        evals.append({"id": uuid7(), "trace_id": trace_id, "metric_name": m,
                                      "score": known_metric(m, c, i, r), "status": "ok",
                                      "meta_data": {}})  # fmt: skip
                    await flush()
        await flush(force=True)
    return seeded


@contextmanager
def count_queries(store: Store) -> Iterator[list[str]]:
    """Collects the SQL statements (SELECTs) the store's engine executes inside the block."""
    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", before)


# --------------------------------------------------------------------------- runs_frame


async def test_runs_frame_has_one_row_per_run_with_known_values(store: Store) -> None:
    seeded = await seed_experiment(store, failed={(1, 2, 0)})
    runs = await runs_frame(store, seeded.name)
    assert len(runs) == 4 * 6 * 2
    assert list(runs.columns[:10]) == [
        "run_id", "experiment_id", "cell", "prompt", "density_iterations", "model", "repeat",
        "item_key", "status", "judge_score",
    ]  # fmt: skip
    assert runs.attrs["metrics"] == ["summary_quality", "entity_density", "rouge_l"]
    assert list(runs["cell"].unique()) == seeded.cells
    assert set(runs["experiment_id"]) == {str(seeded.experiment_id)}
    for c in range(4):
        for i in range(6):
            for r in range(2):
                row = runs[(runs["cell"] == seeded.cells[c]) & (runs["item_key"] == seeded.items[i])
                           & (runs["repeat"] == r)].iloc[0]  # fmt: skip
                assert row["run_id"] == str(seeded.run_ids[(c, i, r)])
                assert row["trace_id"] == str(seeded.trace_ids[(c, i, r)])
                assert row["latency_ms"] == 10 * (c + 1) + i
                assert row["total_tokens"] == 100 + 20 * (c + 1)
                if (c, i, r) == (1, 2, 0):
                    assert row["status"] == "failed"
                    assert row["error_class"] == "rate_limited"
                    assert math.isnan(row["judge_score"]) and math.isnan(row["rouge_l"])
                    continue
                assert row["status"] == "succeeded"
                assert row["judge_score"] == pytest.approx(known_score(c, i, r))
                assert row["summary_quality"] == pytest.approx(known_score(c, i, r))
                assert row["entity_density"] == pytest.approx(
                    known_metric("entity_density", c, i, r)
                )
                assert row["rouge_l"] == pytest.approx(known_metric("rouge_l", c, i, r))
    assert runs["total_tokens"].dtype == "Int64"
    assert runs["density_iterations"].tolist()[:12] == [1] * 12


async def test_runs_frame_accepts_an_experiment_its_id_prefix_and_its_name(store: Store) -> None:
    seeded = await seed_experiment(store, n_items=2, repeats=1)
    by_name = await runs_frame(store, seeded.name)
    by_id = await runs_frame(store, str(seeded.experiment_id))
    by_uuid = await runs_frame(store, seeded.experiment_id)
    async with store.session() as session:
        exp = await session.get(Experiment, seeded.experiment_id)
    by_object = await runs_frame(store, exp)  # type: ignore[arg-type]
    for frame in (by_id, by_uuid, by_object):
        pd.testing.assert_frame_equal(frame, by_name)
    with pytest.raises(InputError, match="no experiment"):
        await runs_frame(store, "no-such-experiment")


async def test_runs_frame_ignores_judge_check_re_judgements(store: Store) -> None:
    seeded = await seed_experiment(store, n_items=2, repeats=1)
    async with store.transaction() as session:
        await session.execute(insert(Evaluation.__table__), [
            {"id": uuid7(), "trace_id": t, "metric_name": "summary_quality", "score": 0.0,
             "status": "ok", "meta_data": {"judge_check": True, "judge": "offline", "repeat": 0}}
            for t in seeded.trace_ids.values()
        ])  # fmt: skip
    runs = await runs_frame(store, seeded.name)
    assert runs["summary_quality"].tolist() == pytest.approx(runs["judge_score"].tolist())
    assert (runs["summary_quality"] > 0).all()


async def test_every_frame_reads_the_store_with_one_query(store: Store) -> None:
    seeded = await seed_experiment(store)
    async with store.session() as session:
        exp = await session.get(Experiment, seeded.experiment_id)
    assert exp is not None
    for frame_fn in (runs_frame, cells_frame, spans_frame):
        with count_queries(store) as statements:
            await frame_fn(store, exp)
        assert len(statements) == 1, (frame_fn.__name__, statements)


async def test_an_experiment_without_runs_gives_empty_frames(store: Store) -> None:
    seeded = await seed_experiment(store, n_items=0)
    runs = await runs_frame(store, seeded.name)
    assert len(runs) == 0 and "judge_score" in runs.columns
    assert len(await cells_frame(store, seeded.name)) == 0
    assert len(await spans_frame(store, seeded.name)) == 0


# --------------------------------------------------------------------------- cells, spans


async def test_cells_frame_summarises_each_cell(store: Store) -> None:
    seeded = await seed_experiment(store, failed={(1, 2, 0)})
    cells = await cells_frame(store, seeded.name)
    assert cells["cell"].tolist() == seeded.cells
    first = cells.iloc[0]
    scores = [known_score(0, i, r) for i in range(6) for r in range(2)]
    assert first["n"] == 12 and first["succeeded"] == 12 and first["failed"] == 0
    assert first["judge_mean"] == pytest.approx(np.mean(scores))
    half = 2.200985160082949 * np.std(scores, ddof=1) / math.sqrt(12)  # t(0.975, 11)
    assert first["judge_ci_low"] == pytest.approx(np.mean(scores) - half, rel=1e-6)
    assert first["judge_ci_high"] == pytest.approx(np.mean(scores) + half, rel=1e-6)
    assert first["entity_density"] == pytest.approx(0.05)
    assert first["total_tokens"] == 12 * 120
    assert first["cost"] == pytest.approx(0.012)
    assert first["latency_p50_ms"] == pytest.approx(
        np.percentile([10 + i for i in range(6)] * 2, 50)
    )
    assert first["latency_p95_ms"] == pytest.approx(
        np.percentile([10 + i for i in range(6)] * 2, 95)
    )
    second = cells.iloc[1]
    assert second["failed"] == 1 and second["succeeded"] == 11 and second["judge_n"] == 11
    assert second["failure_rate"] == pytest.approx(1 / 12)


async def test_spans_frame_has_one_row_per_span_with_its_run_cell(store: Store) -> None:
    seeded = await seed_experiment(store, n_items=3, repeats=1)
    spans = await spans_frame(store, seeded.name)
    assert len(spans) == 4 * 3 * 2
    assert {"trace_id", "run_id", "cell", "name", "type", "model", "provider", "total_tokens",
            "cost", "duration_ms"} <= set(spans.columns)  # fmt: skip
    llm = spans[spans["type"] == "llm"]
    assert llm.groupby("cell")["total_tokens"].first().to_dict() == {
        seeded.cells[c]: 100 + 20 * (c + 1) for c in range(4)
    }
    key = (2, 1, 0)
    trace_spans = spans[spans["trace_id"] == str(seeded.trace_ids[key])]
    assert trace_spans["name"].tolist() == ["chain_of_density", "final"]
    assert set(trace_spans["cell"]) == {seeded.cells[2]}
    assert set(trace_spans["run_id"]) == {str(seeded.run_ids[key])}


# --------------------------------------------------------------------------- A/B


async def test_compare_cells_pairs_runs_by_item_and_averages_repeats(store: Store) -> None:
    seeded = await seed_experiment(store)
    a, b = seeded.cells[0], seeded.cells[2]
    result = await compare_cells(store, seeded.name, a, b)
    assert result.n == 6 and result.max_repeats == 2
    assert result.mean_diff == pytest.approx(0.2)
    assert result.wins == 6 and result.losses == 0
    assert result.label_a == a and result.metric == "summary_quality"
    on_rouge = await compare_cells(store, seeded.name, a, b, metric="rouge_l")
    assert on_rouge.mean_diff == pytest.approx(0.0) and on_rouge.ties == 6


async def test_compare_cells_with_an_unknown_cell_names_the_experiment_cells(store: Store) -> None:
    seeded = await seed_experiment(store, n_items=2, repeats=1)
    with pytest.raises(InputError) as info:
        await compare_cells(store, seeded.name, seeded.cells[0], "nope/d9/x")
    for key in seeded.cells:
        assert key in str(info.value)
    with pytest.raises(InputError, match="no metric"):
        await compare_cells(store, seeded.name, seeded.cells[0], seeded.cells[1], metric="bleu9")


async def test_compare_all_holm_adjusts_over_metrics(store: Store) -> None:
    seeded = await seed_experiment(store)
    results = await compare_all(store, seeded.name, seeded.cells[0], seeded.cells[3])
    assert list(results) == ["summary_quality", "entity_density", "rouge_l"]
    for r in results.values():
        assert r.adjustment == "holm (m=3)"
        assert r.p_adjusted is not None and r.p_value is not None
        assert r.p_adjusted >= r.p_value
    assert results["entity_density"].mean_diff == pytest.approx(0.15)


# --------------------------------------------------------------------------- notebooks


def test_sync_loaders_work_with_and_without_a_running_loop(store_url: str) -> None:
    async def seed() -> Seeded:
        s = await Store.open(store_url)
        try:
            return await seed_experiment(s, n_items=3, repeats=1)
        finally:
            await s.close()

    seeded = asyncio.run(seed())
    runs = load_runs(seeded.name, url=store_url)
    assert len(runs) == 12

    async def inside_a_loop() -> pd.DataFrame:
        # What a Jupyter cell sees: a loop already running in this thread.
        return load_cells(seeded.name, url=store_url)

    cells = asyncio.run(inside_a_loop())
    assert cells["cell"].tolist() == seeded.cells


# --------------------------------------------------------------------------- 100,000 runs


@pytest.mark.slow
async def test_frames_on_100000_runs_timing(store: Store) -> None:
    """Times the frames on 100,000 runs (5,000 items × 4 cells × 5 repeats, 3 metrics each)."""
    t = time.perf_counter()
    seeded = await seed_experiment(
        store,
        name="big",
        n_items=5000,
        repeats=5,
        spans=True,
        metrics=("entity_density", "rouge_l"),
        batch=20000,
    )
    seed_s = time.perf_counter() - t
    timings = {}
    for fn in (runs_frame, cells_frame, spans_frame):
        t = time.perf_counter()
        frame = await fn(store, seeded.name)
        timings[fn.__name__] = (time.perf_counter() - t, len(frame))
    t = time.perf_counter()
    await compare_cells(store, seeded.name, seeded.cells[0], seeded.cells[1])
    timings["compare_cells"] = (time.perf_counter() - t, 1)
    print(f"\n[{store.dialect}] seeded 100,000 runs in {seed_s:.1f} s")
    for name, (seconds, rows) in timings.items():
        print(f"[{store.dialect}] {name}: {seconds:.2f} s ({rows:,} rows)")
    assert timings["runs_frame"][1] == 100_000
    assert timings["spans_frame"][1] == 200_000
