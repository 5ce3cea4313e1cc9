"""API tokens have a lifecycle: when they were issued, when they expire, revocation, last use.

A token is still stored only as its SHA-256. ``users rotate`` replaces the hash and resets
``token_created_at``; ``users revoke`` sets ``revoked_at``; a token past ``token_expires_at``
is refused. ``last_used_at`` is written at most once a minute per user.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("token_created_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE users SET token_created_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("revoked_at")
        batch.drop_column("token_expires_at")
        batch.drop_column("token_created_at")
