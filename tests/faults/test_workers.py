"""Two and three `codi-eval run` processes on one experiment, one killed with SIGKILL:
every run is done exactly once and no run that had succeeded is called again."""

from __future__ import annotations

import hashlib
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import query
from tests.cli_helpers import scalar as count
from tests.faults.conftest import assert_exactly_once, cli_env, spec_file, start, wait_until
from tests.servers.gemini_server import GeminiServer, default_text

pytestmark = pytest.mark.postgres


def _key(body: dict[str, Any]) -> tuple[str, Any]:
    text = "".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))
    return text, (body.get("generationConfig") or {}).get("seed")


def tagged(body: dict[str, Any]) -> str:
    """A model whose every answer depends on the whole request, so a run's calls are its own
    (prompt versions and repeats otherwise reach identical final prompts)."""
    prompt, seed = _key(body)
    tag = hashlib.sha1(f"{prompt}|{seed}".encode()).hexdigest()[:8]
    text = default_text(prompt)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return f"{text} ({tag})"
    if isinstance(data, dict) and "denser_summary" in data:
        data["denser_summary"] += f" ({tag})"
    return json.dumps(data)


@pytest.mark.parametrize("workers", [2, 3])
def test_concurrent_runners_share_the_work_and_a_killed_ones_runs_come_back(
    tmp_path: Path, pg_store_url: str, workers: int
) -> None:
    gemini = GeminiServer(tagged, require_api_key="k", latency_s=0.1).start_in_thread()
    try:
        env = cli_env(
            pg_store_url,
            GEMINI_API_KEY="k",
            GOOGLE_GEMINI_BASE_URL=gemini.base_url,
            CODI_EVAL_LEASE_S="6",
        )
        spec = spec_file(tmp_path, model="gemini-2.5-flash")
        procs = [start(["run", str(spec), "--json"], env) for _ in range(workers)]
        victim = procs[0]
        # Kill one when about half the runs are done (it is holding leases then).
        wait_until(
            lambda: (
                count(pg_store_url, "select count(*) from runs where status = 'succeeded'") >= 100
            ),
            120,
            "half the runs",
            watch=victim,
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        held = {
            r[0]
            for r in query(
                pg_store_url,
                "select id from runs where status = 'running' and lease_owner like :p",
                p=f"%:{victim.pid}:%",
            )
        }
        succeeded_then = {
            r[0] for r in query(pg_store_url, "select id from runs where status = 'succeeded'")
        }
        results = [p.communicate(timeout=240) for p in procs[1:]]
        codes = [p.returncode for p in procs[1:]]
        assert codes == [0] * (workers - 1), [r[1][-2000:] for r in results]
        summaries = [json.loads(out) for out, _ in results]
        assert all(s["runs_succeeded"] == 240 for s in summaries)
        assert count(pg_store_url, "select count(*) from experiments") == 1  # created once
        assert_exactly_once(pg_store_url, 240)

        # Every model call of the final results, attributed to its run.
        calls = Counter(_key(r.json) for r in gemini.requests if isinstance(r.json, dict))
        seeds = {0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 6}
        rows = query(
            pg_store_url,
            "select r.id, r.repeat, s.input_data from runs r join spans s on s.trace_id = r.trace_id "
            "where s.type = 'llm'",
        )
        assert len(rows) == 240 * 3
        again = set()
        for run_id, repeat, data in rows:
            data = json.loads(data) if isinstance(data, str) else data
            key = (data["prompt"], seeds[repeat])
            assert calls[key] >= 1, "a stored result without the call that made it"
            if calls[key] > 1:
                again.add(run_id)
        # Only runs the killed worker was holding were called again; never a finished one.
        assert again <= held
        assert not (again & succeeded_then)
        assert len(gemini.requests) <= 720 + 3 * len(held)
    finally:
        gemini.stop()


def test_two_processes_creating_one_experiment_get_one(tmp_path: Path, pg_store_url: str) -> None:
    spec = spec_file(tmp_path, model="offline?latency_ms=1")
    env = cli_env(pg_store_url)
    procs = [start(["run", str(spec), "--json"], env) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    ids = {json.loads(o)["experiment_id"] for o, _ in outs}
    assert len(ids) == 1
    assert_exactly_once(pg_store_url, 240)


def test_watching_from_another_process_follows_the_workers_to_the_end(
    tmp_path: Path, pg_store_url: str
) -> None:
    spec = spec_file(tmp_path, model="offline?latency_ms=200", name="watched")
    env = cli_env(pg_store_url)
    runner = start(["run", str(spec), "--workers", "2", "--json"], env)
    wait_until(lambda: count(pg_store_url, "select count(*) from runs") == 240, 60, "the runs")
    watch = start(["experiments", "show", "watched", "--watch", "0.2"], env)
    out, err = watch.communicate(timeout=240)
    run_out, run_err = runner.communicate(timeout=240)
    assert runner.returncode == 0, run_err[-2000:]
    assert watch.returncode == 0, err[-2000:]
    lines = [line for line in out.splitlines() if "runs done" in line]
    assert len(lines) >= 2 and "240/240 runs done (240 succeeded, 0 failed" in lines[-1]
    assert any("2 workers active" in line for line in lines), lines  # both processes seen
    assert "cod_iteration@2/d2" in out or "v2/d2" in out  # the final table
