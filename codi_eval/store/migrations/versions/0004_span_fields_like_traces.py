"""Spans name their JSON columns like traces do: input_data, output_data (and meta_data).

One trace record type flows tracer → store → API → Opik; with the same names in the
table there is no mapping between them to keep in step.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("spans") as batch:
        batch.alter_column("input", new_column_name="input_data")
        batch.alter_column("output", new_column_name="output_data")


def downgrade() -> None:
    with op.batch_alter_table("spans") as batch:
        batch.alter_column("input_data", new_column_name="input")
        batch.alter_column("output_data", new_column_name="output")
