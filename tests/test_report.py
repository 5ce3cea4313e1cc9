"""The HTML report: one self-contained file with inline figures and no external URLs."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from codi_eval.analysis.frames import runs_frame
from codi_eval.analysis.report import ab_comparisons, build_report, write_report
from codi_eval.store.engine import Store
from tests.cli_helpers import run_cli
from tests.test_frames import seed_experiment

PNG = b"\x89PNG\r\n\x1a\n"


def _inline_images(text: str) -> dict[str, bytes]:
    found = re.findall(r'<img id="([^"]+)"[^>]*src="data:image/png;base64,([^"]+)"', text)
    return {figure_id: base64.b64decode(data) for figure_id, data in found}


async def test_report_inlines_density_curves_and_ab_figures(store: Store) -> None:
    seeded = await seed_experiment(store, failed={(0, 1, 0)})
    text = await build_report(store, seeded.name)
    images = _inline_images(text)
    assert {"density-curves", "ab-forest", "score-dist"} <= set(images)
    assert all(png.startswith(PNG) for png in images.values())
    for key in seeded.cells:
        assert key in text
    assert "Failures" in text and "rate_limited" in text


async def test_report_has_no_external_urls(store: Store) -> None:
    seeded = await seed_experiment(store, n_items=4, repeats=1)
    text = await build_report(store, seeded.name)
    assert not re.search(r"https?://|//cdn|<script|<link", text, flags=re.IGNORECASE)
    srcs = re.findall(r'src="([^"]*)"', text)
    assert srcs and all(src.startswith("data:image/png;base64,") for src in srcs)


async def test_ab_section_compares_every_pair_differing_in_one_factor(store: Store) -> None:
    seeded = await seed_experiment(store)
    comparisons = ab_comparisons(await runs_frame(store, seeded.name))
    pairs = {(c.label_a, c.label_b, factor) for factor, c in comparisons}
    c = seeded.cells
    assert pairs == {
        (c[0], c[1], "density_iterations"), (c[0], c[2], "prompt"),
        (c[1], c[3], "prompt"), (c[2], c[3], "density_iterations"),
    }  # fmt: skip
    assert all(comp.adjustment == "holm (m=4)" for _, comp in comparisons)


async def test_write_report_creates_the_file(store: Store, tmp_path: Path) -> None:
    seeded = await seed_experiment(store, n_items=3, repeats=1)
    path = await write_report(store, seeded.name, tmp_path / "out" / "report.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_report_cli_writes_html_and_compare_cli_rejects_unknown_cells(tmp_path: Path) -> None:
    import asyncio

    url = f"sqlite:///{tmp_path / 'cli.db'}"

    async def seed() -> list[str]:
        s = await Store.open(url)
        try:
            return (await seed_experiment(s, name="cli-exp")).cells
        finally:
            await s.close()

    cells = asyncio.run(seed())
    out = tmp_path / "r.html"
    done = run_cli("report", "cli-exp", "--out", str(out), db_url=url)
    assert done.returncode == 0, done.stderr
    assert "density-curves" in out.read_text(encoding="utf-8")
    bad = run_cli("compare", "cli-exp", "--a", cells[0], "--b", "nope", db_url=url)
    assert bad.returncode == 2
    assert all(key in bad.stderr.replace("\n", "") for key in cells)
    ok = run_cli("compare", "cli-exp", "--a", cells[0], "--b", cells[2], "--json", db_url=url)
    assert ok.returncode == 0, ok.stderr
    import json

    data = json.loads(ok.stdout)
    assert data["n"] == 6 and abs(data["mean_diff"] - 0.2) < 1e-9
    assert {"ci_low", "ci_high", "p_value", "wins", "ties", "losses", "effect_size", "mde"} <= set(
        data
    )
    missing = run_cli("report", "no-such-experiment", "--out", str(out), db_url=url)
    assert missing.returncode == 2
