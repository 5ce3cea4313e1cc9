"""Managing experiments from the command line as a user would: list, show, export, delete,
`show` of what the model wrote, and one store wherever you stand (the real console script in
a subprocess; SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli_helpers import CLI, ROOT, run_cli, scalar
from tests.view_helpers import small_spec

TABLES = ("experiments", "experiment_cells", "runs", "traces", "spans", "evaluations")


def no_env_cli(
    *args: str, cwd: Path, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI as a new user runs it: no CODI_EVAL_DATABASE_URL, its own home and data dir."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("CODI_EVAL_", "OPIK_"))}
    full.update(
        {
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "NO_COLOR": "1",
            "OPIK_SENTRY_ENABLE": "false",
            "OPIK_ANALYTICS_ENABLE": "false",
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
    )
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=full, cwd=cwd, timeout=300
    )


def user_store(home: Path) -> Path:
    return home / ".local" / "share" / "codi-eval" / "codi_eval.db"


def test_a_read_only_command_on_no_store_names_it_and_leaves_no_file(tmp_path: Path) -> None:
    home, here = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    here.mkdir()
    compare = no_env_cli("compare", "quickstrt", "--a", "x", "--b", "y", cwd=here, home=home)
    assert compare.returncode == 2, compare.stderr
    assert str(user_store(home)) in compare.stderr and "no store" in compare.stderr
    for command in (["show", "quickstart"], ["report", "quickstart"]):
        result = no_env_cli(*command, cwd=here, home=home)
        assert result.returncode == 2 and str(user_store(home)) in result.stderr
    listing = no_env_cli("experiments", "list", cwd=here, home=home)
    assert listing.returncode == 0 and "does not exist yet" in listing.stdout
    assert not user_store(home).exists() and not (here / "codi_eval.db").exists()
    assert list(here.iterdir()) == []


def test_one_store_from_any_directory_with_did_you_mean(tmp_path: Path) -> None:
    home, a, b = tmp_path / "home", tmp_path / "a", tmp_path / "b"
    for d in (home, a, b):
        d.mkdir()
    spec = small_spec(tmp_path, 3)
    ran = no_env_cli("run", str(spec), cwd=a, home=home)
    assert ran.returncode == 0, ran.stderr
    assert user_store(home).is_file() and not (a / "codi_eval.db").exists()
    listing = no_env_cli("experiments", "list", "--json", cwd=b, home=home)
    data = json.loads(listing.stdout)
    assert [e["name"] for e in data["experiments"]] == ["quick-small"]
    assert data["store"].endswith(str(user_store(home)))
    wrong = no_env_cli("compare", "quick-smal", "--a", "x", "--b", "y", cwd=b, home=home)
    assert wrong.returncode == 2
    assert "did you mean 'quick-small'" in wrong.stderr and str(user_store(home)) in wrong.stderr
    cell = no_env_cli(
        "show", "quick-small", "--cell", "cod_iteration@2/d4/offline", cwd=b, home=home
    )
    assert cell.returncode == 2 and "did you mean 'cod_iteration@2/d3/offline'" in cell.stderr
    assert not (b / "codi_eval.db").exists()


def test_a_project_directory_keeps_its_own_store(tmp_path: Path) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    (project / ".codi-eval").mkdir(parents=True)
    (project / "src" / "deep").mkdir(parents=True)
    home.mkdir()
    ran = no_env_cli("run", str(small_spec(tmp_path, 2)), cwd=project / "src" / "deep", home=home)
    assert ran.returncode == 0, ran.stderr
    assert (project / ".codi-eval" / "codi_eval.db").is_file()
    assert not user_store(home).exists()
    listing = no_env_cli("experiments", "list", "--json", cwd=project, home=home)
    assert [e["name"] for e in json.loads(listing.stdout)["experiments"]] == ["quick-small"]


@pytest.fixture(params=["sqlite", "postgres"])
def cli_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cli.db'}"
    return str(request.getfixturevalue("pg_store_url"))


def test_show_prints_iterations_and_reasons_and_export_writes_a_row_per_run(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert run_cli("run", str(small_spec(tmp_path, 3)), db_url=url).returncode == 0
    shown = run_cli("show", "quick-small", "--cell", "v2/d3", "--item", "b64encode", db_url=url)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "iteration 1 of 3" in text and "iteration 3 of 3" in text
    assert "added b64encode, s, altchars" in text
    assert "summary_quality 1.000" in text and "offline heuristic" in text
    assert "judge: summary_quality" in text  # the span timeline

    best = run_cli("show", "quick-small", "--cell", "v1/d1", "-n", "1", db_url=url)
    assert "best" in best.stdout and "worst" in best.stdout and "judge: offline" in best.stdout

    out = tmp_path / "runs.csv"
    exported = run_cli("experiments", "export", "quick-small", "--out", str(out), db_url=url)
    assert exported.returncode == 0, exported.stderr
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 3
    assert all(r["summary"] and r["judge_reason"] and r["summary_quality"] for r in rows)
    assert "judge_score" not in rows[0]
    parquet = tmp_path / "runs.parquet"
    result = run_cli(
        "experiments", "export", "quick-small", "--format", "parquet", "--out", str(parquet),
        db_url=url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    import pandas as pd

    frame = pd.read_parquet(parquet)
    assert len(frame) == 12 and frame["summary_quality"].dtype == "float64"


def _add_outbox(url: str, rows: list[tuple[str, str]]) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        for kind, entity in rows:
            conn.execute(
                text(
                    "insert into opik_outbox (kind, entity_id, status, attempts, created_at) "
                    "values (:k, :e, 'pending', 0, CURRENT_TIMESTAMP)"
                ),
                {"k": kind, "e": entity},
            )
    engine.dispose()


def test_delete_asks_then_removes_every_row_of_the_experiment_and_nothing_else(
    cli_store: str, tmp_path: Path
) -> None:
    import uuid

    from tests.cli_helpers import query

    assert run_cli("run", str(small_spec(tmp_path, 3)), db_url=cli_store).returncode == 0
    other = small_spec(tmp_path, 2, name="keep-me")
    assert run_cli("run", str(other), db_url=cli_store).returncode == 0
    exp_id = query(cli_store, "select id from experiments where name = 'quick-small'")[0][0]
    trace_id = query(
        cli_store,
        "select r.trace_id from runs r join experiments e on e.id = r.experiment_id "
        "where e.name = 'quick-small'",
    )[0][0]
    _add_outbox(
        cli_store,
        [("experiment", str(uuid.UUID(str(exp_id)))), ("trace", str(uuid.UUID(str(trace_id)))),
         ("dataset", "unrelated")],
    )  # fmt: skip

    refused = run_cli("experiments", "delete", "quick-small", db_url=cli_store)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert scalar(cli_store, "select count(*) from experiments") == 2

    before = {t: scalar(cli_store, f"select count(*) from {t}") for t in TABLES}
    deleted = run_cli("experiments", "delete", "quick-small", "--yes", "--json", db_url=cli_store)
    assert deleted.returncode == 0, deleted.stderr
    counts = json.loads(deleted.stdout)["rows"]
    assert counts["runs"] == 12 and counts["traces"] == 12 and counts["spans"] > 12
    assert counts["outbox"] == 2
    after = {t: scalar(cli_store, f"select count(*) from {t}") for t in TABLES}
    # Exactly the deleted experiment's rows are gone; the other experiment is whole.
    assert after["experiments"] == 1 and after["experiment_cells"] == 4
    assert after["runs"] == before["runs"] - 12 == 4 * 2
    assert after["traces"] == before["traces"] - 12
    assert after["spans"] == before["spans"] - counts["spans"]
    assert after["evaluations"] == before["evaluations"] - counts["evaluations"]
    assert query(cli_store, "select name from experiments") == [("keep-me",)]
    assert [r[0] for r in query(cli_store, "select kind from opik_outbox")] == ["dataset"]
    orphans = scalar(
        cli_store, "select count(*) from spans where trace_id not in (select id from traces)"
    ) + scalar(
        cli_store,
        "select count(*) from evaluations where trace_id not in (select id from traces)",
    )
    assert orphans == 0


def test_serve_prints_no_migration_log_lines_unless_verbose(tmp_path: Path) -> None:
    import time

    for verbose in (False, True):
        url = f"sqlite:///{tmp_path / f'serve-{verbose}.db'}"
        env = {**os.environ, "CODI_EVAL_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
        args = [*CLI, *(["-v"] if verbose else []), "serve", "--port", "0"]
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
        lines: list[str] = []
        deadline = time.monotonic() + 60
        try:
            assert proc.stderr is not None
            while time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line:
                    break
                lines.append(line)
                if "Ctrl-C to stop" in line:
                    break
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        text = "".join(lines)
        assert "Ctrl-C to stop" in text, text
        assert ("alembic" in text) is verbose, text
