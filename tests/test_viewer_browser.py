"""`codi-eval view` in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright): open every page, click from the experiments list to a run, check what a person
sees, and keep screenshots in tests/artifacts/viewer/. Also: nothing is fetched from
anywhere but the viewer itself."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from codi_eval.analysis.outputs import run_outputs
from codi_eval.analysis.report import write_report
from codi_eval.api import create_app
from codi_eval.store.engine import Store
from tests.api_helpers import base_settings
from tests.cli_helpers import ROOT
from tests.view_helpers import CELLS, run_small, summarize_one

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CODI_EVAL_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts" / "viewer"
ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


def _need_chromium() -> None:
    if shutil.which(CHROMIUM) is None:
        message = f"no Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: browser tests must run)", pytrace=False)
        pytest.skip(message)


@asynccontextmanager
async def serve_viewer(store: Store) -> AsyncIterator[str]:
    app = create_app(store, base_settings(store.url), viewer=True)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_a_person_clicks_from_the_experiments_list_to_a_run(
    store: Store, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    _need_chromium()
    from playwright.async_api import async_playwright

    await run_small(store, tmp_path)
    trace_id = await summarize_one(store)
    [wanted] = await run_outputs(store, "quick-small", CELLS[3], "base64:b64encode")
    shots = ARTIFACTS / request.node.callspec.id
    shots.mkdir(parents=True, exist_ok=True)
    async with serve_viewer(store) as base:
        async with async_playwright() as p:
            browser = await p.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=CHROMIUM,
                args=ARGS,
                headless=True,
                viewport={"width": 1366, "height": 900},
            )
            try:
                page = browser.pages[0] if browser.pages else await browser.new_page()
                requested: list[str] = []
                page.on("request", lambda r: requested.append(r.url))

                # The experiments list.
                await page.goto(base + "/")
                assert await page.locator("h1").inner_text() == "Experiments"
                assert await page.locator("#experiments a.experiment").all_inner_texts() == [
                    "quick-small"
                ]
                await page.screenshot(path=str(shots / "1-experiments.png"), full_page=True)

                # Click through to the experiment: the cells table, the curve, the A/B table.
                await page.click("text=quick-small")
                await page.wait_for_selector("#cells")
                assert await page.locator("h1").inner_text() == "quick-small"
                labels = await page.locator("#cells a.cell").all_inner_texts()
                assert labels == ["v1/d1", "v1/d3", "v2/d1", "v2/d3"]
                keys = await page.locator("#cells .id").all_inner_texts()
                assert keys == CELLS
                assert await page.locator("#density-curve polyline").count() == 2
                assert await page.locator("#density-curve circle").count() == 4
                assert await page.locator("#ab tbody tr").count() == 4
                right = await page.evaluate(
                    "document.querySelector('#cells').getBoundingClientRect().right"
                )
                assert right <= 1366, f"the cells table overflows a laptop screen ({right} px)"
                await page.screenshot(path=str(shots / "2-experiment.png"), full_page=True)

                # The cell's runs.
                await page.click("#cells a.cell >> text=v2/d3")
                await page.wait_for_selector("#runs")
                assert "v2/d3" in await page.locator("h1").inner_text()
                items = await page.locator("#runs a.run").all_inner_texts()
                assert "base64:b64encode" in items and len(items) == 4
                await page.screenshot(path=str(shots / "3-cell.png"), full_page=True)

                # One run: code, iterations with added entities highlighted, judge's reason.
                await page.click("#runs a.run >> text=base64:b64encode")
                await page.wait_for_selector("#iterations")
                assert await page.locator("h1").inner_text() == "base64:b64encode"
                assert "def b64encode" in await page.locator("#code").inner_text()
                assert await page.locator("li.iteration").count() == 3
                second = page.locator("#iteration-2")
                assert await second.locator("p.text mark").all_inner_texts() == [
                    "b64encode", "s", "altchars"
                ]  # fmt: skip
                assert await second.locator("p.text").inner_text() == wanted.iterations[1].summary
                third = await page.locator("#iteration-3 .head mark").all_inner_texts()
                assert third == wanted.iterations[2].added_entities
                highlight = await page.evaluate(
                    "getComputedStyle(document.querySelector('#iteration-2 p.text mark'))"
                    ".backgroundColor"
                )
                assert highlight not in ("rgba(0, 0, 0, 0)", "transparent")
                assert await page.locator("#final-summary").inner_text() == wanted.summary
                reason = await page.locator("#judge-reason").inner_text()
                assert wanted.judge_reason and wanted.judge_reason in reason
                assert "summary_quality 1.000" in reason
                spans = await page.locator("#timeline tbody td:first-child").all_inner_texts()
                assert [s.strip() for s in spans][:5] == [
                    "chain_of_density", "iteration 1", "iteration 2", "iteration 3", "final"
                ]  # fmt: skip
                await page.screenshot(path=str(shots / "4-run.png"), full_page=True)

                # The traces made outside experiments, and one of them.
                await page.click("header >> text=Traces")
                await page.wait_for_selector("#traces")
                assert await page.locator("#traces a.trace").count() == 1
                await page.click("#traces a.trace")
                await page.wait_for_selector("#evaluations")
                assert trace_id in await page.locator("p.note").inner_text()
                assert "summary_quality" in await page.locator("#evaluations").inner_text()
                assert await page.locator("#timeline tbody tr").count() >= 4
                await page.screenshot(path=str(shots / "5-trace.png"), full_page=True)

                # A mistyped experiment: a page that says what was looked for.
                response = await page.goto(base + "/experiments/quick-smal")
                assert response is not None and response.status == 404
                assert "did you mean 'quick-small'" in await page.locator(".missing").inner_text()

                assert requested and all(u.startswith(base) for u in requested), requested

                # The HTML report's tables fit a laptop screen too.
                report = tmp_path / "report.html"
                await write_report(store, "quick-small", report)
                await page.goto(report.as_uri())
                right = await page.evaluate(
                    "document.querySelector('#cells').getBoundingClientRect().right"
                )
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert right <= 1366 and width <= 1366, (right, width)
                assert await page.locator("#samples .sample").count() == 8
                await page.screenshot(path=str(shots / "6-report.png"), full_page=True)
            finally:
                await browser.close()
    print(f"\nviewer screenshots: {shots}")
