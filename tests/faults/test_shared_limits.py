"""requests_per_minute and per-model concurrency hold across workers (kept in the store),
and a 429's Retry-After pauses the model for every worker."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import assert_exactly_once, cli_env, start
from tests.servers.gemini_server import GeminiServer, default_text

pytestmark = pytest.mark.postgres
QUICK = Path(__file__).resolve().parents[2] / "datasets" / "quickstart.jsonl"


class Clocked:
    """A responder that notes when each call arrived and how many were in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: list[float] = []

    def __call__(self, body: dict[str, Any]) -> str:
        with self.lock:
            self.times.append(time.monotonic())
        text = "".join(
            p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", [])
        )
        return default_text(text)


def _spec(tmp_path: Path, rpm: int, extra_run: str = "") -> Path:
    path = tmp_path / "limited.yaml"
    path.write_text(
        f"name: limited\ndataset: {QUICK}\nrepeats: 2\n"
        "matrix: {prompt: [cod_iteration@1], density_iterations: [1], model: [gemini-2.5-flash]}\n"
        "judge: {model: offline}\n"
        f"run: {{concurrency: 8, requests_per_minute: {rpm}, cache: false, backoff_s: 0.05{extra_run}}}\n"
    )
    return path


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_three_workers_never_exceed_the_shared_requests_per_minute(
    tmp_path: Path, pg_store_url: str
) -> None:
    clock = Clocked()
    gemini = GeminiServer(clock, require_api_key="k").start_in_thread()
    try:
        env = cli_env(pg_store_url, GEMINI_API_KEY="k", GOOGLE_GEMINI_BASE_URL=gemini.base_url)
        spec = _spec(tmp_path, rpm=600)  # 10 calls a second, whoever makes them
        first = start(["run", str(spec), "--json"], env)
        time.sleep(1.5)  # the experiment exists; two more workers join it
        workers = [start(["worker", "--json"], env) for _ in range(2)]
        out, err = first.communicate(timeout=240)
        for w in workers:
            w.communicate(timeout=240)
        assert first.returncode == 0, err[-2000:]
        assert json.loads(out)["runs_succeeded"] == 40
        assert_exactly_once(pg_store_url, 40)
        assert len(clock.times) == 80
        # A leaky bucket: calls start 0.1 s apart, whoever makes them, so any second holds
        # 10 starts, +1 on the window's edge, +1 for the network: a first call's connection
        # set-up can land it beside the next one. Over five seconds that slack stays 2.
        assert _max_in_window(clock.times, 1.0) <= 12, _max_in_window(clock.times, 1.0)
        assert _max_in_window(clock.times, 5.0) <= 52, _max_in_window(clock.times, 5.0)
        span = max(clock.times) - min(clock.times)
        assert span >= (80 - 11) / 10  # really spaced, not a burst
    finally:
        gemini.stop()


def test_a_429_pauses_the_model_for_every_worker(tmp_path: Path, pg_store_url: str) -> None:
    clock = Clocked()
    gemini = GeminiServer(
        clock,
        require_api_key="k",
        faults=[{"kind": "rate_limit", "retry_after": 3}],
    ).start_in_thread()
    try:
        env = cli_env(pg_store_url, GEMINI_API_KEY="k", GOOGLE_GEMINI_BASE_URL=gemini.base_url)
        spec = _spec(tmp_path, rpm=6000)
        procs = [start(["run", str(spec), "--json"], env) for _ in range(2)]
        outputs = [p.communicate(timeout=240) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
        limited = next(r for r in gemini.requests if r.fault == "rate_limit")
        others = [r.at for r in gemini.requests if r is not limited]
        # Calls already on their way may land just after it; then nobody, in either process,
        # calls again until the Retry-After (3 s) has passed.
        assert not [t for t in others if limited.at + 0.5 < t < limited.at + 2.5]
        assert any(t >= limited.at + 2.5 for t in others)
    finally:
        gemini.stop()
