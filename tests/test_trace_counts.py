"""trace_counts stays equal to counting traces, whatever writes them (migration 0007's triggers)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.engine import Engine

from codi_eval.store.engine import downgrade, make_sync_engine, upgrade
from codi_eval.store.models import Trace, TraceCount, User

USERS = (1, 2, 3)
TYPES = ("summarization", "chat")
NOW = datetime(2026, 1, 1, tzinfo=UTC)

owners = st.sampled_from((*USERS, None))
kinds = st.sampled_from(TYPES)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.lists(st.tuples(owners, kinds), min_size=1, max_size=6)),
        st.tuples(st.just("delete"), st.integers(0, 7)),
        st.tuples(st.just("move"), st.integers(0, 7), owners, kinds),
        st.tuples(st.just("delete_user"), st.sampled_from(USERS)),
    ),
    max_size=12,
)


def _counted(engine: Engine) -> dict[tuple[int, str], int]:
    with engine.connect() as conn:
        rows = conn.execute(select(TraceCount.user_id, TraceCount.trace_type, TraceCount.n)).all()
    return {(u, t): n for u, t, n in rows if n}


def _actual(engine: Engine) -> dict[tuple[int, str], int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT user_id, trace_type, count(*) FROM traces WHERE user_id IS NOT NULL "
                "GROUP BY user_id, trace_type"
            )
        ).all()
    return {(u, t): n for u, t, n in rows}


def _reset(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(Trace))
        conn.execute(delete(User))
        conn.execute(
            insert(User), [{"id": u, "name": f"u{u}", "token_hash": f"{u:064x}"} for u in USERS]
        )


def _trace(owner: int | None, kind: str, serial: int) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "user_id": owner,
        "trace_type": kind,
        "name": f"t{serial}",
        "start_time": NOW,
    }


def _apply(engine: Engine, op: tuple[Any, ...], serial: int) -> None:
    with engine.begin() as conn:
        if op[0] == "insert":
            alive = _users(conn)
            rows = [
                _trace(owner if owner in alive else None, kind, serial * 10 + i)
                for i, (owner, kind) in enumerate(op[1])
            ]
            conn.execute(insert(Trace).values(rows))  # one statement, many rows
        elif op[0] == "delete":
            conn.execute(delete(Trace).where(Trace.name.like(f"%{op[1]}")))
        elif op[0] == "move":
            conn.execute(
                update(Trace)
                .where(Trace.name.like(f"%{op[1]}"))
                .values(user_id=op[2] if op[2] in _users(conn) else None, trace_type=op[3])
            )
        else:  # a deleted user's traces keep existing with user_id NULL (ON DELETE SET NULL)
            conn.execute(delete(User).where(User.id == op[1]))


def _users(conn: Any) -> set[int]:
    return set(conn.execute(select(User.id)).scalars())


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path) -> Any:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'counts.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_store_url")
    e = make_sync_engine(url)  # foreign keys on, as the store has them
    yield e
    e.dispose()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(script=ops)
def test_counts_equal_a_count_of_traces_after_any_writes(engine: Engine, script: list[Any]) -> None:
    _reset(engine)
    for serial, op in enumerate(script):
        _apply(engine, op, serial)
        assert _counted(engine) == _actual(engine), (serial, op)


def test_upgrading_a_store_that_has_traces_counts_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url)
    e = make_sync_engine(url)
    _reset(e)
    _apply(e, ("insert", [(1, "chat"), (1, "chat"), (2, "summarization"), (None, "chat")]), 0)
    downgrade(url, "0006")  # a store from before trace_counts, with traces in it
    upgrade(url)
    assert _counted(e) == {(1, "chat"): 2, (2, "summarization"): 1}
    e.dispose()


def test_truncate_on_postgres_empties_the_counts(pg_store_url: str) -> None:
    e = make_sync_engine(pg_store_url)
    _reset(e)
    _apply(e, ("insert", [(1, "chat"), (3, "chat")]), 0)
    with e.begin() as conn:
        conn.execute(text("TRUNCATE traces CASCADE"))
    assert _counted(e) == {}
    e.dispose()


def test_concurrent_writers_for_the_same_users_neither_deadlock_nor_lose_counts(
    pg_store_url: str,
) -> None:
    """Two processes' trace sinks write batches for overlapping users at once (PostgreSQL)."""
    e = make_sync_engine(pg_store_url)
    _reset(e)
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        try:
            for i in range(40):
                # Users in a different order per writer: the trigger locks rows in key order.
                owners = [3, 2, 1] if (seed + i) % 2 else [1, 2, 3]
                with e.begin() as conn:
                    conn.execute(
                        insert(Trace).values(
                            [
                                _trace(u, TYPES[(i + j) % 2], seed * 1000 + i)
                                for j, u in enumerate(owners)
                            ]
                        )
                    )
                    conn.execute(text("SELECT pg_sleep(0.002)"))  # hold the row locks a moment
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sum(_counted(e).values()) == 3 * 40 * 3
    assert _counted(e) == _actual(e)
    e.dispose()
