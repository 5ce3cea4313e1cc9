"""The HTTP API the CODI app calls, against real PostgreSQL (and SQLite where cheap).

Each test reads as a promise to the app: opt-in tracing stores nothing for an opted-out
user, one user never sees another's traces, every error has the same shape, the Opik key
is write-only, and lists cost a fixed number of SQL statements.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select

from codi_eval.api import create_app, queries
from codi_eval.api.operations import OPERATIONS
from codi_eval.secrets import decrypt, hash_token
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from codi_eval.store.models import Evaluation, OutboxEntry, Span, Trace, User
from tests.api_helpers import (
    API,
    SECRET,
    Api,
    ClientFactory,
    _api,
    assert_error,
    base_settings,
)
from tests.cli_helpers import run_cli

OPIK_KEY = "opik-key-SHOULD-NEVER-LEAK-42"
FIB = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n"


@pytest.fixture
async def api(store_url: str, aiohttp_client: ClientFactory) -> AsyncIterator[Api]:
    """The API over SQLite and over PostgreSQL."""
    async for a in _api(store_url, aiohttp_client):
        yield a


@pytest.fixture
async def pg_api(pg_store_url: str, aiohttp_client: ClientFactory) -> AsyncIterator[Api]:
    """The API over PostgreSQL only."""
    async for a in _api(pg_store_url, aiohttp_client):
        yield a


@pytest.fixture(autouse=True)
def opik_syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """No test talks to a real Opik: background syncs are recorded instead of sent."""
    import codi_eval.opik_sync

    calls: list[int] = []

    async def record(store: Store, settings: Settings, **_: Any) -> str:
        calls.append(1)
        return "recorded"

    monkeypatch.setattr(codi_eval.opik_sync, "sync_outbox", record)
    return calls


async def seed_traces(store: Store, user_id: int, specs: list[dict[str, Any]]) -> list[uuid.UUID]:
    """Insert traces directly (one evaluation each) so listing can be tested precisely."""
    ids = []
    async with store.transaction() as s:
        for spec in specs:
            tid = uuid.uuid4()
            ids.append(tid)
            await s.execute(
                insert(Trace).values(
                    id=tid,
                    user_id=user_id,
                    trace_type=spec.get("trace_type", "summarization"),
                    name=spec.get("name", "t"),
                    start_time=spec["start_time"],
                    duration_ms=5,
                    input_data={"code": "x"},
                    output_data={"summary": "y"},
                    meta_data={"model": "m"},
                    tags=spec.get("tags", []),
                    status="ok",
                    created_at=spec["start_time"],
                )
            )
            await s.execute(
                insert(Evaluation).values(
                    id=uuid.uuid4(),
                    trace_id=tid,
                    metric_name="summary_quality",
                    score=spec.get("score", 0.5),
                    reason="r",
                    status="ok",
                )
            )
    return ids


# ------------------------------------------------------------------------- public routes


async def test_health_needs_no_token_and_checks_the_database(api: Api) -> None:
    status, body = await api.call("GET", "/health")
    assert (status, body) == (200, {"status": "ok", "database": "ok"})


async def test_health_answers_503_when_the_database_is_down(aiohttp_client: ClientFactory) -> None:
    # A store pointing at a closed port: the check must fail fast and say so, not 500.
    store = Store("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    # No prompts directory: start-up seeding is skipped (it would need the database).
    settings = base_settings(store.url, config_dir=Path("/nonexistent"))
    client = await aiohttp_client(create_app(store, settings))
    resp = await client.get(API + "/health")
    assert resp.status == 503
    assert await resp.json() == {"status": "unavailable", "database": "unreachable"}
    await store.close()


async def test_openapi_is_public_31_and_describes_every_route(api: Api) -> None:
    status, doc = await api.call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in api.client.app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    published = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == published
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "200" in op["responses"], (method, path)
            errors = [r for code, r in op["responses"].items() if code.startswith(("4", "5"))]
            assert errors, (method, path)
            for r in errors:
                schema = r["content"]["application/json"]["schema"]
                assert schema in (
                    {"$ref": "#/components/schemas/Error"},
                    {"$ref": "#/components/schemas/Health"},
                )
            public = op.get("security") == []
            assert public == path.endswith(("/health", "/openapi.json"))
            if not public:
                assert "401" in op["responses"]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


# ------------------------------------------------------------------------------- auth


async def test_every_route_but_health_and_openapi_needs_a_valid_token(api: Api) -> None:
    for op in OPERATIONS.values():
        if op.public:
            continue
        path = (
            op.path.replace("{trace_id}", str(uuid.uuid4()))
            .replace("{experiment_id}", "x")
            .replace("{run_id}", str(uuid.uuid4()))
            .replace("{name}", "x")
        )
        for headers in (
            None,
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Basic abc"},
            {"Authorization": "Bearer"},
        ):
            resp = await api.client.request(op.method, API + path, headers=headers, json={})
            body = await resp.json()
            assert_error(resp.status, body, 401, "unauthorized")
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_unknown_route_is_404_and_wrong_method_405_in_the_error_shape(api: Api) -> None:
    assert_error(*await api.call("GET", "/nope"), 404, "not_found")
    resp = await api.client.delete(API + "/traces")
    assert_error(resp.status, await resp.json(), 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"]


# ------------------------------------------------------------------------ opik settings


async def test_tracing_is_off_until_the_user_opts_in(api: Api) -> None:
    alice = await api.user("alice")
    assert await api.call("GET", "/users/me/opik-settings", alice) == (
        200,
        {"opik_enabled": False, "opik_workspace": None, "has_api_key": False},
    )
    status, body = await api.call(
        "PATCH",
        "/users/me/opik-settings",
        alice,
        json={"opik_enabled": True, "opik_workspace": "my-workspace"},
    )
    assert (status, body) == (
        200,
        {"opik_enabled": True, "opik_workspace": "my-workspace", "has_api_key": False},
    )
    # A partial PATCH leaves the other fields alone; null clears the workspace.
    status, body = await api.call(
        "PATCH", "/users/me/opik-settings", alice, json={"opik_workspace": None}
    )
    assert body == {"opik_enabled": True, "opik_workspace": None, "has_api_key": False}
    assert (await api.call("GET", "/users/me/opik-settings", alice))[1] == body


async def test_opik_api_key_is_write_only_and_encrypted(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = await api.user("alice")
    responses = [
        await api.call(
            "PATCH",
            "/users/me/opik-settings",
            alice,
            json={"opik_api_key": OPIK_KEY, "opik_enabled": True},
        )
    ]
    responses.append(await api.call("GET", "/users/me/opik-settings", alice))
    responses.append(await api.call("POST", "/summarize/code", alice, json={"code": FIB}))
    responses.append(await api.call("GET", "/traces", alice))
    responses.append(await api.call("GET", f"/traces/{responses[2][1]['trace_id']}", alice))
    responses.append(
        await api.call("PATCH", "/users/me/opik-settings", alice, json={"opik_api_key": 5})
    )
    assert responses[0] == (
        200,
        {"opik_enabled": True, "opik_workspace": None, "has_api_key": True},
    )
    assert responses[1][1]["has_api_key"] is True
    for _status, body in responses:
        assert OPIK_KEY not in json.dumps(body)
    assert OPIK_KEY not in caplog.text
    token = alice["Authorization"].split()[1]
    assert token not in caplog.text
    async with api.store.session() as s:
        stored = await s.scalar(select(User.opik_api_key_encrypted).where(User.name == "alice"))
    assert stored and OPIK_KEY not in stored and decrypt(stored, SECRET) == OPIK_KEY
    # null removes the key.
    status, body = await api.call(
        "PATCH", "/users/me/opik-settings", alice, json={"opik_api_key": None}
    )
    assert body["has_api_key"] is False


async def test_storing_an_opik_key_without_a_secret_key_is_a_clear_400(
    pg_store_url: str, aiohttp_client: ClientFactory
) -> None:
    async for api in _api(pg_store_url, aiohttp_client, secret_key=None):
        alice = await api.user("alice")
        status, body = await api.call(
            "PATCH", "/users/me/opik-settings", alice, json={"opik_api_key": OPIK_KEY}
        )
        assert_error(status, body, 400, "secret_key_missing", "opik_api_key")
        assert "CODI_EVAL_SECRET_KEY" in body["error"]["message"]
        assert OPIK_KEY not in json.dumps(body)
        # Opting in still works without a secret key.
        status, body = await api.call(
            "PATCH", "/users/me/opik-settings", alice, json={"opik_enabled": True}
        )
        assert status == 200 and body["has_api_key"] is False


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ('{"opik_enabled": true', "invalid_json", None),
        ("[1, 2]", "invalid_body", None),
        ("", "invalid_json", None),
        ('{"opik_enabled": NaN}', "invalid_json", None),
        ('{"opik_enabled": "yes"}', "invalid_type", "opik_enabled"),
        ('{"opik_enabled": 1}', "invalid_type", "opik_enabled"),
        ('{"opik_workspace": 7}', "invalid_type", "opik_workspace"),
        ('{"opik_workspace": ""}', "invalid_value", "opik_workspace"),
        ('{"opik_enabled": true, "admin": true}', "unknown_field", "admin"),
        ('{"opik_workspace": "a\\u0000b"}', "invalid_value", "opik_workspace"),
        ('{"opik_workspace": "\\ud800"}', "invalid_value", "opik_workspace"),
    ],
)
async def test_bad_settings_bodies_are_400_naming_the_problem(
    pg_api: Api, payload: str, code: str, field: str | None
) -> None:
    alice = await pg_api.user("alice")
    status, body = await pg_api.call(
        "PATCH",
        "/users/me/opik-settings",
        {**alice, "Content-Type": "application/json"},
        data=payload,
    )
    assert_error(status, body, 400, code, field)
    if code == "invalid_json" and payload:
        assert "line 1 column" in body["error"]["message"] or "NaN" in body["error"]["message"]


async def test_a_300_kib_body_is_413_in_the_error_shape(pg_api: Api) -> None:
    alice = await pg_api.user("alice")
    big = json.dumps({"code": "x" * (300 * 1024)})
    status, body = await pg_api.call(
        "POST", "/summarize/code", {**alice, "Content-Type": "application/json"}, data=big
    )
    assert_error(status, body, 413, "body_too_large")

    # Chunked (no Content-Length) is cut off by the server's limit too.
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536].encode()

    status, body = await pg_api.call(
        "POST", "/summarize/code", {**alice, "Content-Type": "application/json"}, data=chunks()
    )
    assert_error(status, body, 413, "body_too_large")
    assert await pg_api.count(Trace) == 0


# ---------------------------------------------------------------------------- summarize


async def test_seed_workflow_opt_in_summarize_list_and_open_the_trace(api: Api) -> None:
    alice = await api.user("alice")
    status, _ = await api.call(
        "PATCH", "/users/me/opik-settings", alice, json={"opik_enabled": True}
    )
    assert status == 200
    status, result = await api.call(
        "POST",
        "/summarize/code",
        alice,
        json={"code": FIB, "instruction": "Explain the algorithm", "density_iterations": 2},
    )
    assert status == 200, result
    assert set(result) == {"summary", "trace_id", "quality_score", "quality_reason"}
    assert "fibonacci" in result["summary"]
    assert 0.0 <= result["quality_score"] <= 1.0 and result["quality_reason"]
    trace_id = result["trace_id"]
    assert uuid.UUID(trace_id).version == 7  # the same id Opik would get

    status, page = await api.call(
        "GET", "/traces?page=1&page_size=20&trace_type=summarization", alice
    )
    assert status == 200 and page["total"] == 1 and (page["page"], page["page_size"]) == (1, 20)
    [trace] = page["traces"]
    assert trace["id"] == trace_id and trace["trace_type"] == "summarization"
    assert trace["name"].startswith("Code Summary: Explain the algorithm")
    assert (
        trace["input_data"]["code"] == FIB
        and trace["input_data"]["instruction"] == "Explain the algorithm"
    )
    assert trace["output_data"] == {"summary": result["summary"]}
    assert trace["meta_data"]["model"] == "offline" and "api" in trace["tags"]
    assert trace["start_time"].endswith("Z") and trace["duration_ms"] >= 0
    quality = trace["evaluations"][0]
    assert quality["metric_name"] == "summary_quality"
    assert quality["score"] == pytest.approx(result["quality_score"])
    assert quality["reason"] == result["quality_reason"]

    status, detail = await api.call("GET", f"/traces/{trace_id}", alice)
    assert status == 200 and detail["id"] == trace_id and detail["status"] == "ok"
    roots = {s["name"]: s for s in detail["spans"]}
    cod = roots["chain_of_density"]
    assert [c["name"] for c in cod["children"]] == ["iteration 1", "iteration 2", "final"]
    for child in cod["children"]:
        assert child["type"] == "llm" and child["model"] == "offline"
        assert child["parent_span_id"] == cod["id"] and child["children"] == []
        assert child["tokens"]["total"] is not None and child["start_time"] <= child["end_time"]
    judge = roots["judge: summary_quality"]
    assert judge["type"] == "judge" and judge["output_data"]["score"] == pytest.approx(
        result["quality_score"]
    )
    assert any(
        e["metric_name"] == "summary_quality" and e["span_id"] == judge["id"]
        for e in detail["evaluations"]
    )

    status, stats = await api.call("GET", "/traces/stats", alice)
    assert stats["total_traces"] == 1 and stats["by_type"] == {"summarization": 1}
    assert stats["average_quality"] == pytest.approx(result["quality_score"])
    assert stats["total_tokens"] > 0 and stats["total_cost"] == 0.0


async def test_opted_out_summarize_returns_no_trace_and_stores_nothing(api: Api) -> None:
    bob = await api.user("bob")
    status, result = await api.call("POST", "/summarize/code", bob, json={"code": FIB})
    assert status == 200 and result["summary"] and result["trace_id"] is None
    assert result["quality_score"] is not None  # still judged, just not recorded
    await asyncio.sleep(0.05)  # nothing is queued behind the response either
    for model in (Trace, Span, Evaluation, OutboxEntry):
        assert await api.count(model) == 0, model.__name__
    assert (await api.call("GET", "/traces", bob))[1]["total"] == 0
    assert (await api.call("GET", "/traces/stats", bob))[1] == {
        "total_traces": 0,
        "average_quality": None,
        "by_type": {},
        "total_tokens": 0,
        "total_cost": 0.0,
    }


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({}, "missing_field", "code"),
        ({"code": ""}, "invalid_value", "code"),
        ({"code": "  \n\t"}, "invalid_value", "code"),
        ({"code": 42}, "invalid_type", "code"),
        ({"code": FIB, "density_iterations": 0}, "invalid_value", "density_iterations"),
        ({"code": FIB, "density_iterations": 6}, "invalid_value", "density_iterations"),
        ({"code": FIB, "density_iterations": "2"}, "invalid_type", "density_iterations"),
        ({"code": FIB, "density_iterations": True}, "invalid_type", "density_iterations"),
        ({"code": FIB, "density_iterations": 2.5}, "invalid_type", "density_iterations"),
        ({"code": FIB, "model": "no-such-model"}, "invalid_value", "model"),
        ({"code": FIB, "temperature": 0.2}, "unknown_field", "temperature"),
    ],
)
async def test_bad_summarize_requests_are_400_naming_the_field(
    pg_api: Api, body: dict[str, Any], code: str, field: str
) -> None:
    alice = await pg_api.user("alice")
    await pg_api.call("PATCH", "/users/me/opik-settings", alice, json={"opik_enabled": True})
    assert_error(*await pg_api.call("POST", "/summarize/code", alice, json=body), 400, code, field)
    assert await pg_api.count(Trace) == 0


@pytest.mark.parametrize(
    ("kind", "status", "retry_after"),
    [("rate_limited", 429, "7"), ("timeout", 504, None), ("server_error", 502, None)],
)
async def test_model_failures_map_to_429_502_504(
    pg_api: Api, monkeypatch: pytest.MonkeyPatch, kind: str, status: int, retry_after: str | None
) -> None:
    from codi_eval.models.base import ModelError
    from codi_eval.models.offline import OfflineModel

    async def failing(self: Any, request: Any) -> Any:
        raise ModelError(
            kind, "provider said no", status=status, retry_after_s=7 if retry_after else None
        )

    monkeypatch.setattr(OfflineModel, "generate", failing)
    alice = await pg_api.user("alice")
    resp = await pg_api.client.post(API + "/summarize/code", json={"code": FIB}, headers=alice)
    assert_error(resp.status, await resp.json(), status)
    assert resp.headers.get("Retry-After") == retry_after


async def test_opted_in_summarize_schedules_opik_sync_without_waiting(
    pg_store_url: str, aiohttp_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import codi_eval.opik_sync

    started, release = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def slow_sync(store: Store, settings: Settings, **_: Any) -> Any:
        calls.append(1)
        started.set()
        await release.wait()  # Opik is slow: the response must not wait for it
        return "ok"

    monkeypatch.setattr(codi_eval.opik_sync, "sync_outbox", slow_sync)
    async for api in _api(pg_store_url, aiohttp_client, opik_url="http://127.0.0.1:9/api"):
        alice, bob = await api.user("alice"), await api.user("bob")
        await api.call("PATCH", "/users/me/opik-settings", alice, json={"opik_enabled": True})
        status, result = await asyncio.wait_for(
            api.call("POST", "/summarize/code", alice, json={"code": FIB}), timeout=30
        )
        assert status == 200
        await asyncio.wait_for(started.wait(), timeout=5)
        async with api.store.session() as s:
            row = await s.scalar(select(OutboxEntry))
        assert row is not None and row.entity_id == result["trace_id"] and row.kind == "trace"
        # An opted-out user's summary is neither stored nor queued for Opik.
        await api.call("POST", "/summarize/code", bob, json={"code": FIB})
        assert await api.count(OutboxEntry) == 1
        release.set()
    assert calls


# ------------------------------------------------------------------------------ traces


async def test_another_users_trace_is_404_exactly_like_a_missing_one(api: Api) -> None:
    alice, mallory = await api.user("alice"), await api.user("mallory")
    await api.call("PATCH", "/users/me/opik-settings", alice, json={"opik_enabled": True})
    await api.call("PATCH", "/users/me/opik-settings", mallory, json={"opik_enabled": True})
    trace_id = (await api.call("POST", "/summarize/code", alice, json={"code": FIB}))[1]["trace_id"]
    theirs = await api.call("GET", f"/traces/{trace_id}", mallory)
    missing = await api.call("GET", f"/traces/{uuid.uuid4()}", mallory)
    assert_error(*theirs, 404, "not_found", "trace_id")
    assert theirs == missing
    assert (await api.call("GET", "/traces", mallory))[1]["total"] == 0
    assert (await api.call("GET", "/traces/stats", mallory))[1]["total_traces"] == 0
    assert (await api.call("GET", f"/traces/{trace_id}", alice))[0] == 200


async def test_trace_list_pages_newest_first_and_filters(api: Api) -> None:
    alice, bob = await api.user("alice"), await api.user("bob")
    async with api.store.session() as s:
        alice_id = await s.scalar(select(User.id).where(User.name == "alice"))
        bob_id = await s.scalar(select(User.id).where(User.name == "bob"))
    t0 = datetime(2026, 2, 6, 1, 0, tzinfo=UTC)
    ids = await seed_traces(
        api.store,
        alice_id,
        [
            {
                "start_time": t0 + timedelta(minutes=i),
                "trace_type": "summarization" if i % 2 else "code_generation",
                "tags": ["api", "even"] if i % 2 == 0 else ["api"],
                "score": i / 10,
            }
            for i in range(7)
        ],
    )
    await seed_traces(api.store, bob_id, [{"start_time": t0 + timedelta(hours=1)}])

    status, p1 = await api.call("GET", "/traces?page=1&page_size=3", alice)
    assert status == 200 and p1["total"] == 7 and len(p1["traces"]) == 3
    assert [t["id"] for t in p1["traces"]] == [str(i) for i in ids[6:3:-1]]
    assert p1["traces"][0]["evaluations"] == [
        {"metric_name": "summary_quality", "score": 0.6, "reason": "r", "span_id": None}
    ]
    p3 = (await api.call("GET", "/traces?page=3&page_size=3", alice))[1]
    assert [t["id"] for t in p3["traces"]] == [str(ids[0])]
    assert (await api.call("GET", "/traces?page=4&page_size=3", alice))[1]["traces"] == []

    typed = (await api.call("GET", "/traces?trace_type=summarization", alice))[1]
    assert typed["total"] == 3 and {t["trace_type"] for t in typed["traces"]} == {"summarization"}
    tagged = (await api.call("GET", "/traces?tag=even", alice))[1]
    assert [t["id"] for t in tagged["traces"]] == [str(ids[i]) for i in (6, 4, 2, 0)]
    assert (await api.call("GET", "/traces?tag=nope", alice))[1]["total"] == 0
    window = (
        await api.call(
            "GET", "/traces?since=2026-02-06T01:02:00Z&until=2026-02-06T02:04:00%2B01:00", alice
        )
    )[1]
    assert [t["id"] for t in window["traces"]] == [str(ids[3]), str(ids[2])]
    naive = (await api.call("GET", "/traces?since=2026-02-06T01:05:00", alice))[1]
    assert naive["total"] == 2  # no offset means UTC
    # RFC 3339 edge cases are valid bounds: a leap second, and the very first instant.
    leap = (await api.call("GET", "/traces?until=2026-02-06T01:01:60Z", alice))[1]
    assert leap["total"] == 2
    first = (await api.call("GET", "/traces?since=0001-01-01T00:00:00%2B23:59", alice))[1]
    assert first["total"] == 7
    assert (await api.call("GET", "/traces", bob))[1]["total"] == 1
    stats = (await api.call("GET", "/traces/stats", alice))[1]
    assert stats["by_type"] == {"summarization": 3, "code_generation": 4}
    assert stats["average_quality"] == pytest.approx(sum(i / 10 for i in range(7)) / 7)


async def test_a_trace_list_is_three_statements_whatever_the_page_size(pg_api: Api) -> None:
    alice = await pg_api.user("alice")
    async with pg_api.store.session() as s:
        alice_id = await s.scalar(select(User.id).where(User.name == "alice"))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await seed_traces(
        pg_api.store, alice_id, [{"start_time": t0 + timedelta(seconds=i)} for i in range(60)]
    )
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(pg_api.store.engine.sync_engine, "before_cursor_execute", record)
    try:
        for size in (1, 50):
            statements.clear()
            status, body = await pg_api.call("GET", f"/traces?page_size={size}", alice)
            assert status == 200 and len(body["traces"]) == size
            data = [s for s in statements if "users" not in s]  # the token lookup is separate
            assert len(data) == 3, data
    finally:
        event.remove(pg_api.store.engine.sync_engine, "before_cursor_execute", record)


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/traces/not-a-uuid", 404, "trace_id"),
        ("/traces/1234", 404, "trace_id"),
        ("/traces/%00", 400, "trace_id"),
        ("/traces?page=0", 400, "page"),
        ("/traces?page=-1", 400, "page"),
        ("/traces?page=abc", 400, "page"),
        ("/traces?page=99999999999999999999999", 400, "page"),
        ("/traces?page=1e3", 400, "page"),
        ("/traces?page_size=0", 400, "page_size"),
        ("/traces?page_size=101", 400, "page_size"),
        ("/traces?page=1&page=2", 400, "page"),
        ("/traces?since=yesterday", 400, "since"),
        ("/traces?until=2026-13-01T00:00:00Z", 400, "until"),
        ("/traces?tag=%00", 400, "tag"),
        ("/traces?trace_type=" + "x" * 51, 400, "trace_type"),
        ("/traces?pagesize=5", 400, "pagesize"),
        ("/traces/stats?x=1", 400, "x"),
        ("/experiments/%00", 400, "experiment_id"),
        ("/experiments/no-such-experiment", 404, "experiment_id"),
        ("/experiments/" + str(uuid.uuid4()), 404, "experiment_id"),
        ("/experiments/x/compare", 400, "a"),
        ("/prompts/%00", 400, "name"),
        ("/prompts/no_such_prompt", 404, "name"),
    ],
)
async def test_malformed_ids_and_parameters_are_4xx_never_500(
    pg_api: Api, path: str, status: int, field: str
) -> None:
    alice = await pg_api.user("alice")
    assert_error(*await pg_api.call("GET", path, alice), status, field=field)


async def test_unexpected_errors_are_500_in_the_shape_and_logged_server_side(
    pg_api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail: table xyz exploded")

    monkeypatch.setattr(queries, "trace_page", broken)
    alice = await pg_api.user("alice")
    with caplog.at_level(logging.ERROR, logger="codi_eval.api"):
        status, body = await pg_api.call("GET", "/traces", alice)
    assert_error(status, body, 500, "internal_error")
    assert "exploded" not in json.dumps(body) and "xyz" not in json.dumps(body)
    assert "exploded" in caplog.text and "GET /api/v1/traces" in caplog.text
    assert alice["Authorization"].split()[1] not in caplog.text


# -------------------------------------------------------------------- experiments, prompts


async def test_experiments_cells_and_paired_comparison(pg_api: Api) -> None:
    from codi_eval.analysis.cells import cell_results
    from codi_eval.analysis.stats import paired_comparison
    from codi_eval.store.models import Run

    result = run_cli("run", "experiments/quickstart.yaml", "--json", db_url=pg_api.store.url)
    assert result.returncode == 0, result.stderr
    experiment_id = json.loads(result.stdout)["experiment_id"]
    alice = await pg_api.user("alice")

    status, listing = await pg_api.call("GET", "/experiments", alice)
    assert status == 200
    [exp] = listing["experiments"]
    assert exp["id"] == experiment_id and exp["name"] == "quickstart" and exp["cells"] == 4
    assert exp["runs"] == {"total": 80, "succeeded": 80, "failed": 0, "pending": 0}

    status, detail = await pg_api.call("GET", f"/experiments/{experiment_id}", alice)
    assert status == 200 and detail["spec"]["matrix"]["density_iterations"] == [1, 3]
    expected = [c.to_dict() for c in await cell_results(pg_api.store, uuid.UUID(experiment_id))]
    assert detail["cells"] == json.loads(json.dumps(expected))
    # By name too, as the CLI accepts.
    assert (await pg_api.call("GET", "/experiments/quickstart", alice))[1]["id"] == experiment_id

    a, b = "cod_iteration@1/d1/offline", "cod_iteration@2/d3/offline"
    status, cmp = await pg_api.call(
        "GET", f"/experiments/{experiment_id}/compare", alice, params={"a": a, "b": b}
    )
    assert status == 200, cmp
    async with pg_api.store.session() as s:
        rows = (
            await s.execute(
                select(Run.cell_id, Run.dataset_item_id, Run.repeat, Run.judge_score).where(
                    Run.experiment_id == uuid.UUID(experiment_id)
                )
            )
        ).all()
        cells = await queries.cells_by_key(await s.connection(), uuid.UUID(experiment_id))
    # Same items in the same order: the bootstrap is seeded, so the figures must match exactly.
    by = {k: sorted((str(i), r, v) for c, i, r, v in rows if c == cells[k]) for k in (a, b)}
    want = paired_comparison(by[a], by[b], metric="summary_quality", label_a=a, label_b=b).to_dict()
    assert cmp == json.loads(json.dumps(want))
    assert cmp["n"] == 20 and cmp["summary"] and cmp["label_b"] == b

    status, rouge = await pg_api.call(
        "GET",
        f"/experiments/{experiment_id}/compare",
        alice,
        params={"a": a, "b": b, "metric": "rouge_l"},
    )
    assert status == 200 and rouge["metric"] == "rouge_l" and rouge["n"] == 20
    assert_error(
        *await pg_api.call(
            "GET", f"/experiments/{experiment_id}/compare", alice, params={"a": a, "b": "nope"}
        ),
        404,
        "not_found",
        "b",
    )
    assert_error(
        *await pg_api.call(
            "GET",
            f"/experiments/{experiment_id}/compare",
            alice,
            params={"a": a, "b": b, "metric": "vibes"},
        ),
        404,
        "not_found",
        "metric",
    )
    assert_error(
        *await pg_api.call("GET", f"/experiments/{experiment_id}/compare", alice, params={"b": b}),
        400,
        "missing_parameter",
        "a",
    )


async def test_prompts_lists_every_version_and_one_name(api: Api) -> None:
    alice = await api.user("alice")
    status, body = await api.call("GET", "/prompts", alice)
    refs = [p["ref"] for p in body["prompts"]]
    assert status == 200 and {"cod_iteration@1", "cod_iteration@2", "cod_final@1"} <= set(refs)
    p = next(p for p in body["prompts"] if p["ref"] == "cod_iteration@2")
    assert (
        "{{code}}" in p["template"] and "code" in p["variables"] and len(p["template_hash"]) == 64
    )
    status, one = await api.call("GET", "/prompts/cod_iteration", alice)
    assert [x["version"] for x in one["prompts"]] == [1, 2]


# ------------------------------------------------------------------------------ the CLI


def test_users_create_prints_a_token_once_and_stores_only_its_hash(pg_store_url: str) -> None:
    created = run_cli("users", "create", "carol", "--json", db_url=pg_store_url)
    assert created.returncode == 0, created.stderr
    data = json.loads(created.stdout)
    token = data["token"]
    assert data["name"] == "carol" and len(token) >= 40
    again = run_cli("users", "create", "carol", db_url=pg_store_url)
    assert again.returncode == 2 and "already exists" in again.stderr
    listed = run_cli("users", "list", "--json", db_url=pg_store_url)
    assert listed.returncode == 0 and token not in listed.stdout
    assert json.loads(listed.stdout)[0]["name"] == "carol"

    async def check() -> None:
        store = await Store.open(pg_store_url)
        try:
            async with store.session() as s:
                stored = await s.scalar(select(User.token_hash).where(User.name == "carol"))
            assert stored == hash_token(token) and token not in stored
        finally:
            await store.close()

    asyncio.run(check())
