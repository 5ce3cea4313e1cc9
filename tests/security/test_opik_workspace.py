"""Attack 4: a user without their own Opik key set ``opik_workspace: victim-ws``, and the
server wrote their traces there with its own ``OPIK_API_KEY`` (a confused deputy)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from codi_eval.opik_sync import sync_outbox
from codi_eval.secrets import encrypt
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from codi_eval.store.models import User
from codi_eval.tracing import StoreSink, Tracer
from tests.servers.opik_server import OpikServer

SECRET = "server-secret"


@pytest.fixture
def opik() -> Any:
    server = OpikServer().start_in_thread()
    yield server
    server.stop()


async def _user_trace(store: Store, **user: Any) -> str:
    async with store.transaction() as session:
        row = User(
            name=user.pop("name"), token_hash=os.urandom(32).hex(), opik_enabled=True, **user
        )
        session.add(row)
        await session.flush()
        user_id = row.id
    sink = StoreSink(store)
    async with Tracer(sink).trace("Code Summary", user_id=user_id, export=True) as t:
        pass
    await sink.close()
    return str(t.id)


def _workspaces(opik: OpikServer, trace_id: str) -> set[str | None]:
    sent = [
        r
        for r in opik.requests
        if r["path"].endswith("traces/batch") and trace_id in str(r.get("body"))
    ]
    assert sent, "the trace was not sent"
    return {r["headers"].get("Comet-Workspace") for r in sent}


async def test_the_servers_key_never_writes_into_a_workspace_the_operator_did_not_allow(
    store: Store, opik: OpikServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_API_KEY", "server-opik-key")
    monkeypatch.setenv("OPIK_WORKSPACE", "codi-server")
    settings = Settings.from_env(
        {
            "OPIK_URL_OVERRIDE": opik.url,
            "OPIK_API_KEY": "server-opik-key",
            "OPIK_WORKSPACE": "codi-server",
            "CODI_EVAL_OPIK_WORKSPACES": "team-shared",
            "CODI_EVAL_SECRET_KEY": SECRET,
        }
    )
    deputy = await _user_trace(store, name="mallory", opik_workspace="victim-ws")
    shared = await _user_trace(store, name="carol", opik_workspace="team-shared")
    own = await _user_trace(
        store,
        name="ada",
        opik_workspace="ada-space",
        opik_api_key_encrypted=encrypt("ada-own-key", SECRET),
    )
    report = await sync_outbox(store, settings, timeout_s=30)
    assert report.sent == {"trace": 3}, report
    assert _workspaces(opik, deputy) == {"codi-server"}  # not victim-ws
    assert _workspaces(opik, shared) == {"team-shared"}  # the operator allowed it
    assert _workspaces(opik, own) == {"ada-space"}  # her own key, her own workspace
    assert not any(r["headers"].get("Comet-Workspace") == "victim-ws" for r in opik.requests)
    own_requests = [r for r in opik.requests if r["headers"].get("Comet-Workspace") == "ada-space"]
    assert all(r["headers"].get("Authorization") == "ada-own-key" for r in own_requests)
