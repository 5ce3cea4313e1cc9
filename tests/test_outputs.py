"""What a run produced, read back: iterations with added entities, the final summary, the
judge's score and reason, metrics and the span timeline (analysis/outputs.py), and the
frames' summary and judge-reason columns. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from codi_eval.analysis.frames import runs_frame, spans_frame
from codi_eval.analysis.labels import cell_labels
from codi_eval.analysis.outputs import cell_extremes, run_briefs, run_output, run_outputs
from codi_eval.errors import NotFound
from codi_eval.store.engine import Store
from tests.view_helpers import CELLS, run_small


async def test_a_run_shows_every_iteration_with_the_entities_it_added(
    store: Store, tmp_path: Path
) -> None:
    await run_small(store, tmp_path)
    [out] = await run_outputs(store, "quick-small", CELLS[3], "base64:b64encode")
    assert out.status == "succeeded" and out.code.startswith("def b64encode")
    assert [it.number for it in out.iterations] == [1, 2, 3]
    # The offline model adds the function's name and parameters, then the calls it makes.
    assert out.iterations[1].added_entities == ["b64encode", "s", "altchars"]
    assert "binascii.b2a_base64" in out.iterations[2].added_entities
    assert "`b64encode`" in out.iterations[2].summary
    assert out.iterations[0].summary and out.iterations[0].summary != out.iterations[2].summary
    assert out.summary and "b64encode" in out.summary
    assert out.summary_quality is not None and 0 <= out.summary_quality <= 1
    assert out.judge_reason and out.judge_reason.startswith("offline heuristic")
    assert out.judge_status == "ok"
    assert {m.name for m in out.metrics} == {
        "entity_density", "identifier_coverage", "rouge_l", "compression"
    }  # fmt: skip
    assert out.total_tokens and out.latency_ms is not None and out.cost == 0.0
    names = [s.name for s in out.spans]
    assert names[:5] == ["chain_of_density", "iteration 1", "iteration 2", "iteration 3", "final"]
    assert "judge: summary_quality" in names
    assert [s.depth for s in out.spans][:2] == [0, 1]
    assert all(s.start_ms >= 0 for s in out.spans)
    again = await run_output(store, "quick-small", out.run_id)
    assert again.run_id == out.run_id and again.summary == out.summary


async def test_cells_and_items_are_found_by_label_or_suffix_with_did_you_mean(
    store: Store, tmp_path: Path
) -> None:
    await run_small(store, tmp_path)
    by_label = await run_outputs(store, "quick-small", "v2/d3", "b64encode")
    assert [o.cell for o in by_label] == [CELLS[3]]
    with pytest.raises(NotFound) as cell:
        await run_outputs(store, "quick-small", "cod_iteraton@2/d3/offline")
    message = str(cell.value)
    assert "did you mean 'cod_iteration@2/d3/offline'" in message and "in the store" in message
    with pytest.raises(NotFound) as item:
        await run_briefs(store, "quick-small", item="b64encod")
    assert "did you mean 'base64:b64encode'" in str(item.value)
    with pytest.raises(NotFound) as exp:
        await run_briefs(store, "quick-smal")
    assert "did you mean 'quick-small'" in str(exp.value)


async def test_a_cells_best_and_worst_items_are_ordered_and_distinct(
    store: Store, tmp_path: Path
) -> None:
    await run_small(store, tmp_path)
    best, worst = await cell_extremes(store, "quick-small", CELLS[1], n=2)
    assert len(best) == 2 and len(worst) == 2
    assert best[0].summary_quality >= best[1].summary_quality >= worst[1].summary_quality
    assert worst[0].summary_quality <= worst[1].summary_quality
    assert not {b.run_id for b in best} & {w.run_id for w in worst}
    assert all(b.judge_reason and b.summary for b in best)


async def test_runs_frame_carries_the_summary_and_the_judges_reason(
    store: Store, tmp_path: Path
) -> None:
    await run_small(store, tmp_path)
    runs = await runs_frame(store, "quick-small")
    assert list(runs.columns[-2:]) == ["summary", "judge_reason"]
    assert runs["summary"].notna().all() and runs["judge_reason"].notna().all()
    row = runs[(runs["cell"] == CELLS[3]) & (runs["item_key"] == "base64:b64encode")].iloc[0]
    [out] = await run_outputs(store, "quick-small", CELLS[3], "base64:b64encode")
    assert row["summary"] == out.summary and row["judge_reason"] == out.judge_reason
    spans = await spans_frame(store, "quick-small")
    it3 = spans[(spans["run_id"] == out.run_id) & (spans["name"] == "iteration 3")].iloc[0]
    assert it3["output"] == out.iterations[2].summary
    assert it3["added_entities"] == out.iterations[2].added_entities
    judge = spans[(spans["run_id"] == out.run_id) & (spans["type"] == "judge")].iloc[0]
    assert judge["output"] == out.judge_reason


def test_cell_labels_keep_only_the_factors_that_vary() -> None:
    from codi_eval.analysis.cells import CellInfo

    cells = [CellInfo(k, k.split("/")[0], int(k.split("/")[1][1:]), "offline") for k in CELLS]
    labels = cell_labels(cells)
    assert list(labels.labels.values()) == ["v1/d1", "v1/d3", "v2/d1", "v2/d3"]
    assert labels.shared == ["model offline"]
    assert "v2/d3 = cod_iteration@2/d3/offline" in labels.legend()
    models = [CellInfo(f"p@1/d2/{m}", "p@1", 2, m) for m in ("gemini-2.5-flash", "offline")]
    assert list(cell_labels(models).labels.values()) == ["gemini-2.5-flash", "offline"]
    long = [CellInfo(f"p@1/d2/{m}", "p@1", 2, m) for m in ("openai:some-very-long-model-a", "x")]
    assert list(cell_labels(long).labels.values()) == ["c1", "c2"]


async def test_compare_takes_table_labels_and_suggests_a_close_cell(
    store: Store, tmp_path: Path
) -> None:
    from codi_eval.analysis.frames import compare_runs
    from codi_eval.errors import InputError

    await run_small(store, tmp_path)
    runs = await runs_frame(store, "quick-small")
    by_label = compare_runs(runs, "v2/d1", "v2/d3", seed=0)
    by_key = compare_runs(runs, CELLS[2], CELLS[3], seed=0)
    assert by_label.label_a == CELLS[2] and by_label.mean_diff == by_key.mean_diff
    # The quickstart's headline: density 3 beats density 1 offline, for a real reason.
    assert by_key.mean_diff is not None and by_key.mean_diff > 0.3 and by_key.wins == by_key.n
    with pytest.raises(InputError, match="did you mean 'cod_iteration@2/d1/offline'"):
        compare_runs(runs, "cod_iteration@2/d1/ofline", "v2/d3")
