"""Each user's number of traces per type, kept exact by triggers on ``traces``.

``GET /traces`` reports the caller's total. Counting it (an index-only scan over a user's
100,000 traces) was 34 ms of a 38 ms request, so the API could not scale with processes.
``trace_counts`` holds one row per (user, trace type); triggers on ``traces`` keep it in
step with every write whatever makes it (API, runner, ``experiments delete``, SQL by hand,
a user's deletion setting ``user_id`` to NULL, TRUNCATE), so there is no second bookkeeping
path in Python to forget. On PostgreSQL the triggers are per statement over transition
tables (a COPY of 500 traces is one upsert per user and type, rows locked in key order so
two writers cannot deadlock); SQLite has only row triggers, and one writer at a time.

A later migration that recreates ``traces`` on SQLite (``batch_alter_table``) drops these
triggers and must create them again (``create_triggers``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_PG_FUNCTIONS = {
    "codi_trace_counts_insert": """
        INSERT INTO trace_counts (user_id, trace_type, n)
        SELECT user_id, trace_type, count(*) FROM new_rows WHERE user_id IS NOT NULL
        GROUP BY user_id, trace_type ORDER BY user_id, trace_type
        ON CONFLICT (user_id, trace_type) DO UPDATE SET n = trace_counts.n + EXCLUDED.n;
    """,
    "codi_trace_counts_delete": """
        UPDATE trace_counts c SET n = c.n - d.n
        FROM (SELECT user_id, trace_type, count(*) AS n FROM old_rows
              WHERE user_id IS NOT NULL GROUP BY user_id, trace_type) d
        WHERE c.user_id = d.user_id AND c.trace_type = d.trace_type;
    """,
    # Only rows whose owner or type changed move; the rest of an UPDATE costs one join.
    "codi_trace_counts_update": """
        UPDATE trace_counts c SET n = c.n - d.n
        FROM (SELECT o.user_id, o.trace_type, count(*) AS n
              FROM old_rows o JOIN new_rows w ON w.id = o.id
              WHERE o.user_id IS NOT NULL
                AND (o.user_id IS DISTINCT FROM w.user_id OR o.trace_type <> w.trace_type)
              GROUP BY o.user_id, o.trace_type) d
        WHERE c.user_id = d.user_id AND c.trace_type = d.trace_type;
        INSERT INTO trace_counts (user_id, trace_type, n)
        SELECT w.user_id, w.trace_type, count(*)
        FROM new_rows w JOIN old_rows o ON o.id = w.id
        WHERE w.user_id IS NOT NULL
          AND (o.user_id IS DISTINCT FROM w.user_id OR o.trace_type <> w.trace_type)
        GROUP BY w.user_id, w.trace_type ORDER BY w.user_id, w.trace_type
        ON CONFLICT (user_id, trace_type) DO UPDATE SET n = trace_counts.n + EXCLUDED.n;
    """,
    "codi_trace_counts_truncate": "DELETE FROM trace_counts;",
}
_PG_TRIGGERS = {
    "codi_trace_counts_insert": "AFTER INSERT ON traces REFERENCING NEW TABLE AS new_rows",
    "codi_trace_counts_delete": "AFTER DELETE ON traces REFERENCING OLD TABLE AS old_rows",
    "codi_trace_counts_update": (
        "AFTER UPDATE ON traces REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    ),
    "codi_trace_counts_truncate": "AFTER TRUNCATE ON traces",
}

_UP = """
    INSERT INTO trace_counts (user_id, trace_type, n) VALUES ({row}.user_id, {row}.trace_type, 1)
    ON CONFLICT (user_id, trace_type) DO UPDATE SET n = n + 1;
"""
_DOWN = """
    UPDATE trace_counts SET n = n - 1
    WHERE user_id = {row}.user_id AND trace_type = {row}.trace_type;
"""
_SQLITE_TRIGGERS = {
    "codi_trace_counts_insert": (
        "AFTER INSERT ON traces WHEN NEW.user_id IS NOT NULL",
        _UP.format(row="NEW"),
    ),
    "codi_trace_counts_delete": (
        "AFTER DELETE ON traces WHEN OLD.user_id IS NOT NULL",
        _DOWN.format(row="OLD"),
    ),
    "codi_trace_counts_update_old": (
        "AFTER UPDATE OF user_id, trace_type ON traces WHEN OLD.user_id IS NOT NULL",
        _DOWN.format(row="OLD"),
    ),
    "codi_trace_counts_update_new": (
        "AFTER UPDATE OF user_id, trace_type ON traces WHEN NEW.user_id IS NOT NULL",
        _UP.format(row="NEW"),
    ),
}


def create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, body in _PG_FUNCTIONS.items():
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN {body} RETURN NULL; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {name} {_PG_TRIGGERS[name]} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
            )
    else:
        for name, (when, body) in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")


def drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in _PG_FUNCTIONS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON traces")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    op.create_table(
        "trace_counts",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("trace_type", sa.String(50), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_trace_counts_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "trace_type", name="pk_trace_counts"),
    )
    # The table is locked for the count so no trace lands between it and the triggers.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE traces IN SHARE MODE")
    op.execute(
        "INSERT INTO trace_counts (user_id, trace_type, n) "
        "SELECT user_id, trace_type, count(*) FROM traces WHERE user_id IS NOT NULL "
        "GROUP BY user_id, trace_type"
    )
    create_triggers()


def downgrade() -> None:
    drop_triggers()
    op.drop_table("trace_counts")
