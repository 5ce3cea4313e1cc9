"""The store: migrations on both engines, schema checks, JSON and timestamps round-trip."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, select

from codi_eval.datasets import load_jsonl
from codi_eval.store.datasets import import_items
from codi_eval.store.engine import (
    SchemaBehind,
    Store,
    alembic_config,
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    upgrade,
)
from codi_eval.store.models import Base, Evaluation, Span, Trace
from tests.cli_helpers import ROOT

TABLES = {
    "users",
    "model_limits",
    "model_slots",
    "projects",
    "traces",
    "trace_counts",
    "spans",
    "evaluations",
    "prompts",
    "datasets",
    "dataset_items",
    "experiments",
    "experiment_cells",
    "runs",
    "llm_cache",
    "opik_outbox",
}
SEED_TRACE_COLUMNS = {
    "id",
    "user_id",
    "project_id",
    "parent_trace_id",
    "trace_type",
    "name",
    "start_time",
    "end_time",
    "duration_ms",
    "input_data",
    "output_data",
    "meta_data",
    "tags",
    "created_at",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url.replace("+aiosqlite", ""))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("pg").create("codi_migr")


def test_upgrade_from_empty_creates_every_table(empty_url: str) -> None:
    assert current_revision(empty_url) is None
    upgrade(empty_url)
    assert current_revision(empty_url) == head_revision()
    assert TABLES <= _tables(empty_url)
    assert SEED_TRACE_COLUMNS <= _columns(empty_url, "traces")
    assert {
        "trace_id",
        "span_id",
        "metric_name",
        "score",
        "reason",
        "meta_data",
        "created_at",
    } <= _columns(empty_url, "evaluations")
    assert {"name", "version", "template", "variables", "template_hash"} <= _columns(
        empty_url, "prompts"
    )


def test_downgrade_then_upgrade_round_trips(empty_url: str) -> None:
    upgrade(empty_url)
    downgrade(empty_url, "base")
    assert current_revision(empty_url) is None
    assert _tables(empty_url) == set()
    upgrade(empty_url)
    assert TABLES <= _tables(empty_url)


def test_postgres_schema_matches_the_models_exactly(pg) -> None:  # type: ignore[no-untyped-def]
    url = pg.create("codi_drift")
    upgrade(url)
    command.check(alembic_config(url))  # raises when the models and migrations disagree


def test_sqlite_store_is_created_and_upgraded_on_first_use(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'nested' / 'new.db'}"
    ensure_schema(url)
    assert current_revision(url) == head_revision()


def test_postgres_store_that_is_behind_asks_for_db_upgrade(pg) -> None:  # type: ignore[no-untyped-def]
    url = pg.create("codi_behind")
    with pytest.raises(SchemaBehind, match="codi-eval db upgrade"):
        ensure_schema(url)
    assert current_revision(url) is None  # nothing was changed behind the user's back


async def test_json_tags_and_timestamps_round_trip(store: Store) -> None:
    trace_id = uuid.uuid4()
    start = datetime(2026, 2, 6, 1, 0, tzinfo=UTC)
    async with store.transaction() as session:
        session.add(
            Trace(
                id=trace_id,
                trace_type="summarization",
                name="Code Summary: x",
                start_time=start,
                input_data={"code": "def f(): ...", "n": [1, 2]},
                meta_data={"model": "offline", "tokens": 245},
                tags=["a", "b"],
            )
        )
        await session.flush()
        session.add(
            Span(trace_id=trace_id, name="chain_of_density", type="general", start_time=start)
        )
        session.add(
            Evaluation(trace_id=trace_id, metric_name="summary_quality", score=0.87, reason="clear")
        )
    async with store.session() as session:
        trace = await session.get(Trace, trace_id)
        assert trace is not None
        assert trace.input_data == {"code": "def f(): ...", "n": [1, 2]}
        assert trace.tags == ["a", "b"]
        assert trace.start_time == start and trace.start_time.tzinfo is not None
        scores = (await session.scalars(select(Evaluation.score))).all()
        assert scores == [0.87]


async def test_span_type_outside_the_taxonomy_is_refused(store: Store) -> None:
    trace_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with store.transaction() as session:
        session.add(Trace(id=trace_id, trace_type="t", name="t", start_time=now))
    with pytest.raises(Exception, match="(?i)check"):
        async with store.transaction() as session:
            session.add(Span(trace_id=trace_id, name="x", type="banana", start_time=now))


def test_models_cover_every_table() -> None:
    assert set(Base.metadata.tables) == TABLES


async def test_two_processes_importing_one_dataset_get_one_version(store: Store) -> None:
    # Two `codi-eval run`s of one new spec import its dataset at the same moment.
    items = load_jsonl(ROOT / "datasets" / "quickstart.jsonl")[:5]
    results = await asyncio.gather(*(import_items(store, items, name="race") for _ in range(4)))
    assert len({r.dataset.id for r in results}) == 1
    assert [r.created for r in results].count(True) == 1
    assert {r.dataset.version for r in results} == {1}
