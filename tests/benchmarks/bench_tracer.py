"""Tracer overhead per span, disabled and enabled, against a plain call in the same run.

    python -m tests.benchmarks.bench_tracer [--n 20000] [--pg postgresql+psycopg://...]

Baseline: ``await work()`` with no tracing. Cases: the same call wrapped in
``async with tracer.span(...)`` with tracing off; on, collecting in memory; on, written
through the batching StoreSink to SQLite and (with --pg) PostgreSQL. Reports µs per span
and the ratio to the baseline. Not a test: numbers go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable

from codi_eval.store.engine import Store, upgrade
from codi_eval.tracing import CollectingSink, StoreSink, Tracer

SPANS_PER_TRACE = 10


async def work() -> int:
    return 1


async def plain(n: int, _tracer: Tracer | None) -> None:
    for _ in range(n):
        await work()


async def spans(n: int, tracer: Tracer) -> None:
    # Traces of SPANS_PER_TRACE spans each, as a summarization has (iterations, final, judge...).
    for _ in range(n // SPANS_PER_TRACE):
        async with tracer.trace("bench", trace_type="bench"):
            for _ in range(SPANS_PER_TRACE):
                async with tracer.span("step", type="llm") as s:
                    await work()
                    s.set_usage(10, 5)


async def concurrent_spans(n: int, tracer: Tracer) -> None:
    # 64 traces at a time, as the runner has in flight: the sink writes them in shared batches.
    traces = n // SPANS_PER_TRACE

    async def one() -> None:
        async with tracer.trace("bench", trace_type="bench"):
            for _ in range(SPANS_PER_TRACE):
                async with tracer.span("step", type="llm") as s:
                    await work()
                    s.set_usage(10, 5)

    for start in range(0, traces, 64):
        await asyncio.gather(*(one() for _ in range(min(64, traces - start))))


async def decorated(n: int, tracer: Tracer) -> None:
    @tracer.track()
    async def tracked() -> int:
        return 1

    for _ in range(n):
        await tracked()


async def timed(
    fn: Callable[[int, Tracer], Awaitable[None]], n: int, tracer: Tracer, repeats: int
) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        await fn(n, tracer)
        if isinstance(tracer.sink, StoreSink):
            await tracer.sink.close()  # the cost of storing is part of the enabled case
        samples.append((time.perf_counter() - start) / n)
    return statistics.median(samples)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pg", default=None, help="PostgreSQL URL for the store-sink case")
    args = parser.parse_args()

    off = Tracer(CollectingSink(), enabled=False)
    results: list[tuple[str, float]] = []
    base = await timed(plain, args.n, off, args.repeats)
    results.append(("plain call (baseline)", base))
    results.append(("span, tracing disabled", await timed(spans, args.n, off, args.repeats)))
    results.append(("@track, tracing disabled", await timed(decorated, args.n, off, args.repeats)))
    mem = Tracer(CollectingSink())
    results.append(("span, enabled, in memory", await timed(spans, args.n, mem, args.repeats)))
    with tempfile.TemporaryDirectory() as tmp:
        stores = [("SQLite", f"sqlite:///{tmp}/bench.db")] + (
            [("PostgreSQL", args.pg)] if args.pg else []
        )
        for label, url in stores:
            upgrade(url)
            store = await Store.open(url)
            repeats = max(1, args.repeats // 2)
            results.append(
                (
                    f"span, enabled, {label}, one trace at a time",
                    await timed(spans, args.n, Tracer(StoreSink(store)), repeats),
                )
            )
            results.append(
                (
                    f"span, enabled, {label}, 64 traces at a time",
                    await timed(concurrent_spans, args.n, Tracer(StoreSink(store)), repeats),
                )
            )
            await store.close()

    print(
        f"n={args.n} calls per case, median of {args.repeats} runs, {SPANS_PER_TRACE} spans per trace"
    )
    print(f"{'case':44} {'µs/call':>10} {'× plain':>9} {'overhead µs':>12}")
    for name, seconds in results:
        print(
            f"{name:44} {seconds * 1e6:10.2f} {seconds / base:9.1f} {(seconds - base) * 1e6:12.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
