"""The API under attack: memory, /health latency and Gemini throughput, against a real server.

Not a test; run it by hand (PostgreSQL is used as the store; a fresh database is made)::

    .venv/bin/python -m tests.benchmarks.bench_security \\
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Three scenarios, each against ``codi-eval serve`` started as a subprocess on 127.0.0.1:

1. **Hostile summaries**: 1,000 requests from 50 users — model strings with huge or
   infinite latencies and keys (refused), and summaries on an operator-offered slow
   model whose clients disconnect after 50 ms, each with its own ~64 KiB of code. The
   server's RSS is read (``/proc/<pid>/status``) before, after 500 and after 1,000.
   Target: within 50 MB of where it started.
2. **Slow bodies**: 50 clients trickle a PATCH body a byte at a time while ``/health``
   is polled. Target: ``/health`` p99 under 100 ms.
3. **Gemini vs offline**: 200 concurrent summaries on an offered Gemini model (the real
   google-genai SDK against a local Gemini-protocol server that answers at once) and
   200 on ``offline``, with ``/health`` polled meanwhile. Target: Gemini within 2× the
   offline time, ``/health`` p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from codi_eval.secrets import hash_token
from codi_eval.store.engine import upgrade

ROOT = Path(__file__).resolve().parents[2]
USERS = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_database(admin_url: str) -> str:
    name = f"codi_bench_security_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        for i in range(USERS):
            conn.execute(
                text(
                    "INSERT INTO users (name, token_hash, opik_enabled, created_at) "
                    "VALUES (:n, :h, false, now())"
                ),
                {"n": f"u{i}", "h": hash_token(f"token-{i}")},
            )
    engine.dispose()
    return url


def drop_database(admin_url: str, url: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    engine.dispose()


def start_server(
    url: str, port: int, extra: dict[str, str], workers: int = 1
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CODI_EVAL_DATABASE_URL": url,
        "OPIK_SENTRY_ENABLE": "false",
        "OPIK_ANALYTICS_ENABLE": "false",
        **extra,
    }
    for key in ("OPIK_URL_OVERRIDE", "OPIK_API_KEY"):
        env.pop(key, None)
    server = subprocess.Popen(
        [sys.executable, "-m", "codi_eval", "serve", "--port", str(port)]
        + ["--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start") from None
            time.sleep(0.2)


def server_pids(pid: int) -> tuple[int, ...]:
    """The server process and its workers (``serve --workers N``)."""
    return (pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split()))


def rss_mb(pid: int) -> float:
    """The server's resident memory: the process and its workers."""
    total = 0.0
    for one in server_pids(pid):
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of the server: the process and its workers."""
    ticks = 0
    for one in server_pids(pid):
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def auth(i: int) -> dict[str, str]:
    return {"Authorization": f"Bearer token-{i % USERS}"}


def code_of(i: int) -> str:
    # ~64 KiB of distinct, valid Python per request: caches must not keep every one.
    body = "\n".join(
        f"    v{j} = x * {i + j}  # padding line {j} of request {i}" for j in range(1400)
    )
    return f"def f{i}(x):\n{body}\n    return x\n"


def _poll_health(base: str, ready: Any, stop: Any, out: Any) -> None:
    """One bystander's loop: GET /health on a kept-alive connection every 20 ms."""
    address = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=60)
    samples: list[tuple[float, float]] = []  # (sent at, ms); perf_counter is system-wide
    while not stop.is_set():
        started = time.perf_counter()
        conn.request("GET", "/api/v1/health")
        with conn.getresponse() as resp:
            resp.read()
        samples.append((started, (time.perf_counter() - started) * 1000))
        ready.set()
        stop.wait(0.01)
    conn.close()
    out.send(samples)


class HealthPoller:
    """Another user polling ``/health`` from a process of their own while a scenario runs.

    In the load generator's own event loop the poller's timings would include that loop's
    backlog (200 clients' responses landing at once), not only the server's. Polls every
    10 ms; :meth:`during` gives the latencies of the polls sent in a time window.
    """

    def __init__(self, base: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._ready, self._stop = ctx.Event(), ctx.Event()
        self._receive, send = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=_poll_health, args=(base, self._ready, self._stop, send), daemon=True
        )
        self.samples: list[tuple[float, float]] = []

    def __enter__(self) -> HealthPoller:
        self._process.start()
        if not self._ready.wait(30):
            raise RuntimeError("the /health poller got no answer in 30 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.samples = self._receive.recv()
        self._process.join(30)

    def during(self, start: float, end: float) -> list[float]:
        return [ms for sent, ms in self.samples if start <= sent <= end]


async def hostile(base: str, pid: int) -> dict[str, float]:
    import aiohttp

    names = [
        "offline?latency_ms=1e12",
        "offline?latency_ms=inf",
        "offline?latency_ms=nan",
        "gemini-2.5-flash?api_key=stolen",
        "slow",  # offered by the operator: 3 s per call; these clients leave after 50 ms
    ]
    timeout = aiohttp.ClientTimeout(total=0.05)
    figures: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        # batch -1 is a warm-up of 50: every worker imports and builds what a first request
        # of each kind needs (with --workers N the port answers before they have loaded).
        for batch in range(-1, 2):

            async def one(i: int) -> None:
                body = {"code": code_of(i), "model": names[i % len(names)]}
                try:
                    async with session.post(
                        f"{base}/api/v1/summarize/code", json=body, headers=auth(i), timeout=timeout
                    ) as resp:
                        await resp.read()
                except (TimeoutError, aiohttp.ClientError):
                    pass  # the client went away

            size = 50 if batch < 0 else 500
            await asyncio.gather(*(one(batch * 500 + i) for i in range(size)))
            await asyncio.sleep(4)  # let cancelled work unwind
            if batch < 0:
                figures["rss_start_mb"] = rss_mb(pid)
            else:
                figures[f"rss_after_{(batch + 1) * 500}_mb"] = rss_mb(pid)
    return figures


async def slow_bodies(base: str, port: int) -> dict[str, float]:

    async def trickle(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b'{"opik_enabled": true}'
        writer.write(
            b"PATCH /api/v1/users/me/opik-settings HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer token-{i % USERS}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
        )
        for byte in body[:-1]:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.4)
        await reader.read(1024)
        writer.close()

    with HealthPoller(base) as poller:
        await asyncio.sleep(0.5)
        start = time.perf_counter()
        await asyncio.gather(*(trickle(i) for i in range(50)), return_exceptions=True)
        end = time.perf_counter()
    health = poller.during(start, end)
    return {
        "health_p50_ms": statistics.median(health),
        "health_p99_ms": pct(health, 0.99),
        "health_samples": float(len(health)),
    }


async def concurrent(base: str, model: str, n: int) -> tuple[float, float]:
    """Send ``n`` summaries at once on ``model``; the (start, end) of the burst."""
    import aiohttp

    code = "def add(a, b):\n    return a + b\n"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> int:
            body = {"code": code, "model": model, "density_iterations": 2}
            async with session.post(
                f"{base}/api/v1/summarize/code", json=body, headers=auth(i)
            ) as resp:
                await resp.read()
                return resp.status

        started = time.perf_counter()
        statuses = await asyncio.gather(*(one(i) for i in range(n)))
        ended = time.perf_counter()
    assert all(s == 200 for s in statuses), sorted(set(statuses))
    return started, ended


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg", required=True, help="postgresql+psycopg:// admin URL")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N")
    parser.add_argument("--only", type=int, choices=(1, 2, 3), help="run only this scenario")
    parser.add_argument("--rounds", type=int, default=9, help="bursts of scenario 3 per model")
    args = parser.parse_args()
    random.seed(0)
    url = make_database(args.pg)
    # The Gemini-protocol server runs in its own process, so its CPU is not the API's.
    gemini_port = free_port()
    gemini = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.servers.gemini_server",
            "--port",
            str(gemini_port),
            "--api-key",
            "bench-key",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert gemini.stdout is not None
    gemini_url = gemini.stdout.readline().decode().strip()
    port = free_port()
    limits = {
        # Generous per-user limits: these scenarios measure the server, not the quotas.
        "CODI_EVAL_API_USER_RPM": "100000",
        "CODI_EVAL_API_USER_SUMMARIES_PER_MINUTE": "100000",
        "CODI_EVAL_API_USER_CONCURRENT_SUMMARIES": "100",
        "CODI_EVAL_API_MODELS": "offline,gemini-2.5-flash,slow=offline?latency_ms=3000",
        "GEMINI_API_KEY": "bench-key",
        "GOOGLE_GEMINI_BASE_URL": gemini_url,
        "CODI_EVAL_API_BODY_TIMEOUT_S": "30",
    }
    server = start_server(url, port, limits, args.workers)
    base = f"http://127.0.0.1:{port}"
    print(f"codi-eval serve --workers {args.workers}")
    try:
        if args.only in (None, 1):
            hostile_figures(base, server.pid)
        if args.only in (None, 2):
            slow_figures(base, port)
        if args.only in (None, 3):
            gemini_figures(base, gemini_url, args.rounds, server.pid, gemini.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        gemini.terminate()
        gemini.wait(timeout=30)
        drop_database(args.pg, url)


def hostile_figures(base: str, pid: int) -> None:
    figures = asyncio.run(hostile(base, pid))
    print("1. hostile summaries (1,000 requests, 50 users, ~64 KiB code each):")
    for key, value in figures.items():
        print(f"   {key:<22}{value:8.1f}")
    growth = max(figures.values()) - figures["rss_start_mb"]
    print(f"   growth {growth:.1f} MB (target <= 50): {'yes' if growth <= 50 else 'NO'}")


def slow_figures(base: str, port: int) -> None:
    slow = asyncio.run(slow_bodies(base, port))
    print("2. 50 slow-body clients:")
    print(
        f"   /health p50 {slow['health_p50_ms']:.1f} ms, p99 {slow['health_p99_ms']:.1f} ms "
        f"over {int(slow['health_samples'])} polls (target p99 < 100): "
        f"{'yes' if slow['health_p99_ms'] < 100 else 'NO'}"
    )


def gemini_figures(base: str, gemini_url: str, rounds: int, pid: int, gemini_pid: int) -> None:
    for model in ("offline", "gemini-2.5-flash"):
        asyncio.run(concurrent(base, model, 20))  # warm-up: connections, first-use costs
    seconds: dict[str, list[float]] = {"offline": [], "gemini-2.5-flash": []}
    health: dict[str, list[float]] = {"offline": [], "gemini-2.5-flash": []}
    cpu: dict[str, float] = {"offline": 0.0, "gemini-2.5-flash": 0.0}
    others: dict[str, float] = {"offline": 0.0, "gemini-2.5-flash": 0.0}  # upstream + clients
    windows: list[tuple[str, float, float]] = []
    with HealthPoller(base) as poller:
        for _ in range(rounds):
            for model in seconds:
                before, others_before = cpu_s(pid), cpu_s(gemini_pid) + time.process_time()
                start, end = asyncio.run(concurrent(base, model, 200))
                cpu[model] += cpu_s(pid) - before
                others[model] += cpu_s(gemini_pid) + time.process_time() - others_before
                seconds[model].append(end - start)
                windows.append((model, start, end))
                time.sleep(0.2)  # let the server settle between bursts
    for model, start, end in windows:
        health[model].extend(poller.during(start, end))
    ratios = [g / o for g, o in zip(seconds["gemini-2.5-flash"], seconds["offline"], strict=True)]
    ratio = statistics.median(ratios)
    p99 = pct(health["gemini-2.5-flash"], 0.99)
    print(f"3. 200 concurrent summaries (density 2: 3 calls each), {rounds} rounds:")
    for model, label in (("offline", "offline"), ("gemini-2.5-flash", "gemini ")):
        times = ", ".join(f"{t:.2f}" for t in seconds[model])
        print(
            f"   {label} s {times} (/health p50 {statistics.median(health[model]):.1f} ms, "
            f"p99 {pct(health[model], 0.99):.1f} ms over {len(health[model])} polls); "
            f"CPU a summary: server {cpu[model] / (rounds * 200) * 1000:.2f} ms, Gemini server "
            f"and clients {others[model] / (rounds * 200) * 1000:.2f} ms"
        )
    with urllib.request.urlopen(f"{gemini_url}/_requests") as resp:
        served = json.loads(resp.read())["requests"]
    print(
        f"   ratio per round {', '.join(f'{r:.2f}' for r in ratios)}; median {ratio:.2f} "
        f"(target <= 2): {'yes' if ratio <= 2 else 'NO'}; /health p99 during Gemini "
        f"{p99:.1f} ms (target < 100): {'yes' if p99 < 100 else 'NO'}; "
        f"gemini calls served by the local server: {served}"
    )


if __name__ == "__main__":
    main()
