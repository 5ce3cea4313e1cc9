"""PostgreSQL faults during a run, simulated by a TCP proxy in front of 127.0.0.1:5432.

A 10 s cut crashed the run with 9,913 lines of traceback and left the experiment
``running``; a network that stopped answering hung it with no output until killed; killed
connections became permanent ``failed/OperationalError`` runs. Now a cut up to ~30 s is
ridden out, and a longer outage stops the run with one clear line, resumable.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.cli_helpers import scalar as count
from tests.faults.conftest import (
    assert_exactly_once,
    cli_env,
    spec_file,
    start,
    through,
    wait_until,
)
from tests.faults.proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("cut_s", [10, 30])
def test_a_cut_of_the_store_is_ridden_out_and_every_run_succeeds(
    tmp_path: Path, pg_store_url: str, proxy: TcpProxy, cut_s: int
) -> None:
    db = through(proxy, pg_store_url)
    spec = spec_file(tmp_path, model="offline?latency_ms=25")
    run = start(["run", str(spec), "--json"], cli_env(db))
    wait_until(
        lambda: count(pg_store_url, "select count(*) from runs where status = 'succeeded'") >= 40,
        120,
        "some runs to finish",
        watch=run,
    )
    proxy.cut()
    time.sleep(cut_s)
    proxy.restore()
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    assert "Traceback" not in err and len(err.splitlines()) < 20, err[-3000:]
    assert json.loads(out)["runs_succeeded"] == 240
    assert_exactly_once(pg_store_url, 240)
    assert count(pg_store_url, "select count(*) from runs where error_message like '%SELECT%'") == 0
    assert count(pg_store_url, "select count(*) from experiments where status = 'finished'") == 1


def test_a_store_that_stops_answering_stops_the_run_with_one_line_then_resume_completes(
    tmp_path: Path, pg_store_url: str, proxy: TcpProxy
) -> None:
    db = through(proxy, pg_store_url)
    spec = spec_file(tmp_path, model="offline?latency_ms=25")
    outage = 8
    run = start(["run", str(spec)], cli_env(db, CODI_EVAL_STORE_OUTAGE_S=str(outage)))
    wait_until(
        lambda: count(pg_store_url, "select count(*) from runs where status = 'succeeded'") >= 40,
        120,
        "some runs to finish",
        watch=run,
    )
    proxy.blackhole()
    started = time.monotonic()
    _, err = run.communicate(timeout=180)
    took = time.monotonic() - started
    assert run.returncode == 1, err[-3000:]
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "unreachable" in errors[0] and "run the same command" in errors[0]
    # The outage budget, plus the attempt in flight and the driver giving up a connection.
    assert took < outage + 60, took
    done_before = count(pg_store_url, "select count(*) from runs where status = 'succeeded'")
    assert done_before < 240
    assert count(pg_store_url, "select count(*) from runs where status = 'failed'") == 0
    proxy.restore()
    again = start(["run", str(spec), "--json"], cli_env(db, CODI_EVAL_LEASE_S="5"))
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert_exactly_once(pg_store_url, 240)
