"""The runner beside a baseline checkout, in one session: efficiency, harness CPU per run
(this process plus the database server's share), runs/s at high concurrency, and two
workers against one.

Not a test; run it by hand (about ten minutes with the defaults)::

    git worktree add /work/wt-old 866dd5f && (cd /work/wt-old && python3 -m venv .venv \\
        && .venv/bin/pip install -q -e ".[dev]")
    .venv/bin/python -m tests.benchmarks.bench_runner_compare \\
        --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres --baseline /work/wt-old

Both checkouts run the same experiment shape as ``bench_runner`` (2 prompt versions ×
density 1 and 2 × one offline model with simulated latency, offline judge, four metrics)
in a child process against a fresh PostgreSQL database of their own (the baseline's schema
may be older). Each figure is the median of ``--repeats`` runs, alternating the two checkouts
so that the machine's load falls on both alike. The database server's share is the CPU
time of the server processes that served the child's connections (``pg_stat_activity`` and
``/proc``), so it needs the server on this machine. This checkout runs twice: with
``share_calls`` (its default, fewer calls per run) and without (the baseline's calls).

Two workers against one: ``codi-eval run SPEC`` against ``codi-eval run SPEC --workers 2``
at a concurrency where one process is CPU-bound, wall time of the whole command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from codi_eval.datasets import DatasetItem, load_jsonl, write_jsonl
from tests.benchmarks.bench_runner import CELLS

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, json, os, sys, time
from sqlalchemy import text
from codi_eval.experiments.runner import Runner, prepare
from codi_eval.experiments.spec import load_spec
from codi_eval.settings import Settings
from codi_eval.store.engine import Store

TICK = os.sysconf("SC_CLK_TCK")

def cpu_of(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK

async def server_cpu(store):
    async with store.engine.connect() as conn:
        pids = (await conn.execute(text(
            "select pid from pg_stat_activity where datname = current_database()"))).scalars().all()
    return {pid: cpu_of(pid) for pid in pids}

async def main():
    settings = Settings.from_env()
    spec = load_spec(sys.argv[1])
    store = await Store.open(settings.database_url, pool_size=20)
    prepared = await prepare(store, spec, settings)
    runner = Runner(store, spec, prepared, settings=settings)
    before = await server_cpu(store)
    start = time.perf_counter()
    cpu0 = time.process_time()
    progress = await runner.run()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    after = await server_cpu(store)
    db_cpu = sum(v - before.get(pid, 0.0) for pid, v in after.items())
    await store.close()
    print(json.dumps({"runs": progress.done, "failed": progress.failed,
                      "calls": progress.stats.model_calls, "seconds": elapsed, "cpu_s": cpu,
                      "db_cpu_s": db_cpu}))

asyncio.run(main())
"""


def make_dataset(path: Path, items: int, salt: str) -> None:
    """``items`` copies of stdlib functions; ``salt`` makes every code of its own, so no
    repeat finds an earlier one's answers in the store's call cache."""
    source = load_jsonl(ROOT / "datasets" / "stdlib-functions.jsonl")
    rows = []
    for i in range(items):
        item = source[i % len(source)]
        rows.append(
            DatasetItem(
                id=f"{item.id}#{i}",
                language="python",
                code=f"{item.code}\n# {salt} {i}\n",
                source={"copy_of": item.id},
                reference=item.reference,
            )
        )
    write_jsonl(rows, path)


def write_spec(
    path: Path, dataset: Path, latency_ms: int, concurrency: int, extra_run: str = ""
) -> None:
    path.write_text(
        f"name: bench-{uuid.uuid4().hex[:8]}\ndataset: {dataset}\nmatrix:\n"
        "  prompt: [cod_iteration@1, cod_iteration@2]\n  density_iterations: [1, 2]\n"
        f"  model: ['offline?latency_ms={latency_ms}']\njudge: {{model: offline}}\n"
        "metrics: [summary_quality, entity_density, identifier_coverage, rouge_l]\n"
        f"run: {{concurrency: {concurrency}{extra_run}}}\n"
    )


class Databases:
    """Fresh databases on the server of ``--pg``, each at its checkout's schema; dropped at exit."""

    def __init__(self, admin: str) -> None:
        self.admin: URL = make_url(admin)
        self.engine = create_engine(self.admin, isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def create(self, python: str, cwd: Path) -> str:
        name = f"codi_bench_cmp_{uuid.uuid4().hex[:8]}"
        with self.engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        url = self.admin.set(database=name).render_as_string(hide_password=False)
        subprocess.run(
            [python, "-c", f"from codi_eval.store.engine import upgrade; upgrade({url!r})"],
            cwd=cwd,
            check=True,
            capture_output=True,
        )
        return url

    def drop_all(self) -> None:
        with self.engine.connect() as conn:
            for name in self.names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.engine.dispose()


def env_for(db: str) -> dict[str, str]:
    env = {**os.environ, "CODI_EVAL_DATABASE_URL": db, "NO_COLOR": "1"}
    for key in ("OPIK_URL_OVERRIDE", "OPIK_API_KEY", "OPIK_WORKSPACE"):
        env.pop(key, None)
    return env


def run_child(python: str, cwd: Path, spec_path: Path, db: str) -> dict[str, Any]:
    out = subprocess.run(
        [python, "-c", CHILD, str(spec_path)],
        env=env_for(db),
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    if out.returncode != 0:
        raise SystemExit(f"{cwd}: the child failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["failed"]:
        raise SystemExit(f"{cwd}: {result['failed']} runs failed")
    return result


def run_cli(python: str, cwd: Path, spec_path: Path, db: str, *extra: str) -> dict[str, Any]:
    before = os.times()
    start = time.perf_counter()
    out = subprocess.run(
        [python, "-m", "codi_eval", "run", str(spec_path), "--json", *extra],
        env=env_for(db),
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    seconds = time.perf_counter() - start
    after = os.times()
    if out.returncode != 0:
        raise SystemExit(f"{cwd}: run {' '.join(extra)} failed:\n{out.stderr[-3000:]}")
    summary = json.loads(out.stdout)
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    # The workers' own span: from the first claim to the last run's end (the whole command
    # adds start-up, preparing the runs and the final table, which one process does alone).
    engine = create_engine(db)
    with engine.connect() as conn:
        work_s = conn.execute(
            text(
                "select extract(epoch from max(finished_at) - min(started_at)) from runs "
                "where experiment_id = :e"
            ),
            {"e": summary["experiment_id"]},
        ).scalar_one()
    engine.dispose()
    return {
        "runs": summary["runs_succeeded"],
        "seconds": seconds,
        "cpu_s": cpu,
        "work_s": float(work_s),
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", required=True, help="a PostgreSQL URL to create databases on")
    parser.add_argument("--baseline", required=True, type=Path, help="the baseline checkout")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--high", type=int, default=256, help="the CPU-bound concurrency")
    parser.add_argument("--skip-workers", action="store_true", help="skip two workers vs one")
    parser.add_argument(
        "--only-workers", action="store_true", help="only two workers vs one (no baseline)"
    )
    args = parser.parse_args()
    old_python = str(args.baseline / ".venv" / "bin" / "python")
    new_python = sys.executable
    dbs = Databases(args.pg)
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            variants = [
                ("baseline", old_python, args.baseline, ""),
                ("this", new_python, ROOT, ""),
                ("this, share_calls off", new_python, ROOT, ", share_calls: false"),
            ]
            if args.only_workers:
                variants = variants[1:2]
            databases = {label: dbs.create(py, cwd) for label, py, cwd, _ in variants}
            for concurrency in () if args.only_workers else (64, args.high):
                for i in range(args.repeats):
                    for label, python, cwd, extra in variants:
                        salt = uuid.uuid4().hex[:8]
                        dataset = Path(tmp) / f"{salt}.jsonl"
                        make_dataset(dataset, args.runs // CELLS, salt)
                        spec_path = Path(tmp) / f"{salt}.yaml"
                        write_spec(spec_path, dataset, args.latency_ms, concurrency, extra)
                        result = run_child(python, cwd, spec_path, databases[label])
                        rows.setdefault((label, concurrency), []).append(result)
                        print(
                            f"  c={concurrency} #{i + 1} {label:22} {result['seconds']:6.1f} s "
                            f"{result['calls']:>6} calls cpu {result['cpu_s']:5.1f} "
                            f"+ db {result['db_cpu_s']:5.1f}",
                            flush=True,
                        )
            workers: dict[str, list[dict[str, Any]]] = {}
            if not args.skip_workers:
                for i in range(args.repeats):
                    shapes: list[tuple[str, list[str]]] = [
                        ("one process", []),
                        ("--workers 2", ["--workers", "2"]),
                    ]
                    for label, flags in shapes:
                        salt = uuid.uuid4().hex[:8]
                        dataset = Path(tmp) / f"{salt}.jsonl"
                        make_dataset(dataset, args.runs // CELLS, salt)
                        spec_path = Path(tmp) / f"{salt}.yaml"
                        write_spec(spec_path, dataset, args.latency_ms, args.high)
                        result = run_cli(new_python, ROOT, spec_path, databases["this"], *flags)
                        workers.setdefault(label, []).append(result)
                        print(
                            f"  workers #{i + 1} {label:12} {result['seconds']:6.1f} s "
                            f"{result['runs'] / result['seconds']:6.0f} runs/s; working "
                            f"{result['work_s']:5.1f} s {result['runs'] / result['work_s']:6.0f} "
                            "runs/s",
                            flush=True,
                        )
    finally:
        dbs.drop_all()

    print(
        f"\n{args.runs:,} runs, offline?latency_ms={args.latency_ms}, PostgreSQL, "
        f"median of {args.repeats}"
    )
    print(
        f"{'variant':24} {'c':>4} {'calls/run':>9} {'seconds':>8} {'efficiency':>10} "
        f"{'runs/s':>7} {'CPU ms/run':>10} {'+ db ms/run':>11} {'harness ms/run':>14}"
    )
    summary: dict[tuple[str, int], dict[str, float]] = {}
    for (label, concurrency), results in rows.items():
        m = {
            key: median([r[key] for r in results])
            for key in ("seconds", "cpu_s", "db_cpu_s", "calls")
        }
        runs = results[0]["runs"]
        m["efficiency"] = median(
            [r["calls"] * args.latency_ms / 1000 / concurrency / r["seconds"] for r in results]
        )
        m["runs_per_s"] = runs / m["seconds"]
        m["cpu_ms"] = 1000 * m["cpu_s"] / runs
        m["db_ms"] = 1000 * m["db_cpu_s"] / runs
        m["harness_ms"] = m["cpu_ms"] + m["db_ms"]
        summary[(label, concurrency)] = m
        print(
            f"{label:24} {concurrency:>4} {m['calls'] / runs:>9.2f} {m['seconds']:>8.1f} "
            f"{m['efficiency']:>10.2f} {m['runs_per_s']:>7.0f} {m['cpu_ms']:>10.2f} "
            f"{m['db_ms']:>11.2f} {m['harness_ms']:>14.2f}"
        )
    if summary:
        base64, new64 = summary[("baseline", 64)], summary[("this", 64)]
        base_hi, new_hi = summary[("baseline", args.high)], summary[("this", args.high)]
        print("\nratios, this checkout ÷ baseline (share_calls on; off in brackets)")
        off64 = summary[("this, share_calls off", 64)]
        off_hi = summary[("this, share_calls off", args.high)]
        print(
            f"  efficiency at c=64: {new64['efficiency']:.2f} (target ≥ 0.90; baseline "
            f"{base64['efficiency']:.2f}; off {off64['efficiency']:.2f})"
        )
        print(
            f"  harness CPU per run at c=64: baseline ÷ this = "
            f"{base64['harness_ms'] / new64['harness_ms']:.2f}× lower "
            f"({base64['harness_ms'] / off64['harness_ms']:.2f}×) (target ≥ 2×)"
        )
        print(
            f"  runs/s at c={args.high}: {new_hi['runs_per_s'] / base_hi['runs_per_s']:.2f}× "
            f"({off_hi['runs_per_s'] / base_hi['runs_per_s']:.2f}×) (target ≥ 1.8×)"
        )
    if workers:
        one = median([r["runs"] / r["seconds"] for r in workers["one process"]])
        two = median([r["runs"] / r["seconds"] for r in workers["--workers 2"]])
        one_w = median([r["runs"] / r["work_s"] for r in workers["one process"]])
        two_w = median([r["runs"] / r["work_s"] for r in workers["--workers 2"]])
        print(
            f"  run --workers 2 ÷ one process at c={args.high}: {two / one:.2f}× "
            f"({two:.0f} vs {one:.0f} runs/s, target ≥ 1.6×); while working "
            f"{two_w / one_w:.2f}× ({two_w:.0f} vs {one_w:.0f} runs/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
