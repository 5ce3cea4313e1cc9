"""Opik end to end: a run mirrored through the real SDK, an outage survived, per-user keys, off = no SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from codi_eval.opik_sync import sync_outbox
from codi_eval.secrets import encrypt
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from codi_eval.store.models import User
from codi_eval.tracing import StoreSink, Tracer
from tests.cli_helpers import ROOT, run_cli
from tests.cli_helpers import query as store_rows
from tests.servers.opik_server import OpikServer


@pytest.fixture
def opik_server():  # type: ignore[no-untyped-def]
    server = OpikServer().start_in_thread()
    yield server
    server.stop()


def opik_env(server: OpikServer) -> dict[str, str]:
    return {
        "OPIK_URL_OVERRIDE": server.url,
        "OPIK_WORKSPACE": "default",
        "OPIK_CONNECTION_MONITOR_PING_INTERVAL": "1",
    }


def as_uuid(value: object) -> str:
    return str(uuid.UUID(str(value)))


def assert_mirrored(server: OpikServer, db: str) -> None:
    traces = {as_uuid(r[0]) for r in store_rows(db, "select id from traces")}
    spans = {
        as_uuid(r[0]): (as_uuid(r[1]), r[2] and as_uuid(r[2]))
        for r in store_rows(db, "select id, trace_id, parent_span_id from spans")
    }
    assert traces and set(server.traces) == traces
    assert set(server.spans) == set(spans)
    for span_id, (trace_id, parent) in spans.items():
        got = server.spans[span_id]
        assert got["trace_id"] == trace_id and got.get("parent_span_id") == parent
    llm = [s for s in server.spans.values() if s.get("type") == "llm"]
    assert llm and all(s.get("model") and s.get("usage", {}).get("total_tokens") for s in llm)
    evaluations = store_rows(
        db, "select trace_id, metric_name, score from evaluations where status = 'ok'"
    )
    for trace_id, metric, score in evaluations:
        assert server.trace_scores(as_uuid(trace_id))[metric]["value"] == pytest.approx(score)
    cells = [r[0] for r in store_rows(db, "select key from experiment_cells")]
    names = sorted(e["name"] for e in server.experiments.values())
    assert names == sorted(f"quickstart/{key}" for key in cells)
    linked = {(i["dataset_item_id"], i["trace_id"]) for i in server.experiment_items.values()}
    runs = {
        (as_uuid(i), as_uuid(t))
        for i, t in store_rows(
            db, "select dataset_item_id, trace_id from runs where status = 'succeeded'"
        )
    }
    assert linked == runs
    assert not server.unknown_requests
    assert sum(server.duplicates.values()) == 0 or set(server.duplicates) <= {"span", "trace"}


def test_quickstart_is_mirrored_to_opik_with_our_ids(
    tmp_path: Path, opik_server: OpikServer
) -> None:
    db = f"sqlite:///{tmp_path / 'o.db'}"
    result = run_cli(
        "run", "experiments/quickstart.yaml", "--json", db_url=db, env=opik_env(opik_server)
    )
    assert result.returncode == 0, result.stderr
    assert_mirrored(opik_server, db)
    status = json.loads(
        run_cli("opik", "status", "--json", db_url=db, env=opik_env(opik_server)).stdout
    )
    assert status["pending"] == 0 and status["failed"] == 0 and status["sent"] == 81


def test_opik_down_then_sync_delivers_everything_exactly_once(
    tmp_path: Path, opik_server: OpikServer
) -> None:
    db = f"sqlite:///{tmp_path / 'd.db'}"
    opik_server.set_down("refuse")
    result = run_cli(
        "run", "experiments/quickstart.yaml", "--json", db_url=db, env=opik_env(opik_server)
    )
    assert result.returncode == 0, result.stderr  # the experiment neither failed...
    assert json.loads(result.stdout)["runs_succeeded"] == 80
    status = json.loads(
        run_cli("opik", "status", "--json", db_url=db, env=opik_env(opik_server)).stdout
    )
    assert status["failed"] == 81 and "unreachable" in status["last_error"]
    refused = run_cli("opik", "sync", db_url=db, env=opik_env(opik_server))
    assert refused.returncode == 1 and "unreachable" in refused.stdout + refused.stderr
    opik_server.set_up()
    synced = run_cli("opik", "sync", "--json", db_url=db, env=opik_env(opik_server))
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["sent"] == {"trace": 80, "experiment": 1}
    assert_mirrored(opik_server, db)
    before = (len(opik_server.traces), len(opik_server.spans), len(opik_server.experiment_items))
    again = run_cli("opik", "sync", "--json", db_url=db, env=opik_env(opik_server))
    assert again.returncode == 0 and json.loads(again.stdout)["sent"] == {}
    assert (
        len(opik_server.traces),
        len(opik_server.spans),
        len(opik_server.experiment_items),
    ) == before


async def test_a_users_own_key_and_workspace_are_used_and_never_stored_in_the_trace(
    store: Store, opik_server: OpikServer
) -> None:
    secret = "server-secret"
    async with store.transaction() as session:
        user = User(
            name="ada",
            token_hash="h" * 64,
            opik_enabled=True,
            opik_workspace="ada-space",
            opik_api_key_encrypted=encrypt("ada-opik-key", secret),
        )
        session.add(user)
        await session.flush()
        user_id = user.id
    sink = StoreSink(store)
    tracer = Tracer(sink)
    async with tracer.trace(
        "Code Summary",
        trace_type="summarization",
        user_id=user_id,
        export=True,
        input={"code": "def f(): pass"},
    ) as t:
        async with tracer.span("chain_of_density"):
            pass
    await sink.close()
    settings = Settings.from_env(
        {"OPIK_URL_OVERRIDE": opik_server.url, "CODI_EVAL_SECRET_KEY": secret}
    )
    os.environ.pop("OPIK_API_KEY", None)
    report = await sync_outbox(store, settings, timeout_s=30)
    assert report.sent == {"trace": 1}
    assert str(t.id) in opik_server.traces
    sent = [r for r in opik_server.requests if r["path"].endswith("traces/batch")]
    assert sent and all(r["headers"].get("Authorization") == "ada-opik-key" for r in sent)
    assert all(r["headers"].get("Comet-Workspace") == "ada-space" for r in sent)
    assert "ada-opik-key" not in json.dumps(opik_server.traces)


def test_without_opik_settings_no_sdk_client_or_thread_starts(tmp_path: Path) -> None:
    code = """
import asyncio, sys, threading
from codi_eval.experiments.runner import Runner, prepare
from codi_eval.experiments.spec import load_spec
from codi_eval.settings import Settings
from codi_eval.store.engine import Store

async def main():
    settings = Settings.from_env()
    assert not settings.opik_configured
    store = await Store.open(settings.database_url)
    spec = load_spec("experiments/quickstart.yaml")
    prepared = await prepare(store, spec, settings)
    await Runner(store, spec, prepared, settings=settings, export_to_opik=False).run()
    await store.close()

before = {t.name for t in threading.enumerate()}
asyncio.run(main())
after = {t.name for t in threading.enumerate()}
print(sorted(m for m in sys.modules if m == "opik" or m.startswith("opik.")))
print(sorted(after - before))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPIK_")}
    env.update(CODI_EVAL_DATABASE_URL=f"sqlite:///{tmp_path / 'n.db'}", HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr
    modules, threads = result.stdout.strip().splitlines()
    assert modules == "[]"  # the opik SDK was never even imported
    assert threads == "[]"
