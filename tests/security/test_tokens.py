"""Attack 5 (tokens): tokens never expired and could not be revoked or rotated."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select, update

from codi_eval.store.models import User, utcnow
from tests.api_helpers import Api, _api, assert_error
from tests.cli_helpers import run_cli


def _token(done: Any) -> str:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["token"]


async def test_revoked_rotated_and_expired_tokens_get_401(
    pg_store_url: str, aiohttp_client: Any
) -> None:
    first = _token(run_cli("users", "create", "ada", "--json", db_url=pg_store_url))
    async for api in _api(pg_store_url, aiohttp_client):
        auth = {"Authorization": f"Bearer {first}"}
        assert (await api.call("GET", "/traces", auth))[0] == 200

        second = _token(run_cli("users", "rotate", "ada", "--json", db_url=pg_store_url))
        assert_error(*await api.call("GET", "/traces", auth), 401, "unauthorized")
        auth = {"Authorization": f"Bearer {second}"}
        assert (await api.call("GET", "/traces", auth))[0] == 200

        revoked = run_cli("users", "revoke", "ada", db_url=pg_store_url)
        assert revoked.returncode == 0, revoked.stderr
        status, body = await api.call("GET", "/traces", auth)
        assert_error(status, body, 401, "unauthorized")
        assert "revoked" in body["error"]["message"]

        third = _token(
            run_cli("users", "rotate", "ada", "--expires", "30d", "--json", db_url=pg_store_url)
        )
        auth = {"Authorization": f"Bearer {third}"}
        assert (await api.call("GET", "/traces", auth))[0] == 200  # rotation gives access back
        async with api.store.transaction() as s:
            await s.execute(
                update(User)
                .where(User.name == "ada")
                .values(token_expires_at=utcnow() - timedelta(seconds=1))
            )
        status, body = await api.call("GET", "/traces", auth)
        assert_error(status, body, 401, "unauthorized")
        assert "expired" in body["error"]["message"]


def test_users_list_shows_token_state_and_last_use_but_never_a_token(pg_store_url: str) -> None:
    ada = _token(
        run_cli("users", "create", "ada", "--expires", "12h", "--json", db_url=pg_store_url)
    )
    _token(run_cli("users", "create", "bob", "--json", db_url=pg_store_url))
    assert run_cli("users", "revoke", "bob", db_url=pg_store_url).returncode == 0
    listed = run_cli("users", "list", "--json", db_url=pg_store_url)
    assert listed.returncode == 0, listed.stderr
    rows = {u["name"]: u for u in json.loads(listed.stdout)}
    assert rows["ada"]["token"] == "active" and rows["ada"]["expires_at"] is not None
    assert rows["ada"]["last_used_at"] is None
    assert rows["bob"]["token"] == "revoked"
    assert ada not in listed.stdout
    table = run_cli("users", "list", db_url=pg_store_url)
    assert "revoked" in table.stdout and "never" in table.stdout


def test_bad_durations_and_unknown_users_exit_2(pg_store_url: str) -> None:
    for args in (
        ("users", "create", "x", "--expires", "soon"),
        ("users", "create", "x", "--expires", "0d"),
        ("users", "rotate", "nobody"),
        ("users", "revoke", "nobody"),
    ):
        done = run_cli(*args, db_url=pg_store_url)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr


async def test_last_use_is_recorded_once_a_minute_not_on_every_request(pg_api: Api) -> None:
    alice = await pg_api.user("alice")
    writes: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE USERS"):
            writes.append(statement)

    event.listen(pg_api.store.engine.sync_engine, "before_cursor_execute", record)
    try:
        for _ in range(5):
            assert (await pg_api.call("GET", "/traces", alice))[0] == 200
    finally:
        event.remove(pg_api.store.engine.sync_engine, "before_cursor_execute", record)
    assert len(writes) == 1
    async with pg_api.store.session() as s:
        last_used = await s.scalar(select(User.last_used_at).where(User.name == "alice"))
    assert last_used is not None
