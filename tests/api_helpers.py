"""The API under test: a client over a real store, with helpers that read like the app's calls."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from codi_eval.api import create_app, queries
from codi_eval.api.state import SERVICES, Services
from codi_eval.secrets import hash_token
from codi_eval.settings import Settings
from codi_eval.store.engine import Store

API = "/api/v1"
SECRET = "test-secret-key"

ClientFactory = Callable[[web.Application], Awaitable[TestClient]]


def base_settings(url: str, **changes: Any) -> Settings:
    # Built directly (not from the environment) so a developer's OPIK_* never leaks in.
    return replace(Settings(database_url=url, secret_key=SECRET, opik_config_file=None), **changes)


class Api:
    """A test client plus the store behind it, with helpers that read like the app's calls."""

    def __init__(self, client: TestClient, store: Store) -> None:
        self.client = client
        self.store = store

    async def user(self, name: str) -> dict[str, str]:
        """A new user; returns the Authorization header for their token."""
        token = f"tok-{name}-{uuid.uuid4().hex}"
        async with self.store.engine.begin() as conn:
            assert await queries.create_user(conn, name, hash_token(token)) is not None
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        resp = await self.client.request(method, API + path, headers=headers, **kwargs)
        text = await resp.text()
        assert resp.content_type == "application/json", (resp.status, text)
        return resp.status, json.loads(text)

    @property
    def services(self) -> Services:
        return self.client.app[SERVICES]

    async def count(self, model: type) -> int:
        async with self.store.session() as s:
            return int(await s.scalar(select(func.count()).select_from(model)))


async def _api(
    url: str, aiohttp_client: ClientFactory, *, pool_size: int = 10, **changes: Any
) -> AsyncIterator[Api]:
    store = await Store.open(url, pool_size=pool_size)
    try:
        client = await aiohttp_client(create_app(store, base_settings(url, **changes)))
        yield Api(client, store)
    finally:
        await store.close()


def assert_error(
    status: int, body: Any, expected_status: int, code: str | None = None, field: str | None = None
) -> None:
    assert status == expected_status, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    if field is not None:
        assert body["error"]["field"] == field, body
