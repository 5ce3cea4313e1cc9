"""Engines and schema versions: picks the async driver from the URL, applies migrations.

``sqlite:///path`` runs on aiosqlite and is created and upgraded on first use;
``postgresql+psycopg://...`` runs on psycopg 3 and must be upgraded explicitly with
``codi-eval db upgrade`` (a team's database is not changed behind its back).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from codi_eval.errors import StoreError
from codi_eval.store.faults import safe_url

__all__ = ["SchemaBehind", "Store", "StoreError", "safe_url"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class SchemaBehind(StoreError):
    pass


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
        raise StoreError(f"CODI_EVAL_DATABASE_URL is not a database URL: {exc}") from exc


def sync_url(url: str) -> URL:
    """The URL with a synchronous driver (Alembic runs synchronously)."""
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(
        f"unsupported database {backend!r}: use sqlite:///FILE or postgresql+psycopg://..."
    )


def async_url(url: str) -> URL:
    parsed = sync_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    return parsed  # psycopg 3 is one driver name for sync and async


def is_sqlite(url: str) -> bool:
    return _parse(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the API read while a run writes; foreign keys are off by default in SQLite.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_sync_engine(url: str) -> Engine:
    parsed = sync_url(url)
    if parsed.get_backend_name() == "sqlite":
        _ensure_sqlite_dir(parsed)
        engine = create_engine(parsed, poolclass=NullPool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, poolclass=NullPool, connect_args=PG_CONNECT_ARGS)


def make_async_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        _ensure_sqlite_dir(parsed)
        engine = create_async_engine(parsed)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size,
        # A connection the server or a cut dropped is noticed before it is handed out.
        pool_pre_ping=True,
        # Waiting for a free connection is bounded too: a full pool is a fault, not a hang.
        pool_timeout=10,
        connect_args=PG_CONNECT_ARGS,
    )


# Every PostgreSQL connection fails instead of hanging: connecting takes at most 5 s; a
# statement at most 60 s; unacknowledged data (a network that stopped answering, not just
# a slow server) at most 10 s (tcp_user_timeout, libpq >= 12); an idle connection whose
# peer vanished is found by keepalives within ~11 s.
PG_CONNECT_ARGS = {
    "connect_timeout": 5,
    "options": "-c statement_timeout=60000 -c idle_in_transaction_session_timeout=120000",
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10000,
}


def _ensure_sqlite_dir(parsed: URL) -> None:
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' would be read as interpolation by configparser.
    cfg.set_main_option(
        "sqlalchemy.url", sync_url(url).render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:
        raise StoreError(
            f"cannot open the store at {safe_url(url)}: {exc.__class__.__name__}: {exc}"
        ) from exc
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def ensure_schema(url: str) -> None:
    """Make the store usable: upgrade SQLite automatically, refuse a PostgreSQL store that is behind."""
    current = current_revision(url)
    head = head_revision()
    if current == head:
        return
    if is_sqlite(url):
        upgrade(url)
        return
    state = "empty" if current is None else f"at revision {current}"
    raise SchemaBehind(
        f"the store at {safe_url(url)} is {state}, behind this codi-eval ({head}); "
        "run `codi-eval db upgrade`"
    )


class Store:
    """The configured database: an async engine and a session factory."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_async_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 10, check: bool = True) -> Store:
        if check:
            await asyncio.to_thread(ensure_schema, url)
        return cls(url, pool_size=pool_size)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    async def close(self) -> None:
        await self.engine.dispose()
