"""Many processes, one store: run leases, outbox claims, and one experiment per generation.

- ``runs.lease_owner`` / ``runs.lease_expires_at``: a run is claimed by one worker, which
  renews the lease while it works; a dead worker's runs come back when the lease expires.
- ``opik_outbox.claimed_by`` / ``claim_expires_at``: outbox rows are claimed the same way,
  so any number of syncs deliver each row once.
- ``experiments.generation`` with a unique (name, spec_hash, generation): two processes that
  create the same experiment at once get one (the second's insert conflicts and it resumes
  the first's); ``run --new`` makes the next generation.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(200), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_runs_experiment_status_id", "runs", ["experiment_id", "status", "id"])
    with op.batch_alter_table("opik_outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(
            sa.Column("generation", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    # Existing experiments with the same name and hash (earlier `--new` runs) get 0, 1, 2, ...
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT id, name, spec_hash FROM experiments ORDER BY created_at, id")
    ).all()
    seen: dict[tuple[str, str], int] = {}
    for exp_id, name, digest in rows:
        generation = seen.get((name, digest), -1) + 1
        seen[(name, digest)] = generation
        if generation:
            conn.execute(
                sa.text("UPDATE experiments SET generation = :g WHERE id = :i"),
                {"g": generation, "i": exp_id},
            )
    with op.batch_alter_table("experiments") as batch:
        batch.create_unique_constraint(
            "uq_experiments_name_spec_hash_generation", ["name", "spec_hash", "generation"]
        )


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_constraint("uq_experiments_name_spec_hash_generation", type_="unique")
        batch.drop_column("generation")
    with op.batch_alter_table("opik_outbox") as batch:
        batch.drop_column("claim_expires_at")
        batch.drop_column("claimed_by")
    op.drop_index("ix_runs_experiment_status_id", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
