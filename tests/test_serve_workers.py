"""``codi-eval serve --workers N``: N processes on one port, restarted when one dies, stopped
gracefully (queued traces written) by SIGTERM or Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import CLI, ROOT, run_cli
from tests.cli_helpers import scalar as count


class Server:
    """``codi-eval serve --port 0 --workers N`` with its output collected as it comes."""

    def __init__(self, db_url: str, cwd: Path, workers: int) -> None:
        env = {**os.environ, "CODI_EVAL_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}
        env.update(NO_COLOR="1", COLUMNS="200")
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--port", "0", "--workers", str(workers)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        match = self.wait_for(r"http://127\.0\.0\.1:(\d+)/api/v1")
        self.base = f"http://127.0.0.1:{match.group(1)}/api/v1"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in the output:\n{''.join(self.lines)}")

    def workers(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
        ).stdout
        return sorted(int(pid) for pid in out.split())

    def request(
        self, path: str, token: str, body: dict[str, object] | None = None, method: str = "GET"
    ) -> object:
        req = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(req, timeout=30) as response:
            return json.loads(response.read())


@pytest.fixture
def serve(pg_store_url: str, tmp_path: Path) -> Iterator[object]:
    started: list[Server] = []

    def start(workers: int) -> Server:
        started.append(Server(pg_store_url, tmp_path, workers))
        return started[-1]

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def token(db_url: str, name: str) -> str:
    result = run_cli("users", "create", name, "--json", db_url=db_url)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["token"])


def test_workers_share_the_port_and_one_that_dies_is_restarted(serve, pg_store_url: str) -> None:  # type: ignore[no-untyped-def]
    server = serve(2)
    secret = token(pg_store_url, "alice")
    first = server.workers()
    assert len(first) == 2, server.lines
    os.kill(first[0], signal.SIGKILL)
    server.wait_for(rf"worker 0 \(pid {first[0]}\) exited with -9; restarting it")
    deadline = time.monotonic() + 60
    while (now := server.workers()) == [first[1]] or len(now) < 2:
        assert time.monotonic() < deadline, server.lines
        time.sleep(0.1)
    assert first[0] not in now and first[1] in now
    # Every request on fresh connections is answered while and after a worker is replaced.
    for _ in range(20):
        assert server.request("/health", secret) == {"status": "ok", "database": "ok"}
    assert server.proc.poll() is None


def test_sigterm_stops_every_worker_and_writes_the_traces_they_queued(
    serve, pg_store_url: str
) -> None:  # type: ignore[no-untyped-def]
    server = serve(2)
    secret = token(pg_store_url, "bob")
    server.request("/users/me/opik-settings", secret, {"opik_enabled": True}, "PATCH")
    code = "def add(a, b):\n    return a + b\n"
    ids = [
        server.request("/summarize/code", secret, {"code": code, "density_iterations": 1}, "POST")
        for _ in range(6)
    ]
    workers = server.workers()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0, server.lines
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
    traced = {str(r["trace_id"]) for r in ids}  # type: ignore[index]
    assert len(traced) == 6
    stored = count(pg_store_url, "select count(*) from traces")
    assert stored == 6, server.lines
    assert not any("Traceback" in line for line in server.lines), server.lines


def test_one_worker_serve_stops_gracefully_on_sigterm_too(serve, pg_store_url: str) -> None:  # type: ignore[no-untyped-def]
    server = serve(1)
    secret = token(pg_store_url, "carol")
    assert server.request("/health", secret) == {"status": "ok", "database": "ok"}
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0, server.lines
