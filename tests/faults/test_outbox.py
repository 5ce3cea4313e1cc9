"""The Opik outbox under concurrency and outages, through the real opik SDK.

Two `opik sync` processes (or a run's own sync beside `serve`'s) sent the same rows: 240
experiment items instead of 120; unknown outbox kinds were marked sent; an Opik answering
503 added ~23 s to a 6 s run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.cli_helpers import execute, run_cli
from tests.cli_helpers import query as rows
from tests.cli_helpers import scalar as count
from tests.faults.conftest import cli_env, start
from tests.servers.opik_server import OpikServer


@pytest.fixture
def opik() -> OpikServer:  # type: ignore[misc]
    server = OpikServer().start_in_thread()
    yield server
    server.stop()


def _env(server: OpikServer) -> dict[str, str]:
    return {
        "OPIK_URL_OVERRIDE": server.url,
        "OPIK_WORKSPACE": "default",
        "OPIK_CONNECTION_MONITOR_PING_INTERVAL": "1",
    }


def test_concurrent_syncs_deliver_every_row_exactly_once(
    tmp_path: Path, pg_store_url: str, opik: OpikServer
) -> None:
    opik.set_down("refuse")  # the run's own sync leaves everything queued
    done = run_cli(
        "run", "experiments/quickstart.yaml", "--json", db_url=pg_store_url, env=_env(opik)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    opik.set_up()
    syncs = [
        start(["opik", "sync", "--json"], cli_env(pg_store_url, **_env(opik))) for _ in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in syncs]
    assert [p.returncode for p in syncs] == [0, 0, 0], [e[-1500:] for _, e in outs]
    sent = [json.loads(o)["sent"] for o, _ in outs]
    assert sum(s.get("trace", 0) for s in sent) == 80  # shared out, not repeated
    assert sum(s.get("experiment", 0) for s in sent) == 1
    assert len(opik.traces) == 80
    assert len(opik.experiment_items) == 80  # one per cell × item, not one per sync
    assert opik.duplicates.get("experiment_items", 0) == 0
    assert count(pg_store_url, "select count(*) from opik_outbox where status = 'sent'") == 81
    assert count(pg_store_url, "select count(*) from opik_outbox where claimed_by is not null") == 0


def test_an_unknown_outbox_kind_stays_failed_with_a_message(
    tmp_path: Path, pg_store_url: str, opik: OpikServer
) -> None:
    done = run_cli(
        "run", "experiments/quickstart.yaml", "--json", db_url=pg_store_url, env=_env(opik)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    execute(
        pg_store_url,
        "insert into opik_outbox (kind, entity_id, status, attempts, created_at) "
        "values ('hologram', 'x', 'pending', 0, now())",
    )
    synced = run_cli("opik", "sync", "--json", db_url=pg_store_url, env=_env(opik))
    assert synced.returncode == 1
    [(status, error)] = rows(
        pg_store_url, "select status, last_error from opik_outbox where kind = 'hologram'"
    )
    assert status == "failed" and "unknown outbox kind 'hologram'" in error


def test_an_opik_answering_503_adds_at_most_a_moment_to_a_run_and_sync_delivers_later(
    tmp_path: Path, opik: OpikServer
) -> None:
    quiet = f"sqlite:///{tmp_path / 'quiet.db'}"
    started = time.monotonic()
    assert run_cli("run", "experiments/quickstart.yaml", db_url=quiet).returncode == 0
    without = time.monotonic() - started
    db = f"sqlite:///{tmp_path / 'down.db'}"
    opik.set_down("503")
    started = time.monotonic()
    done = run_cli("run", "experiments/quickstart.yaml", "--json", db_url=db, env=_env(opik))
    with_503 = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    assert with_503 - without < 4.0, (with_503, without)  # the 2 s health check, not 23 s
    assert "503" in run_cli("opik", "status", "--json", db_url=db, env=_env(opik)).stdout
    opik.set_up()
    synced = run_cli("opik", "sync", "--json", db_url=db, env=_env(opik))
    assert synced.returncode == 0 and json.loads(synced.stdout)["sent"] == {
        "trace": 80,
        "experiment": 1,
    }
