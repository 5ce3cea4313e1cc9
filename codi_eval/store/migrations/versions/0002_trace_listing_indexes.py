"""Trace listing indexes end in id, so a deep page is found by an index-only scan.

The API lists a user's traces newest first with id breaking ties; with id in the index the
ids of page N come from the index alone and only that page's rows are read (deferred join).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_traces_user_start_id", "traces",
                    ["user_id", sa.text("start_time DESC"), sa.text("id DESC")])
    op.create_index("ix_traces_user_type_start_id", "traces",
                    ["user_id", "trace_type", sa.text("start_time DESC"), sa.text("id DESC")])
    op.drop_index("ix_traces_user_start", table_name="traces")
    op.drop_index("ix_traces_user_type_start", table_name="traces")


def downgrade() -> None:
    op.create_index("ix_traces_user_type_start", "traces",
                    ["user_id", "trace_type", sa.text("start_time DESC")])
    op.create_index("ix_traces_user_start", "traces", ["user_id", sa.text("start_time DESC")])
    op.drop_index("ix_traces_user_type_start_id", table_name="traces")
    op.drop_index("ix_traces_user_start_id", table_name="traces")
