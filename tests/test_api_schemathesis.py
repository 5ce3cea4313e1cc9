"""Property-based API testing: schemathesis drives every operation in /openapi.json.

The real app runs on a local port (in a thread with its own event loop) over its own
PostgreSQL database, seeded with a user who opted in, a few summaries and an experiment.
Schemathesis generates valid and invalid requests from the published document and
checks that no response is a 5xx and every response matches the document (status
codes, content types, bodies, and that auth is really enforced).
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from codi_eval.api import api_document, create_app, queries
from codi_eval.secrets import hash_token
from codi_eval.settings import Settings
from codi_eval.store.engine import Store, upgrade
from tests.cli_helpers import run_cli

TOKEN = "schemathesis-token-0123456789abcdef"
# Conformance, not quotas, is under test here: one token sends every generated request.
SETTINGS = Settings(
    database_url="",
    secret_key="st-secret",
    opik_config_file=None,
    api_user_requests_per_minute=1e6,
    api_user_summaries_per_minute=1e6,
    api_user_concurrent_summaries=64,
)
FIB = "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)\n"


@dataclass
class Server:
    base_url: str
    auth: dict[str, str]
    trace_ids: list[str]
    experiment_id: str
    cells: list[str]


class _AppThread(threading.Thread):
    """The app on 127.0.0.1:<free port> in a background thread, until stop()."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.ready = threading.Event()
        self.port = 0
        self.syncs = 0
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by the fixture instead of hanging it
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        from aiohttp import web

        import codi_eval.opik_sync

        # Generated PATCHes set random Opik keys: record syncs instead of calling Opik Cloud.
        async def no_sync(*args: Any, **kwargs: Any) -> str:
            self.syncs += 1
            return "recorded"

        real_sync = codi_eval.opik_sync.sync_outbox
        codi_eval.opik_sync.sync_outbox = no_sync  # type: ignore[assignment]
        try:
            await self._serve_app(web)
        finally:
            codi_eval.opik_sync.sync_outbox = real_sync

    async def _serve_app(self, web: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        store = await Store.open(self.url)
        settings = replace(SETTINGS, database_url=self.url)
        runner = web.AppRunner(create_app(store, settings), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        async with store.engine.begin() as conn:
            user_id = await queries.create_user(conn, "schemathesis", hash_token(TOKEN))
            assert user_id is not None
            await queries.update_user(conn, user_id, {"opik_enabled": True})
        self.ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()
            await store.close()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=30)


def _post(base_url: str, path: str, body: dict[str, Any], auth: dict[str, str]) -> Any:
    request = urllib.request.Request(
        base_url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={**auth, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def server(pg: Any) -> Iterator[Server]:
    url = pg.create("codi_api_st")
    upgrade(url)
    ran = run_cli("run", "experiments/quickstart.yaml", "--json", db_url=url)
    assert ran.returncode == 0, ran.stderr
    experiment = json.loads(ran.stdout)
    thread = _AppThread(url)
    thread.start()
    assert thread.ready.wait(60), "the API did not start"
    if thread.error is not None:
        raise thread.error
    base_url = f"http://127.0.0.1:{thread.port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    trace_ids = [
        _post(base_url, "/api/v1/summarize/code", {"code": FIB, "density_iterations": d}, auth)[
            "trace_id"
        ]
        for d in (1, 3)
    ]
    yield Server(
        base_url,
        auth,
        trace_ids,
        experiment["experiment_id"],
        [c["key"] for c in experiment["cells"]],
    )
    thread.stop()


# Loaded eagerly from the same dict the server publishes (the lazy fixture loader of
# schemathesis 4.32 touches pytest internals that pytest 9 renamed), so every operation
# is its own test; test_the_served_document_is_the_one_under_test ties the two together.
schema = schemathesis.openapi.from_dict(api_document(SETTINGS))


def test_the_served_document_is_the_one_under_test(server: Server) -> None:
    with urllib.request.urlopen(server.base_url + "/api/v1/openapi.json", timeout=10) as resp:
        served = json.loads(resp.read())
    assert served == json.loads(json.dumps(api_document(SETTINGS)))


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_every_operation_conforms_and_never_5xx(case: Any, server: Server) -> None:
    # Every check, positive data acceptance included: the models a summary may name are
    # the server's offered list, published as an enum.
    case.call_and_validate(base_url=server.base_url, headers=server.auth)


def test_detail_responses_with_real_ids_match_the_schema(server: Server) -> None:
    api_schema = schema
    # Random ids only reach the 404s; these calls hit the 200 bodies of the detail routes.
    p = "/api/v1"
    cases = [
        *(
            api_schema[p + "/traces/{trace_id}"]["GET"].Case(path_parameters={"trace_id": t})
            for t in server.trace_ids
        ),
        api_schema[p + "/experiments/{experiment_id}"]["GET"].Case(
            path_parameters={"experiment_id": server.experiment_id}
        ),
        api_schema[p + "/experiments/{experiment_id}/compare"]["GET"].Case(
            path_parameters={"experiment_id": server.experiment_id},
            query={"a": server.cells[0], "b": server.cells[-1], "metric": "rouge_l"},
        ),
        api_schema[p + "/prompts/{name}"]["GET"].Case(path_parameters={"name": "cod_iteration"}),
        api_schema[p + "/traces"]["GET"].Case(query={"page_size": 100}),
    ]
    for case in cases:
        response = case.call_and_validate(base_url=server.base_url, headers=server.auth)
        assert response.status_code == 200, response.text
