"""Three workers on one 10,000-run experiment, one killed halfway, under a shared rate limit.

Not a test; run it by hand (about three minutes)::

    .venv/bin/python -m tests.benchmarks.bench_workers \\
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres

It creates (and drops) its own database, starts a Gemini-protocol server on 127.0.0.1 that
notes when every request arrives, and runs ``codi-eval run SPEC`` beside two
``codi-eval worker`` processes on one experiment: 250 stdlib functions × 2 prompt versions
× density 1 × 20 repeats (``seed: 1``, so every run's one call is a request of its own) at
``requests_per_minute: 6000`` shared by all three. When half the runs are done it kills one
worker with SIGKILL. Then it checks with SQL: exactly 10,000 runs, all succeeded, one trace
each, one run per cell × item × repeat, nothing orphaned; with the request log: no request
that had already succeeded was sent again (only the killed worker's in-flight runs are
repeated), and no window of the log holds more requests than the limit allows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from codi_eval.datasets import load_jsonl, write_jsonl
from codi_eval.store.engine import upgrade
from tests.faults.test_shared_limits import _max_in_window as max_in_window
from tests.faults.test_workers import tagged as answer  # an answer of its own per request
from tests.servers.gemini_server import GeminiServer

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "codi_eval"]
RUNS = 10_000
RPM = 6000
CALLS_PER_RUN = 2  # density 1: one iteration and the final rewrite


def _prompt(body: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))


def request_key(body: dict[str, Any]) -> str:
    seed = (body.get("generationConfig") or {}).get("seed")
    return hashlib.sha1(f"{_prompt(body)}|{seed}".encode()).hexdigest()


def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar_one()
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", required=True, help="a PostgreSQL URL to create the database on")
    parser.add_argument("--concurrency", type=int, default=32, help="runs in flight per worker")
    args = parser.parse_args()
    admin = make_url(args.pg)
    name = f"codi_bench_workers_{uuid.uuid4().hex[:8]}"
    db = admin.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    upgrade(db)
    gemini = GeminiServer(answer, require_api_key="k").start_in_thread()
    tmp = Path(tempfile.mkdtemp())
    items = tmp / "items.jsonl"
    write_jsonl(load_jsonl(ROOT / "datasets" / "stdlib-functions.jsonl")[:250], items)
    spec = tmp / "scale.yaml"
    spec.write_text(
        f"name: scale\ndataset: {items}\nseed: 1\nrepeats: 20\n"
        "matrix: {prompt: [cod_iteration@1, cod_iteration@2], density_iterations: [1], "
        "model: [gemini-2.5-flash]}\njudge: {model: offline}\n"
        f"run: {{concurrency: {args.concurrency}, requests_per_minute: {RPM}, cache: false, "
        "max_retries: 2, timeout_s: 20, backoff_s: 0.05}\n"
    )
    env = {
        **os.environ,
        "CODI_EVAL_DATABASE_URL": db,
        "GEMINI_API_KEY": "k",
        "GOOGLE_GEMINI_BASE_URL": gemini.base_url,
        "CODI_EVAL_LEASE_S": "10",
        "NO_COLOR": "1",
    }
    for key in ("OPIK_URL_OVERRIDE", "OPIK_API_KEY", "OPIK_WORKSPACE"):
        env.pop(key, None)

    def start(*cli: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*CLI, *cli], env=env, cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    try:
        began = time.monotonic()
        first = start("run", str(spec), "--json")
        while not scalar(db, "select count(*) from runs"):
            if first.poll() is not None:
                raise SystemExit(f"codi-eval run exited {first.returncode}:\n{first.stderr.read()}")
            time.sleep(0.2)  # the experiment and its first runs exist; two workers join
        workers = [start("worker", "--experiment", "scale", "--json") for _ in range(2)]
        victim = workers[0]
        while scalar(db, "select count(*) from runs where status = 'succeeded'") < RUNS // 2:
            if first.poll() is not None:
                raise SystemExit(f"codi-eval run exited {first.returncode}:\n{first.stderr.read()}")
            if scalar(db, "select count(*) from runs where status = 'failed'"):
                raise SystemExit(
                    "runs failed: "
                    + scalar(db, "select error_message from runs where status = 'failed' limit 1")
                )
            time.sleep(0.1)
        held = scalar(
            db,
            "select count(*) from runs where status = 'running' and lease_owner like :p",
            p=f"%:{victim.pid}:%",
        )
        victim.send_signal(signal.SIGKILL)
        kill_clock = time.monotonic()
        killed_at = kill_clock - began
        victim.wait(10)
        out, err = first.communicate(timeout=900)
        other = workers[1].communicate(timeout=900)
        elapsed = time.monotonic() - began
        summary = json.loads(out) if out.strip() else {}
        if first.returncode != 0 or workers[1].returncode != 0:
            print(err[-3000:], other[1][-3000:], file=sys.stderr)

        checks = {
            "runs": scalar(db, "select count(*) from runs"),
            "succeeded": scalar(db, "select count(*) from runs where status = 'succeeded'"),
            "distinct cell × item × repeat": scalar(
                db,
                "select count(*) from (select distinct cell_id, dataset_item_id, repeat from runs) x",
            ),
            "traces": scalar(db, "select count(*) from traces"),
            "traces with distinct runs": scalar(db, "select count(distinct run_id) from traces"),
            "runs joined to their trace": scalar(
                db, "select count(*) from runs r join traces t on t.id = r.trace_id"
            ),
        }
        orphans = scalar(
            db,
            "select (select count(*) from spans where trace_id not in (select id from traces))"
            " + (select count(*) from evaluations where trace_id not in (select id from traces))",
        )
        requests = [r for r in gemini.requests if r.json]
        keys = Counter(request_key(r.json) for r in requests)
        repeated = {k: n for k, n in keys.items() if n > 1}
        sent: dict[str, list[float]] = {}
        for r in requests:
            sent.setdefault(request_key(r.json), []).append(r.at)
        # Only a call the killed worker had in flight may be sent again, and only after it died.
        doubled = [k for k in repeated if sorted(sent[k])[1] < kill_clock]
        times = [r.at for r in requests]
        windows = {w: max_in_window(times, w) for w in (1.0, 5.0, 10.0, 60.0)}
        allowed = {w: RPM / 60 * w for w in windows}
        print(f"database {name}; exit codes run={first.returncode} worker={workers[1].returncode}")
        print(f"killed worker {victim.pid} at {killed_at:.1f} s holding {held} leased runs")
        for label, value in checks.items():
            print(f"  {label:32} {value:>7,}  {'ok' if value == RUNS else 'WRONG'}")
        print(
            f"  {'orphan spans + evaluations':32} {orphans:>7,}  {'ok' if orphans == 0 else 'WRONG'}"
        )
        print(
            f"requests {len(requests):,} for {len(keys):,} distinct calls: {len(repeated)} sent twice "
            f"(the killed worker held {held} runs), {len(doubled)} sent twice by live workers"
        )
        for w, n in windows.items():
            print(f"  busiest {w:>4.0f} s window: {n:>5} requests (limit {allowed[w]:.0f})")
        print(
            f"elapsed {elapsed:.1f} s, {RUNS / elapsed:.0f} runs/s "
            f"(the limit allows {RPM / 60:.0f}/s); run summary runs_succeeded="
            f"{summary.get('runs_succeeded')}"
        )
        ok = (
            all(v == RUNS for v in checks.values())
            and orphans == 0
            and len(keys) == CALLS_PER_RUN * RUNS
            and len(repeated) <= CALLS_PER_RUN * held
            and not doubled
            and windows[60.0] <= RPM
            and first.returncode == 0
            and workers[1].returncode == 0
        )
        print("RESULT", "ok" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        gemini.stop()
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
