"""The end-of-run table fits 100 columns and every cell can be told apart (it used to need
~166 columns and cut every cell name to `cod_i…`); unknown cost says so."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from codi_eval.analysis.cells import cell_results
from codi_eval.cli.run import results_table
from codi_eval.store.engine import Store
from tests.view_helpers import CELLS, run_small


def render(renderable: object, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None, highlight=False)
    console.print(renderable)
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


async def test_the_quickstart_table_fits_100_columns_with_distinct_cells(
    store: Store, tmp_path: Path
) -> None:
    exp_id = await run_small(store, tmp_path)
    results = await cell_results(store, uuid.UUID(exp_id))
    for width in (100, 80):
        lines = render(results_table(results, width=width), width)
        assert all(len(line.rstrip()) <= width for line in lines), "\n".join(lines)
        assert not any("…" in line for line in lines), "\n".join(lines)
        rows = [line.split()[0] for line in lines if line.strip().startswith(("v1/", "v2/"))]
        labels = ["v1/d1", "v1/d3", "v2/d1", "v2/d3"]
        assert rows[:4] == labels, "\n".join(lines)
        for label, key in zip(labels, CELLS, strict=True):
            assert f"{label} = {key}" in lines
        assert any(line.startswith("quality = summary_quality") for line in lines)
    at_100 = "\n".join(render(results_table(results, width=100), 100))
    for header in ("quality ±95%", "density", "id_cover", "rouge_l", "compress", "cost $"):
        assert header in at_100
    wide = "\n".join(render(results_table(results, wide=True), 250))
    assert all(key in wide for key in CELLS) and "p95 ms" in wide and "identifier_coverage" in wide


async def test_a_model_without_a_price_costs_unknown_not_zero(store: Store, tmp_path: Path) -> None:
    exp_id = await run_small(store, tmp_path, n=2)
    results = await cell_results(store, uuid.UUID(exp_id))
    unpriced = [replace(results[0], cost=None), *results[1:]]
    text = "\n".join(render(results_table(unpriced, width=100), 100))
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith(" v")}
    rows = rows or {line.split()[0]: line for line in text.splitlines() if line.startswith("v")}
    assert "unknown" in rows["v1/d1"] and "unknown" not in rows["v2/d3"], text
    assert "cost unknown: a model has no price" in text
