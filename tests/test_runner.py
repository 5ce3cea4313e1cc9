"""The experiment runner: specs, resume, cache, dry runs, faults, deadlines and SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from codi_eval.datasets import load_jsonl, write_jsonl
from codi_eval.errors import InputError
from codi_eval.experiments.runner import WRITE_LINGER_S, Runner, prepare, sample_positions
from codi_eval.experiments.spec import load_spec, parse_spec
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from tests.cli_helpers import CLI, ROOT, run_cli
from tests.cli_helpers import scalar as count
from tests.servers.gemini_server import GeminiServer

QUICK = ROOT / "datasets" / "quickstart.jsonl"


def small_dataset(tmp_path: Path, n: int) -> Path:
    items = load_jsonl(QUICK)[:n]
    path = tmp_path / f"small-{n}.jsonl"
    write_jsonl(items, path)
    return path


def write_spec(tmp_path: Path, body: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def spec_text(
    dataset: Path,
    *,
    name: str = "t",
    models: str = "[offline]",
    density: str = "[1, 2]",
    extra: str = "",
    run: str = "{concurrency: 4, max_retries: 2, timeout_s: 5, backoff_s: 0.01}",
    judge: str = "{model: offline}",
) -> str:
    return (
        f"name: {name}\ndataset: {dataset}\nmatrix:\n  prompt: [cod_iteration@1, cod_iteration@2]\n"
        f"  density_iterations: {density}\n  model: {models}\njudge: {judge}\nrun: {run}\n{extra}"
    )


# ---------------------------------------------------------------- spec


def test_spec_expands_cells_with_stable_keys(tmp_path: Path) -> None:
    spec = parse_spec(spec_text(small_dataset(tmp_path, 3), models="[offline, gemini-2.5-flash]"))
    keys = [c.key for c in spec.cells()]
    assert len(keys) == 8 and len(set(keys)) == 8
    assert "cod_iteration@2/d2/gemini-2.5-flash" in keys


@pytest.mark.parametrize(
    ("mutation", "line", "field", "message"),
    [
        ("repeats: two\n", 9, "repeats", "whole number"),
        ("sampel: {n: 3}\n", 9, "sampel", "did you mean 'sample'"),
        ("metrics: [rouge_l, entity_densty]\n", 9, "metrics[1]", "did you mean 'entity_density'"),
        ("run: {concurency: 3}\n", None, "run.concurency", "did you mean 'concurrency'"),
    ],
)
def test_spec_errors_name_file_line_and_field(
    tmp_path: Path, mutation: str, line: int | None, field: str, message: str
) -> None:
    body = spec_text(small_dataset(tmp_path, 3))
    if mutation.startswith("run:"):
        body = body.replace(
            "run: {concurrency: 4, max_retries: 2, timeout_s: 5, backoff_s: 0.01}", mutation.strip()
        )
    else:
        body += mutation
    path = write_spec(tmp_path, body)
    with pytest.raises(InputError) as info:
        load_spec(path)
    err = info.value
    assert err.file == str(path) and err.field == field and message in str(err)
    if line is not None:
        assert err.line == line


def test_sample_picks_the_same_items_every_time() -> None:
    assert sample_positions(100, 10, 7) == sample_positions(100, 10, 7)
    assert sample_positions(100, 10, 7) != sample_positions(100, 10, 8)
    assert sample_positions(5, 10, 7) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("problem", ["wrong_type", "unknown_prompt", "missing_dataset"])
def test_bad_specs_exit_2_before_anything_is_written(tmp_path: Path, problem: str) -> None:
    dataset = small_dataset(tmp_path, 3)
    body = spec_text(dataset)
    if problem == "wrong_type":
        body = body.replace("density_iterations: [1, 2]", "density_iterations: [1, many]")
    elif problem == "unknown_prompt":
        body = body.replace("cod_iteration@2", "cod_iteration@9")
    else:
        body = body.replace(str(dataset), str(tmp_path / "nope.jsonl"))
    path = write_spec(tmp_path, body)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    result = run_cli("run", str(path), db_url=db)
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr
    expected_field = {
        "wrong_type": "matrix.density_iterations[1]",
        "unknown_prompt": "matrix.prompt[1]",
        "missing_dataset": "dataset",
    }[problem]
    assert f"field '{expected_field}'" in result.stderr
    if (tmp_path / "x.db").exists():
        assert count(db, "select count(*) from experiments") == 0
        assert count(db, "select count(*) from runs") == 0


# ---------------------------------------------------------------- the main job


def test_quickstart_runs_then_reruns_with_zero_calls_and_the_same_numbers(store_url: str) -> None:
    first = run_cli("run", "experiments/quickstart.yaml", "--json", db_url=store_url)
    assert first.returncode == 0, first.stderr
    a = json.loads(first.stdout)
    assert a["runs_total"] == 80 and a["runs_succeeded"] == 80 and a["runs_failed"] == 0
    assert a["model_calls"] > 0 and len(a["cells"]) == 4
    for cell in a["cells"]:
        assert (
            0.0 <= cell["judge_mean"] <= 1.0
            and cell["judge_ci_low"] <= cell["judge_mean"] <= cell["judge_ci_high"]
        )
        assert {"entity_density", "identifier_coverage", "rouge_l", "compression"} <= set(
            cell["metrics"]
        )
    second = run_cli("run", "experiments/quickstart.yaml", "--json", db_url=store_url)
    assert second.returncode == 0, second.stderr
    b = json.loads(second.stdout)
    assert b["resumed"] and b["model_calls"] == 0 and b["experiment_id"] == a["experiment_id"]
    assert b["cells"] == a["cells"]
    assert count(store_url, "select count(*) from runs") == 80
    assert count(store_url, "select count(*) from traces") == 80
    table = run_cli("run", "experiments/quickstart.yaml", db_url=store_url)
    assert table.returncode == 0 and "cod_iteration@2/d3/offline" in table.stdout
    assert a["experiment_id"] in table.stdout


def test_a_changed_spec_under_an_existing_name_needs_new(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    dataset = small_dataset(tmp_path, 2)
    path = write_spec(tmp_path, spec_text(dataset, density="[1]"))
    assert run_cli("run", str(path), "--json", db_url=db).returncode == 0
    path.write_text(spec_text(dataset, density="[2]"))
    refused = run_cli("run", str(path), db_url=db)
    assert (
        refused.returncode == 2 and "--new" in refused.stderr and "field 'name'" in refused.stderr
    )
    accepted = run_cli("run", str(path), "--new", "--json", db_url=db)
    assert accepted.returncode == 0, accepted.stderr
    assert count(db, "select count(*) from experiments") == 2


def test_dry_run_prints_counts_and_cost_and_calls_no_model(tmp_path: Path) -> None:
    server = GeminiServer().start_in_thread()
    try:
        path = write_spec(
            tmp_path,
            spec_text(
                small_dataset(tmp_path, 5),
                models="[gemini-2.5-flash]",
                judge="{model: gemini-2.5-flash}",
            ),
        )
        env = {"GEMINI_API_KEY": "test-key", "GOOGLE_GEMINI_BASE_URL": server.base_url}
        result = run_cli(
            "run",
            str(path),
            "--dry-run",
            "--json",
            db_url=f"sqlite:///{tmp_path / 'd.db'}",
            env=env,
        )
        assert result.returncode == 0, result.stderr
        plan = json.loads(result.stdout)
        # 2 prompts × 2 densities × 5 items; calls per run = density + final + judge, but
        # density 2 reuses density 1's first iteration: it pays for one iteration, not two.
        assert plan["runs"] == 20 and plan["items"] == 5
        assert plan["model_calls"] == 5 * 2 * ((1 + 1 + 1) + (1 + 1 + 1))
        assert plan["estimated_cost"] > 0 and plan["prompt_tokens"] > 0
        assert server.requests == []
        assert count(f"sqlite:///{tmp_path / 'd.db'}", "select count(*) from runs") == 0
    finally:
        server.stop()


# ---------------------------------------------------------------- Gemini: cache, faults, deadline


async def _run(store: Store, path: Path, **kwargs: object) -> Runner:
    spec = load_spec(path)
    prepared = await prepare(store, spec, Settings.from_env({}), new=bool(kwargs.pop("new", False)))
    runner = Runner(store, spec, prepared, settings=Settings.from_env({}), **kwargs)  # type: ignore[arg-type]
    await runner.run()
    return runner


@pytest.fixture
def gemini_env(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def configure(server: GeminiServer) -> None:
        monkeypatch.setenv("GEMINI_API_KEY", "test-key")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)

    return configure


async def test_rerunning_with_new_hits_the_cache_and_repeats_stay_independent(
    store: Store, tmp_path: Path, gemini_env
) -> None:  # type: ignore[no-untyped-def]
    async with GeminiServer() as server:
        gemini_env(server)
        path = write_spec(
            tmp_path,
            spec_text(
                small_dataset(tmp_path, 3),
                models="[gemini-2.5-flash]",
                density="[1]",
                extra="repeats: 2\n",
            ),
        )
        first = await _run(store, path)
        calls = len(server.requests)
        stats = first.progress.stats
        # 2 prompts × 3 items × 2 repeats × (1 iteration + final). The fake server answers both
        # prompt versions alike, so their final prompts are identical and hit the cache.
        assert stats.model_calls == calls and stats.model_calls + stats.cache_hits == 2 * 3 * 2 * 2
        repeats = {
            (
                r.json["contents"][0]["parts"][0]["text"],
                r.json.get("generationConfig", {}).get("seed"),
            )
            for r in server.requests
        }
        assert (
            len(repeats) < calls
        )  # the same prompt was sent once per repeat: repeats are not cached
        second = await _run(store, path, new=True)
        assert len(server.requests) == calls  # zero model calls
        assert second.progress.stats.model_calls == 0 and second.progress.stats.cache_hits == 24
        async with store.session() as session:
            hits = (await session.execute(text("select sum(hits) from llm_cache"))).scalar()
        # Every store hit is counted: each distinct request was looked up once (its repeats
        # within the run were answered from memory).
        assert hits == calls
        third = await _run(store, path, new=True, use_cache=False)
        # No store cache: the models are called again, each distinct request once.
        assert third.progress.stats.model_calls == calls and len(server.requests) == 2 * calls


async def test_faults_are_survived_and_every_run_ends_with_a_status(
    store: Store, tmp_path: Path, gemini_env
) -> None:  # type: ignore[no-untyped-def]
    # The first three requests get one fault of each kind; after that half of all calls fail
    # (with one retry, a run fails with probability ~0.44, so all 12 passing is ~1e-3).
    async with GeminiServer(
        faults=["server_error", "rate_limit", "hang"],
        fault_rate=0.5,
        fault_kinds=("rate_limit", "server_error", "hang"),
        hang_s=3.0,
        retry_after=0.05,
        seed=3,
    ) as server:
        gemini_env(server)
        path = write_spec(
            tmp_path,
            spec_text(
                small_dataset(tmp_path, 6),
                models="[gemini-2.5-flash]",
                density="[1]",
                run="{concurrency: 8, max_retries: 1, timeout_s: 0.5, backoff_s: 0.01, requests_per_minute: 100000}",
            ),
        )
        runner = await _run(store, path)
    async with store.session() as session:
        rows = (await session.execute(text("select status, error_class, trace_id from runs"))).all()
    assert len(rows) == 12
    assert all(status in ("succeeded", "failed") for status, _, _ in rows)
    failed = [r for r in rows if r[0] == "failed"]
    assert runner.progress.failed == len(failed) and runner.progress.succeeded == 12 - len(failed)
    assert failed, "with a 50% fault rate and one retry some runs must fail"
    assert {r[1] for r in failed} <= {"rate_limited", "server_error", "timeout"}
    assert all(r[2] is not None for r in rows)  # failed runs keep their trace with the error
    assert runner.progress.stats.retries > 0
    faults = {r.fault for r in server.requests if r.fault}
    assert {"rate_limit", "server_error", "hang"} <= faults


async def test_a_run_past_its_deadline_fails_as_deadline(
    store: Store, tmp_path: Path, gemini_env
) -> None:  # type: ignore[no-untyped-def]
    async with GeminiServer(faults=["hang"], hang_s=5.0) as server:
        gemini_env(server)
        path = write_spec(
            tmp_path,
            spec_text(
                small_dataset(tmp_path, 1),
                models="[gemini-2.5-flash]",
                density="[1]",
                run="{concurrency: 1, max_retries: 0, timeout_s: 30, run_deadline_s: 0.5}",
            ),
        )
        started = time.monotonic()
        await _run(store, path)
        assert time.monotonic() - started < 4
    async with store.session() as session:
        classes = sorted(
            r[0] or "" for r in (await session.execute(text("select error_class from runs"))).all()
        )
    assert classes[0] == "" or "deadline" in classes


# ---------------------------------------------------------------- crash safety


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_mid_run_then_resume_leaves_exactly_one_run_per_cell_item_repeat(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    db = (
        f"sqlite:///{tmp_path / 'k.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_store_url")
    )
    path = write_spec(
        tmp_path,
        spec_text(
            small_dataset(tmp_path, 20),
            models="['offline?latency_ms=40']",
            density="[2]",
            run="{concurrency: 4}",
        ),
    )
    env = {**os.environ, "CODI_EVAL_DATABASE_URL": db}
    proc = subprocess.Popen(
        [*CLI, "run", str(path), "--json"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                done = count(db, "select count(*) from runs where status = 'succeeded'")
            except Exception:
                done = 0
            if done >= 6:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = count(db, "select count(*) from runs where status = 'succeeded'")
    assert 6 <= killed_at < 40
    resumed = run_cli("run", str(path), "--json", db_url=db)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["runs_executed_now"] == 40 - killed_at
    assert count(db, "select count(*) from runs") == 40
    assert count(db, "select count(*) from runs where status = 'succeeded'") == 40
    assert (
        count(
            db,
            "select count(*) from (select cell_id, dataset_item_id, repeat from runs "
            "group by cell_id, dataset_item_id, repeat) x",
        )
        == 40
    )
    assert count(db, "select count(*) from traces") == 40  # no orphan or duplicate traces
    assert count(db, "select count(distinct run_id) from traces") == 40


def test_cli_entry_point_is_installed() -> None:
    assert (
        subprocess.run(
            [sys.executable, "-m", "codi_eval", "--help"], capture_output=True
        ).returncode
        == 0
    )


def test_a_model_parameter_the_provider_does_not_take_is_refused_at_spec_time(
    tmp_path: Path,
) -> None:
    path = write_spec(
        tmp_path, spec_text(small_dataset(tmp_path, 2), models="['offline?latency_ms=abc']")
    )
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert info.value.field == "matrix.model[0]" and info.value.line == 6
    assert "latency_ms" in str(info.value) and "number" in str(info.value)


async def test_runs_are_claimed_a_page_at_a_time_not_one_transaction_per_run(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the queue is full, the claimer must not fall back to claiming one run per
    transaction: each claim costs a round trip and a lock on the runs table."""
    import codi_eval.experiments.runner as runner_module

    pages: list[int] = []
    claim = runner_module.claim_runs

    async def counting(*args: object, **kwargs: object) -> list[object]:
        page = await claim(*args, **kwargs)  # type: ignore[arg-type]
        if page:
            pages.append(len(page))
        return page  # type: ignore[return-value]

    monkeypatch.setattr(runner_module, "claim_runs", counting)
    path = write_spec(
        tmp_path,
        spec_text(
            small_dataset(tmp_path, 20),
            density="[1, 2]",
            run="{concurrency: 4, max_retries: 2, timeout_s: 5, backoff_s: 0.01}",
        ),
    )
    runner = await _run(store, path)
    runs = 20 * 2 * 2
    assert runner.progress.succeeded == runs and sum(pages) == runs
    # Every page but the last is at least the concurrency.
    assert min(pages[:-1]) >= 4, pages


async def test_finished_runs_share_write_transactions_when_they_end_one_by_one(
    store: Store, tmp_path: Path
) -> None:
    """Runs that finish a few milliseconds apart must not each pay for a transaction (a
    COPY per table, the lease check and the run rows' update, and the database server's
    commit): the runner's writer lets a batch gather for a moment first."""
    path = write_spec(
        tmp_path,
        spec_text(
            small_dataset(tmp_path, 20),
            models="['offline?latency_ms=20']",
            run="{concurrency: 4, max_retries: 2, timeout_s: 5, backoff_s: 0.01}",
        ),
    )
    started = time.monotonic()
    runner = await _run(store, path)
    elapsed = time.monotonic() - started
    runs = 20 * 2 * 2
    assert runner.progress.succeeded == runs and runner.sink.trees_written == runs
    # About a second of runs four at a time, finishing ~10 ms apart: one batch per gathering
    # (two writers on PostgreSQL must not gather at once, halving every batch).
    assert runner.sink.batches_written <= runs // 5, runner.sink.batches_written
    assert runner.sink.batches_written <= elapsed / WRITE_LINGER_S + 2, (
        runner.sink.batches_written,
        elapsed,
    )
