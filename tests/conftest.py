"""Shared fixtures: a real PostgreSQL database made for this run (and dropped), and SQLite.

With CI=true an unreachable PostgreSQL fails the run instead of skipping its tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from sqlalchemy import create_engine, text

from codi_eval.store.engine import Store, upgrade
from codi_eval.store.models import Base

PG_ADMIN_URL = os.environ.get(
    "CODI_EVAL_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

os.environ.setdefault("OPIK_SENTRY_ENABLE", "false")
os.environ.setdefault("OPIK_ANALYTICS_ENABLE", "false")


def _admin_engine():  # type: ignore[no-untyped-def]
    return create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )


class PostgresDatabases:
    """Creates throwaway databases on the local server and drops them at the end."""

    def __init__(self) -> None:
        self.engine = _admin_engine()
        self.created: list[str] = []

    def create(self, prefix: str = "codi_test") -> str:
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with self.engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def drop_all(self) -> None:
        with self.engine.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.engine.dispose()


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresDatabases]:
    try:
        dbs = PostgresDatabases()
        with dbs.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # psycopg.OperationalError wrapped by SQLAlchemy
        message = f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(message)
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def pg_url(pg: PostgresDatabases) -> str:
    """One upgraded PostgreSQL database shared by the run; tables are emptied per test."""
    url = pg.create()
    upgrade(url)
    return url


def _truncate(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A fresh, upgraded store URL: a new SQLite file, or the run's PostgreSQL database emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        upgrade(url)
        return url
    url = request.getfixturevalue("pg_url")
    _truncate(url)
    return url


@pytest_asyncio.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = await Store.open(store_url)
    yield s
    await s.close()


@pytest.fixture
def pg_store_url(pg_url: str) -> str:
    """The run's PostgreSQL database, emptied (for tests that need PostgreSQL only)."""
    _truncate(pg_url)
    return pg_url
