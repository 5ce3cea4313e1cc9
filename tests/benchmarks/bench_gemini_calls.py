"""CPU per Gemini call: ``GeminiModel.generate`` beside the SDK used as its docs show.

Not a test; run it by hand::

    .venv/bin/python -m tests.benchmarks.bench_gemini_calls

The Gemini-protocol server runs in a process of its own (its CPU is not counted). Each
repeat sends 600 calls, 200 at a time, and reads this process's CPU time (user + system)
around them. The baseline, in the same run and process: ``client.aio.models.generate_content``
with a config dict (a per-call timeout in its ``http_options``) and the SDK's parsed
response, and without our ``__contains__`` on the
SDK's models (it is taken off for the baseline's repeats and put back after).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from google.genai import _common

from codi_eval.models import GeminiModel, GenerateRequest
from tests.benchmarks.bench_security import free_port

ROOT = Path(__file__).resolve().parents[2]
REQUEST = GenerateRequest(
    prompt="Summarize this code:\n" + "def add(a, b):\n    return a + b\n" * 3,
    system="You are a careful code summarizer.",
    temperature=0.0,
    seed=1,
    max_tokens=512,
    timeout_s=60.0,  # as Chain of Density's calls carry (CoDSettings.timeout_s)
)


async def cpu_ms_per_call(call: Callable[[], Awaitable[object]], calls: int, at_once: int) -> float:
    gate = asyncio.Semaphore(at_once)

    async def one() -> None:
        async with gate:
            await call()

    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    return (time.process_time() - started) / calls * 1000


async def measure(url: str, repeats: int) -> dict[str, list[float]]:
    model = GeminiModel("gemini-2.5-flash", api_key="bench-key", base_url=url)
    await model.start(call_timeout_s=REQUEST.timeout_s)
    client = model._client  # the baseline gives its timeout per call, as the docs show
    assert client is not None
    config = {
        "system_instruction": REQUEST.system,
        "temperature": REQUEST.temperature,
        "seed": REQUEST.seed,
        "max_output_tokens": REQUEST.max_tokens,
        "http_options": {"timeout": 60_000},  # the SDK's per-call timeout, in milliseconds
    }

    async def ours() -> object:
        return await model.generate(REQUEST)

    async def documented() -> object:
        response = await client.aio.models.generate_content(
            model="gemini-2.5-flash",
            contents=REQUEST.prompt,
            config=dict(config),  # type: ignore[arg-type]
        )
        return response.text

    shortcut = _common.BaseModel.__dict__["__contains__"]
    figures: dict[str, list[float]] = {"baseline": [], "GeminiModel": []}
    try:
        for _ in range(repeats):  # interleaved, so drift hits both alike
            del _common.BaseModel.__contains__
            try:
                await cpu_ms_per_call(documented, 20, 20)  # warm
                figures["baseline"].append(await cpu_ms_per_call(documented, 600, 200))
            finally:
                _common.BaseModel.__contains__ = shortcut  # type: ignore[attr-defined]
            await cpu_ms_per_call(ours, 20, 20)
            figures["GeminiModel"].append(await cpu_ms_per_call(ours, 600, 200))
    finally:
        await model.aclose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.servers.gemini_server", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().decode().strip()
        figures = asyncio.run(measure(url, args.repeats))
    finally:
        server.terminate()
        server.wait(timeout=30)
    medians = {name: statistics.median(values) for name, values in figures.items()}
    for name, values in figures.items():
        shown = ", ".join(f"{v:.3f}" for v in values)
        print(f"{name:<12} CPU ms a call: median {medians[name]:.3f} ({shown})")
    print(f"baseline / GeminiModel: {medians['baseline'] / medians['GeminiModel']:.2f}x")


if __name__ == "__main__":
    main()
