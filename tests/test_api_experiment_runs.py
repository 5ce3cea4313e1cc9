"""The API's experiment runs: what the model wrote and why the judge scored it, for every
authenticated user (experiments are shared; users' own traces stay private), and the viewer
is never mounted by `serve`'s app. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from codi_eval.analysis.outputs import run_outputs
from tests.api_helpers import Api, ClientFactory, _api, assert_error
from tests.view_helpers import CELLS, run_small, summarize_one


@pytest.fixture
async def api(store_url: str, aiohttp_client: ClientFactory) -> AsyncIterator[Api]:
    async for a in _api(store_url, aiohttp_client):
        yield a


@pytest.fixture(autouse=True)
def no_opik(monkeypatch: pytest.MonkeyPatch) -> None:
    import codi_eval.opik_sync

    async def record(*_: Any, **__: Any) -> str:
        return "recorded"

    monkeypatch.setattr(codi_eval.opik_sync, "sync_outbox", record)


async def test_any_user_reads_an_experiments_runs_with_summaries_and_reasons(
    api: Api, tmp_path: Path
) -> None:
    exp_id = await run_small(api.store, tmp_path, n=3)
    alice, bob = await api.user("alice"), await api.user("bob")
    status, body = await api.call(
        "GET", f"/experiments/quick-small/runs?cell={quote(CELLS[3])}&page_size=2", alice
    )
    assert status == 200, body
    assert body["experiment_id"] == exp_id and body["total"] == 3 and len(body["runs"]) == 2
    first = body["runs"][0]
    assert first["cell"] == CELLS[3] and first["summary"] and first["judge_reason"]
    assert 0 <= first["summary_quality"] <= 1
    status, page2 = await api.call(
        "GET", f"/experiments/{exp_id}/runs?cell={quote(CELLS[3])}&page=2&page_size=2", bob
    )
    assert status == 200 and len(page2["runs"]) == 1

    [wanted] = await run_outputs(api.store, "quick-small", CELLS[3], "base64:b64encode")
    status, detail = await api.call("GET", f"/experiments/{exp_id}/runs/{wanted.run_id}", bob)
    assert status == 200, detail
    run = detail["run"]
    assert run["code"].startswith("def b64encode") and run["summary"] == wanted.summary
    assert [it["added_entities"] for it in run["iterations"]][1] == ["b64encode", "s", "altchars"]
    assert run["judge_reason"] == wanted.judge_reason
    roots = [s["name"] for s in detail["spans"]]
    assert roots[0] == "chain_of_density" and "judge: summary_quality" in roots
    assert [c["name"] for c in detail["spans"][0]["children"]][:3] == [
        "iteration 1", "iteration 2", "iteration 3"
    ]  # fmt: skip


async def test_unknown_cells_runs_and_experiments_are_404_with_the_field(
    api: Api, tmp_path: Path
) -> None:
    await run_small(api.store, tmp_path, n=2)
    user = await api.user("carol")
    status, body = await api.call(
        "GET", "/experiments/quick-small/runs?cell=cod_iteration%402%2Fd4%2Foffline", user
    )
    assert_error(status, body, 404, "not_found", "cell")
    assert "did you mean 'cod_iteration@2/d3/offline'" in body["error"]["message"]
    assert "store" not in body["error"]["message"] and "sqlite" not in body["error"]["message"]
    status, body = await api.call("GET", "/experiments/quick-small/runs?item=nope", user)
    assert_error(status, body, 404, "not_found", "item")
    for run_id in ("not-a-uuid", "01a234bc-3b60-721a-af38-705dee316448"):
        status, body = await api.call("GET", f"/experiments/quick-small/runs/{run_id}", user)
        assert_error(status, body, 404, "not_found", "run_id")
    status, body = await api.call("GET", "/experiments/nope/runs", user)
    assert_error(status, body, 404, "not_found", "experiment_id")
    status, body = await api.call("GET", "/experiments/quick-small/runs")
    assert status == 401


async def test_serves_app_has_no_viewer_and_users_traces_stay_private(api: Api) -> None:
    trace_id = await summarize_one(api.store)
    resp = await api.client.get("/")
    assert resp.status == 404 and resp.content_type == "application/json"
    resp = await api.client.get(f"/traces/{trace_id}")
    assert resp.status == 404 and resp.content_type == "application/json"
    status, _ = await api.call("GET", f"/traces/{trace_id}", await api.user("dave"))
    assert status == 404
