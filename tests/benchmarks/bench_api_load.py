"""API throughput under concurrent clients at 1M traces: baseline, one process, two.

Not a test; run it by hand (the data is ``bench_api``'s, loaded by SQL, reused when there)::

    .venv/bin/python -m tests.benchmarks.bench_api_load \\
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/codi_bench_api \\
        --baseline ../wt-old \\
        --baseline-pg postgresql+psycopg://postgres@127.0.0.1:5432/codi_bench_api_base

``--baseline`` is a checkout of earlier code with its own ``.venv`` (``git worktree add
../wt-old 866dd5f``); its server runs against its own database, filled by its own loader,
because its schema is its own. Ratios are to the first server measured.

For ``codi-eval serve`` and ``codi-eval serve --workers 2`` in turn (same database, same
session): closed-loop aiohttp clients (1, 8 and 32 at once, each sending its next request
when the last is answered, for ``--seconds`` each) on ``GET /traces`` page 1 and on
``GET /traces/{id}`` (random traces of their owners), giving requests/s, p50 and p99;
then ``GET /traces`` at a fixed offered rate (open loop: a request every 1/rate seconds
whether or not the last was answered), giving p99.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.benchmarks.bench_api import (
    ROOT,
    free_port,
    load,
    pct,
    start_server,
    wait_listening,
)

CLIENTS = (1, 8, 32)


async def closed_loop(
    base: str, calls: list[tuple[str, dict[str, str]]], clients: int, seconds: float
) -> tuple[float, list[float]]:
    import aiohttp

    times: list[float] = []
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(c: int) -> None:
            i = c
            while time.perf_counter() < stop_at:
                path, headers = calls[i % len(calls)]
                i += clients
                started = time.perf_counter()
                async with session.get(base + path, headers=headers) as resp:
                    await resp.read()
                    assert resp.status == 200, (path, resp.status)
                times.append((time.perf_counter() - started) * 1000.0)

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        elapsed = time.perf_counter() - started
    return len(times) / elapsed, times


async def open_loop(
    base: str,
    calls: list[tuple[str, dict[str, str]]],
    rate: float,
    seconds: float,
    refused: Counter[int],
) -> list[float]:
    """Latencies of every request (refused ones too); ``refused`` counts non-200 statuses."""
    import aiohttp

    times: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int, due: float) -> None:
            path, headers = calls[i % len(calls)]
            async with session.get(base + path, headers=headers) as resp:
                await resp.read()
                refused[resp.status] += resp.status != 200  # 503: the server is full
            # Measured from when the request was due, so queueing in the client counts too.
            times.append((time.perf_counter() - due) * 1000.0)

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
    return times


def workloads(url: str, users: int) -> dict[str, list[tuple[str, dict[str, str]]]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        sample = conn.execute(
            text("SELECT id, user_id FROM traces TABLESAMPLE SYSTEM (1) LIMIT 2000")
        ).all()
    engine.dispose()
    headers = [{"Authorization": f"Bearer bench-token-{u}"} for u in range(1, users + 1)]
    return {
        "GET /traces page 1": [
            ("/api/v1/traces?page=1&page_size=20", headers[i % users]) for i in range(users)
        ],
        "GET /traces/{id}": [(f"/api/v1/traces/{tid}", headers[uid - 1]) for tid, uid in sample],
    }


@dataclass(frozen=True)
class Server:
    label: str
    root: Path
    url: str
    workers: int


def load_baseline(root: Path, url: str, n: int, users: int, reload: bool) -> None:
    """Fill ``url`` with the baseline checkout's own loader (its schema is its own)."""
    code = f"from tests.benchmarks.bench_api import load; load({url!r}, {n}, {users}, {reload})"
    subprocess.run([str(root / ".venv" / "bin" / "python"), "-c", code], cwd=root, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg", required=True, help="postgresql+psycopg:// URL of a database")
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of the code to compare with (with its .venv)"
    )
    parser.add_argument("--baseline-pg", help="a second database for the baseline's schema")
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0, help="per closed-loop row")
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop requests/s")
    parser.add_argument("--reload", action="store_true", help="reload even if the data is there")
    args = parser.parse_args()
    if (args.baseline is None) != (args.baseline_pg is None):
        parser.error("--baseline and --baseline-pg go together")

    servers = [Server("1 proc", ROOT, args.pg, 1), Server("2 procs", ROOT, args.pg, 2)]
    load(args.pg, args.traces, args.users, args.reload)
    if args.baseline is not None:
        load_baseline(args.baseline, args.baseline_pg, args.traces, args.users, args.reload)
        servers.insert(0, Server("baseline", args.baseline.resolve(), args.baseline_pg, 1))
    rows: dict[tuple[str, str, int], tuple[float, float, float]] = {}
    open_p99: dict[str, float] = {}
    open_refused: dict[str, int] = {}
    labels: list[str] = []
    for srv in servers:
        loads = workloads(srv.url, args.users)
        labels = list(loads)
        port = free_port()
        server = start_server(srv.url, port, srv.workers, srv.root)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_listening(port, server)
            for label, calls in loads.items():
                asyncio.run(closed_loop(base, calls, 8, 1.0))  # warm-up
                for clients in CLIENTS:
                    rate, times = asyncio.run(closed_loop(base, calls, clients, args.seconds))
                    rows[srv.label, label, clients] = (
                        rate,
                        statistics.median(times),
                        pct(times, 0.99),
                    )
                    print(
                        f"  {srv.label:<8} {label:<20} {clients:>2} clients: {rate:7.1f} req/s "
                        f"p50 {statistics.median(times):6.1f} p99 {pct(times, 0.99):6.1f} ms",
                        flush=True,
                    )
            refused: Counter[int] = Counter()
            times = asyncio.run(
                open_loop(base, loads["GET /traces page 1"], args.rate, args.seconds, refused)
            )
            open_p99[srv.label] = pct(times, 0.99)
            open_refused[srv.label] = sum(refused.values())
            print(
                f"  {srv.label:<8} GET /traces page 1 at {args.rate:g} req/s offered: "
                f"p50 {statistics.median(times):.1f} p99 {open_p99[srv.label]:.1f} ms, "
                f"{open_refused[srv.label]} of {len(times)} refused {dict(refused)}",
                flush=True,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"\n{args.traces:,} traces, {args.users} users, {args.seconds:g} s per row\n")
    names = [srv.label for srv in servers]
    ref = names[0]
    print(
        f"{'request':<22}{'clients':>8}"
        + "".join(f"{n + ' req/s':>16}" for n in names)
        + "".join(f"{n + ' / ' + ref:>20}" for n in names[1:])
    )
    for label in labels:
        for clients in CLIENTS:
            got = [rows[n, label, clients][0] for n in names]
            print(
                f"{label:<22}{clients:>8}"
                + "".join(f"{g:>16.1f}" for g in got)
                + "".join(f"{g / got[0]:>20.2f}" for g in got[1:])
            )
    for name, p99 in open_p99.items():
        verdict = "yes" if p99 <= 50 and not open_refused[name] else "NO"
        print(
            f"open loop {args.rate:g} req/s, {name}: p99 {p99:.1f} ms, "
            f"{open_refused[name]} refused (target p99 <= 50, none refused: {verdict})"
        )


if __name__ == "__main__":
    main()
