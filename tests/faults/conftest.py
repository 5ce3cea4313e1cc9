"""Fault tests: real PostgreSQL, real CLI processes, faults simulated on loopback only.

Every test here asserts exact counts with SQL: one run per cell × item × repeat, one
trace per succeeded run, no orphan spans or evaluations, every outbox row delivered once.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import CLI, ROOT
from tests.cli_helpers import scalar as count
from tests.faults.proxy import TcpProxy

QUICK = ROOT / "datasets" / "quickstart.jsonl"


def spec_file(
    tmp_path: Path, *, model: str, name: str = "faults", run: str = "", extra: str = ""
) -> Path:
    """240 runs: 20 items × 2 prompt versions × density 2 × 6 repeats, judged offline.

    ``seed: 1`` gives each repeat its own seed, so every model call of every run is a
    distinct request (prompt + seed) that a test can attribute to its run.
    """
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ndataset: {QUICK}\nseed: 1\nrepeats: 6\n"
        "matrix: {prompt: [cod_iteration@1, cod_iteration@2], density_iterations: [2], "
        f"model: ['{model}']}}\njudge: {{model: offline}}\n"
        f"run: {{concurrency: 8, max_retries: 2, timeout_s: 10, backoff_s: 0.05, cache: false{run}}}\n"
        + extra
    )
    return path


def cli_env(db: str, **more: str) -> dict[str, str]:
    env = {**os.environ, "CODI_EVAL_DATABASE_URL": db, "NO_COLOR": "1", "COLUMNS": "200"}
    for key in ("OPIK_URL_OVERRIDE", "OPIK_API_KEY", "OPIK_WORKSPACE", "GEMINI_API_KEY"):
        env.pop(key, None)
    env.update(more)
    return env


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def assert_exactly_once(db: str, runs: int) -> None:
    """One run per cell × item × repeat, all succeeded, one trace each, nothing orphaned."""
    assert count(db, "select count(*) from runs") == runs
    assert count(db, "select count(*) from runs where status = 'succeeded'") == runs
    assert (
        count(
            db,
            "select count(*) from (select distinct cell_id, dataset_item_id, repeat from runs) x",
        )
        == runs
    )
    assert count(db, "select count(*) from traces") == runs
    assert count(db, "select count(distinct run_id) from traces") == runs
    assert count(db, "select count(*) from runs r join traces t on t.id = r.trace_id") == runs
    assert (
        count(db, "select count(*) from spans where trace_id not in (select id from traces)") == 0
    )
    assert (
        count(db, "select count(*) from evaluations where trace_id not in (select id from traces)")
        == 0
    )


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    p = TcpProxy(("127.0.0.1", 5432)).start()
    yield p
    p.stop()


def through(proxy: TcpProxy, url: str) -> str:
    return url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")


def wait_until(
    predicate: Any, timeout: float, what: str, *, watch: subprocess.Popen[str] | None = None
) -> None:
    """Poll ``predicate`` until it holds; with ``watch``, fail at once (showing its stderr)
    if that process ends first, instead of waiting out the timeout and losing the reason."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # the store may be cut right now
            pass
        if watch is not None and watch.poll() is not None:
            _, err = watch.communicate()
            raise AssertionError(
                f"the process ended (exit {watch.returncode}) before {what}:\n{err[-3000:]}"
            )
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
