"""Where a runner's time goes, second by second: runs done, trees written, the sink's queue,
batches and the process's CPU %, then the time to prepare, run and read the final table.

Not a test; run it by hand (about half a minute)::

    python -m tests.benchmarks.bench_runner_phases \\
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres [--runs 10000] [--concurrency 256] [--writers N]

It makes a fresh database on the server of ``--pg`` (dropped at exit) and the experiment of
``bench_runner_compare`` (salted items, so nothing is cached). A queue that grows while the
CPU is at 100 % and drains after the last run means the writer cannot keep up.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from codi_eval.analysis.cells import cell_results
from codi_eval.experiments.runner import Runner, prepare
from codi_eval.experiments.spec import load_spec
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from tests.benchmarks.bench_runner import CELLS
from tests.benchmarks.bench_runner_compare import ROOT, Databases, make_dataset, write_spec


async def measure(db: str, spec_path: Path, writers: int | None) -> None:
    settings = Settings.from_env({"CODI_EVAL_DATABASE_URL": db})
    spec = load_spec(spec_path)
    store = await Store.open(db)
    try:
        start = time.perf_counter()
        prepared = await prepare(store, spec, settings)
        ran = time.perf_counter()
        print(f"prepare {ran - start:.2f} s")
        runner = Runner(store, spec, prepared, settings=settings)
        if writers is not None:
            runner.sink.writers = writers  # the runner's own sink; its writers start on use

        async def monitor() -> None:
            cpu, wall = time.process_time(), time.perf_counter()
            while True:
                await asyncio.sleep(1)
                now_cpu, now = time.process_time(), time.perf_counter()
                sink = runner.sink
                print(
                    f"  t={now - ran:5.1f} s done={runner.progress.done:6} "
                    f"written={sink.trees_written:6} queue={sink._queue.qsize():6} "
                    f"batches={sink.batches_written:5} cpu={100 * (now_cpu - cpu) / (now - wall):3.0f}%",
                    flush=True,
                )
                cpu, wall = now_cpu, now

        watch = asyncio.create_task(monitor())
        await runner.run()
        watch.cancel()
        done = time.perf_counter()
        print(f"run {done - ran:.2f} s")
        await cell_results(store, prepared.experiment.id)
        print(f"final table {time.perf_counter() - done:.2f} s")
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", required=True, help="a PostgreSQL URL to create a database on")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument(
        "--writers", type=int, help="the sink's transactions in flight (default: the runner's)"
    )
    args = parser.parse_args()
    dbs = Databases(args.pg)
    try:
        db = dbs.create(sys.executable, ROOT)
        with tempfile.TemporaryDirectory() as tmp:
            salt = uuid.uuid4().hex[:8]
            dataset = Path(tmp) / f"{salt}.jsonl"
            make_dataset(dataset, args.runs // CELLS, salt)
            spec_path = Path(tmp) / f"{salt}.yaml"
            write_spec(spec_path, dataset, args.latency_ms, args.concurrency)
            asyncio.run(measure(db, spec_path, args.writers))
    finally:
        dbs.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
