"""Runner throughput, efficiency and memory on the offline model with simulated latency.

    python -m tests.benchmarks.bench_runner --pg postgresql+psycopg://postgres@127.0.0.1/codi_bench \\
        [--runs 10000] [--latency-ms 50] [--concurrency 64]

Baseline: the ideal time = model calls × latency / concurrency (what a perfect scheduler with
free bookkeeping would take). Efficiency = ideal ÷ actual. Every run's trace, spans and
evaluations are stored in the given database. Peak RSS is measured after a run of a
quarter of the size too, to show memory does not grow with the number of runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from codi_eval.datasets import DatasetItem, load_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
CELLS = 4  # 2 prompt versions × density 1 and 2
CALLS_PER_RUN = (2 + 3) / 2  # density iterations + final, averaged over the two densities


def make_dataset(path: Path, items: int) -> None:
    source = load_jsonl(ROOT / "datasets" / "stdlib-functions.jsonl")
    rows = [
        DatasetItem(
            id=f"{source[i % len(source)].id}#{i}",
            language="python",
            code=source[i % len(source)].code,
            source={"copy_of": source[i % len(source)].id},
            reference=source[i % len(source)].reference,
        )
        for i in range(items)
    ]
    write_jsonl(rows, path)


def spec(path: Path, dataset: Path, name: str, latency_ms: int, concurrency: int) -> None:
    path.write_text(
        f"name: {name}\ndataset: {dataset}\nmatrix:\n  prompt: [cod_iteration@1, cod_iteration@2]\n"
        f"  density_iterations: [1, 2]\n  model: ['offline?latency_ms={latency_ms}']\n"
        f"judge: {{model: offline}}\nmetrics: [summary_quality, entity_density, identifier_coverage, rouge_l]\n"
        f"run: {{concurrency: {concurrency}}}\n"
    )


CHILD = """
import asyncio, json, resource, sys, time
from codi_eval.experiments.runner import Runner, prepare
from codi_eval.experiments.spec import load_spec
from codi_eval.settings import Settings
from codi_eval.store.engine import Store

async def main():
    settings = Settings.from_env()
    spec = load_spec(sys.argv[1])
    store = await Store.open(settings.database_url, pool_size=20)
    prepared = await prepare(store, spec, settings)
    runner = Runner(store, spec, prepared, settings=settings)
    start = time.perf_counter()
    cpu0 = time.process_time()
    progress = await runner.run()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    await store.close()
    print(json.dumps({"runs": progress.done, "failed": progress.failed, "calls": progress.stats.model_calls,
                      "seconds": elapsed, "cpu_s": cpu, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))

asyncio.run(main())
"""


def run_child(spec_path: Path, db: str) -> dict:  # type: ignore[type-arg]
    import json
    import os

    env = {**os.environ, "CODI_EVAL_DATABASE_URL": db}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(spec_path)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", required=True, help="an empty PostgreSQL database URL")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    from codi_eval.store.engine import upgrade

    upgrade(args.pg)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for runs in (args.runs // 4, args.runs):
            items = runs // CELLS
            dataset = Path(tmp) / f"bench-{items}.jsonl"
            make_dataset(dataset, items)
            spec_path = Path(tmp) / f"bench-{runs}.yaml"
            spec(
                spec_path,
                dataset,
                f"bench-{runs}-{int(time.time())}",
                args.latency_ms,
                args.concurrency,
            )
            result = run_child(spec_path, args.pg)
            ideal = result["calls"] * args.latency_ms / 1000 / args.concurrency
            result.update(
                ideal_s=ideal,
                efficiency=ideal / result["seconds"],
                runs_per_s=result["runs"] / result["seconds"],
            )
            results.append(result)
    engine = create_engine(args.pg)
    with engine.connect() as conn:
        stored = {
            t: conn.execute(text(f"select count(*) from {t}")).scalar()
            for t in ("runs", "traces", "spans", "evaluations")
        }
    engine.dispose()
    print(
        f"offline?latency_ms={args.latency_ms}, concurrency {args.concurrency}, PostgreSQL store, "
        f"{CALLS_PER_RUN} model calls per run on average"
    )
    print(
        f"{'runs':>7} {'calls':>7} {'seconds':>8} {'ideal s':>8} {'efficiency':>10} {'runs/s':>7} "
        f"{'CPU s':>6} {'peak RSS MB':>11}"
    )
    for r in results:
        print(
            f"{r['runs']:>7} {r['calls']:>7} {r['seconds']:>8.1f} {r['ideal_s']:>8.1f} {r['efficiency']:>10.2f} "
            f"{r['runs_per_s']:>7.0f} {r['cpu_s']:>6.1f} {r['peak_rss_mb']:>11.0f}"
        )
    print("stored:", stored)


if __name__ == "__main__":
    main()
