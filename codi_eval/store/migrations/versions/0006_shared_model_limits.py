"""Model limits shared by every worker: a leaky bucket per model and concurrency slots.

``model_limits.next_at`` is the earliest start (epoch seconds) of the next call to a model:
each call takes the slot and pushes it one interval (60 / requests_per_minute) on, in one
UPDATE, so the limit holds across processes and machines; a 429's Retry-After pushes it
(and ``paused_until``) for everyone. ``model_slots`` holds one row per allowed concurrent
call, claimed with an expiry like runs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_limits",
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("paused_until", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_model_limits"),
    )
    op.create_table(
        "model_slots",
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("key", "slot", name="pk_model_slots"),
    )


def downgrade() -> None:
    op.drop_table("model_slots")
    op.drop_table("model_limits")
