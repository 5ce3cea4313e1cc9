"""API latency at scale: GET /traces and GET /traces/{id} over a million traces in PostgreSQL.

Not a test; run it by hand::

    .venv/bin/python -m tests.benchmarks.bench_api \\
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/codi_bench --traces 1000000

The database is upgraded to the current schema and filled by SQL (``INSERT ... SELECT
generate_series``: the rows never travel through Python), with 3 spans and 1 evaluation
per trace, spread over ``--users`` users and 4 trace types. A database that already holds
the requested number of bench traces is reused (``--reload`` to start again). The real
server (``codi-eval serve``) is started as a subprocess, and one aiohttp client on this
machine sends requests one at a time, so the figures are per-request latency, not load.
Targets: p99 <= 25 ms for a list page, <= 10 ms for one trace.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from codi_eval.store.engine import upgrade

ROOT = Path(__file__).resolve().parents[2]
TYPES = ("summarization", "code_generation", "chat", "review")
TARGETS = {"list": 25.0, "trace": 10.0}


def load(url: str, n: int, users: int, reload: bool) -> None:
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        have = conn.execute(
            text("SELECT count(*) FROM traces WHERE name LIKE 'bench %'")
        ).scalar_one()
        if have == n and not reload:
            print(f"reusing {have:,} bench traces")
            return
        conn.execute(
            text("TRUNCATE evaluations, spans, traces, opik_outbox, users RESTART IDENTITY CASCADE")
        )
        # Tokens are bench-token-<i>; users.token_hash is their SHA-256, as hash_token stores it.
        conn.execute(
            text(
                "INSERT INTO users (name, token_hash, opik_enabled, created_at) "
                "SELECT 'bench-' || g, encode(sha256(convert_to('bench-token-' || g, 'UTF8')), 'hex'), "
                "true, now() FROM generate_series(1, :users) g"
            ),
            {"users": users},
        )
    steps = [
        (
            "traces",
            """
            INSERT INTO traces (id, user_id, trace_type, name, start_time, end_time, duration_ms,
                                input_data, output_data, meta_data, tags, status, created_at)
            SELECT md5('t' || g)::uuid, 1 + g % :users,
                   (ARRAY['summarization','code_generation','chat','review'])[1 + (g / 7) % 4],
                   'bench ' || g, ts, ts + interval '1500 ms', 1500,
                   jsonb_build_object('code', 'def f' || g || '(x):' || chr(10) || '    return x + ' || g,
                                      'instruction', 'Explain what this code does and how.',
                                      'language', 'python'),
                   jsonb_build_object('summary', 'The function f' || g || ' adds ' || g || ' to x.'),
                   jsonb_build_object('model', 'offline', 'tokens', 245, 'cost', 0.0,
                                      'density_iterations', 2),
                   ARRAY['api', 'bench' || (g % 10)], 'ok', ts
            FROM (SELECT g, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second' AS ts
                  FROM generate_series(1, :n) g) s""",
        ),
        (
            "spans",
            """
            INSERT INTO spans (id, trace_id, parent_span_id, name, type, model, provider,
                               prompt_tokens, completion_tokens, total_tokens, cost, start_time,
                               end_time, duration_ms, input_data, output_data, meta_data, status)
            SELECT md5(k || g)::uuid, md5('t' || g)::uuid,
                   CASE WHEN k = 'i' THEN md5('c' || g)::uuid END,
                   CASE k WHEN 'c' THEN 'chain_of_density' WHEN 'i' THEN 'iteration 1' ELSE 'judge: summary_quality' END,
                   CASE k WHEN 'c' THEN 'general' WHEN 'i' THEN 'llm' ELSE 'judge' END,
                   CASE WHEN k <> 'c' THEN 'offline' END, CASE WHEN k <> 'c' THEN 'offline' END,
                   CASE WHEN k <> 'c' THEN 100 END, CASE WHEN k <> 'c' THEN 20 END,
                   CASE WHEN k <> 'c' THEN 120 END, CASE WHEN k <> 'c' THEN 0.0 END,
                   ts + o * interval '10 ms', ts + (o + 1) * interval '10 ms', 10.0,
                   jsonb_build_object('prompt', 'Summarize f' || g), jsonb_build_object('text', 'f' || g),
                   '{}'::jsonb, 'ok'
            FROM (SELECT g, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second' AS ts
                  FROM generate_series(1, :n) g) s
            CROSS JOIN (VALUES ('c', 0), ('i', 1), ('j', 2)) AS kinds(k, o)""",
        ),
        (
            "evaluations",
            """
            INSERT INTO evaluations (id, trace_id, span_id, metric_name, score, reason, status,
                                     meta_data, created_at)
            SELECT md5('e' || g)::uuid, md5('t' || g)::uuid, md5('j' || g)::uuid, 'summary_quality',
                   (g % 100) / 100.0, 'bench judgement', 'ok', '{}'::jsonb, now()
            FROM generate_series(1, :n) g""",
        ),
    ]
    for name, sql in steps:
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(sql), {"n": n, "users": users})
        print(f"loaded {name:<12} in {time.perf_counter() - started:6.1f} s")
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # Fresh visibility map and statistics, as a table that has lived a while would have.
        conn.execute(text("VACUUM ANALYZE traces, spans, evaluations, users"))
    print(f"vacuum analyze       in {time.perf_counter() - started:6.1f} s")
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    url: str, port: int, workers: int = 1, root: Path = ROOT
) -> subprocess.Popen[bytes]:
    """``codi-eval serve`` of the checkout at ``root`` (its own .venv, or this interpreter)."""
    env = {
        **os.environ,
        "CODI_EVAL_DATABASE_URL": url,
        "OPIK_SENTRY_ENABLE": "false",
        "OPIK_ANALYTICS_ENABLE": "false",
        # One client sends far more than a person would: measure the server, not the quota.
        "CODI_EVAL_API_USER_RPM": "100000000",
    }
    for key in ("OPIK_URL_OVERRIDE", "OPIK_API_KEY", "GEMINI_API_KEY"):
        env.pop(key, None)
    python = root / ".venv" / "bin" / "python" if root != ROOT else Path(sys.executable)
    return subprocess.Popen(
        [str(python), "-m", "codi_eval", "serve", "--port", str(port)]
        + (["--workers", str(workers)] if workers > 1 else []),
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_listening(port: int, server: subprocess.Popen[bytes]) -> None:
    """Wait (up to 60 s) until the server accepts connections on ``port``."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start") from None
            time.sleep(0.2)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def measure(
    base: str, url: str, users: int, requests: int
) -> list[tuple[str, str, list[float]]]:
    import aiohttp

    engine = create_engine(url)
    with engine.connect() as conn:
        # Random existing traces, each with its owner, for the detail requests.
        sample = conn.execute(
            text("SELECT id, user_id FROM traces TABLESAMPLE SYSTEM (1) LIMIT :k"), {"k": requests}
        ).all()
    engine.dispose()
    headers = [{"Authorization": f"Bearer bench-token-{u}"} for u in range(1, users + 1)]
    scenarios: list[tuple[str, str, list[tuple[str, dict[str, str]]]]] = []
    for label, query in (
        ("page 1", "page=1&page_size=20"),
        ("page 1, trace_type", "page=1&page_size=20&trace_type=summarization"),
        ("page 500", "page=500&page_size=20"),
        ("page 500, trace_type", "page=500&page_size=20&trace_type=summarization"),
    ):
        calls = [(f"{base}/api/v1/traces?{query}", headers[i % users]) for i in range(requests)]
        scenarios.append(("list", f"GET /traces {label}", calls))
    calls = [(f"{base}/api/v1/traces/{tid}", headers[uid - 1]) for tid, uid in sample]
    scenarios.append(("trace", "GET /traces/{id}", calls))
    results = []
    async with aiohttp.ClientSession() as session:
        for kind, label, calls in scenarios:
            for u, h in calls[:20]:  # warm-up: connections, plans, caches
                async with session.get(u, headers=h) as resp:
                    await resp.read()
            times = []
            for u, h in calls:
                started = time.perf_counter()
                async with session.get(u, headers=h) as resp:
                    await resp.read()
                    assert resp.status == 200, (u, resp.status, await resp.text())
                times.append((time.perf_counter() - started) * 1000.0)
            results.append((kind, label, times))
    return results


def explain(url: str) -> None:
    engine = create_engine(url)
    with engine.connect() as conn:
        plan = (
            conn.execute(
                text(
                    "EXPLAIN (ANALYZE, BUFFERS) SELECT id, start_time FROM traces WHERE user_id = 1 "
                    "ORDER BY start_time DESC, id DESC LIMIT 20 OFFSET 9980"
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    print("\nplan of the page-500 query (columns trimmed):")
    for line in plan:
        print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pg", required=True, help="postgresql+psycopg:// URL of a database to fill"
    )
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--requests", type=int, default=500, help="requests per scenario")
    parser.add_argument("--reload", action="store_true", help="reload even if the data is there")
    args = parser.parse_args()

    load(args.pg, args.traces, args.users, args.reload)
    port = free_port()
    server = start_server(args.pg, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_listening(port, server)
        results = asyncio.run(measure(base, args.pg, args.users, args.requests))
    finally:
        server.terminate()
        server.wait(timeout=30)
    per_user = args.traces // args.users
    print(
        f"\n{args.traces:,} traces ({3 * args.traces:,} spans, {args.traces:,} evaluations), "
        f"{args.users} users (~{per_user:,} traces each), {args.requests} sequential requests per row\n"
    )
    print(f"{'request':<36}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'target':>9}  ok")
    for kind, label, times in results:
        p99 = pct(times, 0.99)
        target = TARGETS[kind]
        print(
            f"{label:<36}{statistics.median(times):>9.2f}{p99:>9.2f}{max(times):>9.2f}"
            f"{target:>9.0f}  {'yes' if p99 <= target else 'NO'}"
        )
    explain(args.pg)


if __name__ == "__main__":
    main()
