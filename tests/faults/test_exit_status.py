"""Exit status tells the truth, the failure summary says why, and failed runs can be retried.

`run experiments/gemini-prompt-ab.yaml` with no key failed all 240 runs over 23 s, exited
0 and showed the reason nowhere; failed runs could never be retried (`--new` redid
everything)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.cli_helpers import execute, run_cli
from tests.cli_helpers import scalar as count
from tests.faults.conftest import assert_exactly_once, spec_file
from tests.servers.gemini_server import GeminiServer

pytestmark = pytest.mark.postgres


def test_no_key_stops_the_model_at_once_and_exits_1_saying_what_to_set(
    tmp_path: Path, pg_store_url: str
) -> None:
    spec = spec_file(tmp_path, model="gemini-2.5-flash")
    started = time.monotonic()
    done = run_cli("run", str(spec), "--json", db_url=pg_store_url, env={"GEMINI_API_KEY": ""})
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr[-2000:]
    assert "GEMINI_API_KEY" in done.stderr and "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    assert summary["stopped_models"][0]["model"] == "gemini-2.5-flash"
    assert summary["failures"][0]["error_class"] == "auth"
    failed = count(pg_store_url, "select count(*) from runs where status = 'failed'")
    # Only the runs already in flight when the third failure came; the rest wait, pending.
    assert 3 <= failed <= 8 + 3
    assert count(pg_store_url, "select count(*) from runs where status = 'pending'") == 240 - failed
    assert took < 30, took


def test_partly_failed_exits_1_then_retry_failed_against_a_recovered_server_succeeds(
    tmp_path: Path, pg_store_url: str
) -> None:
    gemini = GeminiServer(
        require_api_key="k",
        fault_rate=0.4,
        fault_kinds=("rate_limit", "server_error"),
        retry_after=0.01,
        seed=5,
    ).start_in_thread()
    try:
        env = {"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": gemini.base_url}
        spec = spec_file(tmp_path, model="gemini-2.5-flash", run=", max_retries: 0")
        first = run_cli("run", str(spec), "--json", db_url=pg_store_url, env=env)
        assert first.returncode == 1, first.stderr[-2000:]
        summary = json.loads(first.stdout)
        failed = summary["runs_failed"]
        assert failed > 0 and summary["runs_succeeded"] == 240 - failed
        classes = {f["error_class"] for f in summary["failures"]}
        assert classes <= {"rate_limited", "server_error"} and classes
        assert "--retry-failed" in first.stderr
        assert summary["stopped_models"] == []  # transient errors never stop a model

        gemini.fault_rate = 0.0  # the server recovered
        dry = run_cli(
            "run", str(spec), "--dry-run", "--retry-failed", "--json", db_url=pg_store_url, env=env
        )
        assert json.loads(dry.stdout)["runs"] == failed  # only what is left to do
        again = run_cli("run", str(spec), "--retry-failed", "--json", db_url=pg_store_url, env=env)
        assert again.returncode == 0, again.stderr[-2000:]
        assert json.loads(again.stdout)["runs_executed_now"] == failed
        assert count(pg_store_url, "select count(*) from runs where status = 'succeeded'") == 240
        # Every attempt is kept: the failed attempts' traces stay beside the latest ones.
        assert count(pg_store_url, "select count(*) from traces") == 240 + failed
        assert count(pg_store_url, "select count(distinct run_id) from traces") == 240
        assert (
            count(
                pg_store_url,
                "select count(*) from runs r join traces t on t.id = r.trace_id where t.status = 'ok'",
            )
            == 240
        )
    finally:
        gemini.stop()


def test_a_dry_run_counts_only_the_runs_still_to_do(tmp_path: Path, pg_store_url: str) -> None:
    spec = spec_file(tmp_path, model="offline?latency_ms=1")
    before = json.loads(
        run_cli("run", str(spec), "--dry-run", "--json", db_url=pg_store_url).stdout
    )
    assert before["runs"] == 240 and before["model_calls"] == 240 * 3
    assert run_cli("run", str(spec), db_url=pg_store_url).returncode == 0
    assert_exactly_once(pg_store_url, 240)
    # Three runs whose results were lost (a worker died before writing them): still to do.
    execute(
        pg_store_url,
        "update runs set status = 'running', lease_expires_at = now() - interval '1 minute' "
        "where id in (select id from runs order by id limit 3)",
    )
    after = json.loads(run_cli("run", str(spec), "--dry-run", "--json", db_url=pg_store_url).stdout)
    assert after["runs"] == 3 and after["model_calls"] == 9 and after["runs_total"] == 240
