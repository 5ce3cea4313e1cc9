"""The report shows what the model wrote (each cell's best and worst outputs, side-by-side
summaries where A and B differ most), its cells table fits a laptop screen, and it tells the
truth about an experiment whose every run failed."""

from __future__ import annotations

import re
from pathlib import Path

from codi_eval.analysis.report import build_report, run_status
from codi_eval.store.engine import Store
from tests.test_frames import seed_experiment
from tests.view_helpers import run_small


async def test_an_all_failed_experiment_is_reported_as_failed(store: Store) -> None:
    every = {(c, i, r) for c in range(4) for i in range(3) for r in range(1)}
    seeded = await seed_experiment(store, n_items=3, repeats=1, failed=every)
    text = await build_report(store, seeded.name)
    assert re.search(r'id="status">failed: every run failed \(12\)<', text), text[:600]
    assert "status finished" not in text and ">finished<" not in text
    assert "No run succeeded, so there is nothing to compare." in text
    assert "No pair of cells differs in exactly one factor" not in text


def test_the_status_line_counts_failures_and_unfinished_runs() -> None:
    assert run_status("finished", {"succeeded": 3}) == "finished"
    assert run_status("finished", {"succeeded": 3, "failed": 1}) == "finished, 1 of 4 runs failed"
    assert run_status("running", {"succeeded": 1, "pending": 2}).startswith("unfinished: 2 of 3")


async def test_the_report_shows_sample_outputs_and_side_by_side_summaries(
    store: Store, tmp_path: Path
) -> None:
    await run_small(store, tmp_path)
    text = await build_report(store, "quick-small")
    samples = text[text.index('id="samples"') : text.index("Density curves")]
    for label in ("v1/d1 · best", "v1/d1 · worst", "v2/d3 · best", "v2/d3 · worst"):
        assert label in samples
    assert "<mark>b64encode</mark>" in samples and "judge: offline heuristic" in samples
    assert "Where a and b differ most" in text and 'class="side"' in text
    side = text[text.index("Where a and b differ most") :]
    assert "`b64encode`" in side  # the d3 summary of an item next to its d1 summary
    head = text[text.index('<table id="cells">') : text.index("</thead>", text.index('id="cells"'))]
    assert head.count("<th") <= 12
    assert "17.000" not in text and re.search(r"\d ms / \d+ ms", text)
