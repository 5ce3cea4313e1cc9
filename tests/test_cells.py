"""One per-cell aggregate: the run table and the API (from the store) and the frames and
report (from a runs frame) give the same numbers, and re-judgements never count."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert, select

from codi_eval.analysis.cells import CellInfo, RunValues, aggregate_cells, cell_results
from codi_eval.analysis.frames import cells_frame
from codi_eval.store.engine import Store
from codi_eval.store.models import Evaluation, Experiment, Run
from tests.test_frames import seed_experiment


def _same(a: Any, b: Any) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == pytest.approx(b)


async def _compare(store: Store, name: str) -> list[Any]:
    async with store.session() as session:
        exp = await session.scalar(select(Experiment).where(Experiment.name == name))
    assert exp is not None
    from_store = await cell_results(store, exp.id)
    frame = await cells_frame(store, name)
    assert [r.key for r in from_store] == frame["cell"].tolist()
    for r, row in zip(from_store, frame.to_dict("records"), strict=True):
        for a, b in (
            (r.runs, row["n"]),
            (r.succeeded, row["succeeded"]),
            (r.failed, row["failed"]),
            (r.judge_mean, row["judge_mean"]),
            (r.judge_ci_low, row["judge_ci_low"]),
            (r.cost, row["cost"]),
            (r.total_tokens, row["total_tokens"]),
            (r.latency_p95_ms, row["latency_p95_ms"]),
            (r.failure_rate, row["failure_rate"]),
        ):
            assert _same(a, b), (r.key, a, b)
        for metric, value in r.metrics.items():
            assert _same(value, row[metric]), (r.key, metric)
    return from_store


async def test_the_store_and_the_frames_aggregate_cells_the_same_way(store: Store) -> None:
    seeded = await seed_experiment(store, n_items=4, repeats=2, failed={(0, 0, 0), (1, 2, 1)})
    results = await _compare(store, seeded.name)
    assert sum(r.failed for r in results) == 2
    assert all(r.metrics for r in results)


async def test_re_judgements_are_not_a_runs_own_scores_anywhere(store: Store) -> None:
    seeded = await seed_experiment(store, n_items=3, repeats=1)
    before = await _compare(store, seeded.name)
    async with store.transaction() as session:
        traces = list(await session.scalars(select(Run.trace_id).where(Run.trace_id.is_not(None))))
        # A judge-check with a judge whose metric is also an offline metric's name.
        await session.execute(
            insert(Evaluation),
            [
                {
                    "id": uuid.uuid4(),
                    "trace_id": t,
                    "metric_name": "rouge_l",
                    "score": 0.999,
                    "status": "ok",
                    "meta_data": {"judge_check": True, "judge": "x", "repeat": 0},
                }
                for t in traces
            ],
        )
    after = await _compare(store, seeded.name)
    assert [r.metrics for r in after] == [r.metrics for r in before]


@given(
    st.lists(
        st.tuples(
            st.floats(0.0, 1.0, allow_nan=False),
            st.floats(0.0, 1.0, allow_nan=False),
            st.floats(0.0, 0.01, allow_nan=False),
        ),
        min_size=2,
        max_size=30,
    ),
    st.randoms(use_true_random=False),
)
def test_a_cells_numbers_do_not_depend_on_the_order_the_store_returns_runs_in(
    values: list[tuple[float, float, float]], rnd: Any
) -> None:
    # PostgreSQL returns rows in no fixed order; a rerun that read the same runs reordered
    # printed compression 0.0954078997482771 where the first run printed ...708.
    cells = [CellInfo("c", "p@1", 1, "offline")]
    runs = [
        RunValues("c", "succeeded", judge_score=j, cost=c, metrics={"rouge_l": m})
        for j, m, c in values
    ]
    shuffled = list(runs)
    rnd.shuffle(shuffled)
    assert aggregate_cells(cells, runs) == aggregate_cells(cells, shuffled)
