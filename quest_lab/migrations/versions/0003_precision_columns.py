"""Precision columns: `runs.g_bits` (backward/gradient bits; 16 = not quantized) and `runs.group_size`
(one scale per G inputs; null = per row).

Revision ID: 0003_precision_columns
Revises: 0002_run_claims
Create Date: 2026-01-20

Existing rows are filled in: every run stored before this revision had 16-bit gradients (nothing could
record anything else), and our own runs' group size is read from their stored config (`runs.config`,
the resolved RunConfig; absent = per row).  Imported rows keep a null group size (per row).
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0003_precision_columns"
down_revision = "0002_run_claims"
branch_labels = None
depends_on = None

SOURCE_OURS = "quest-lab"  # runs.source of our own runs (quest_lab.store_tables.SOURCE_OURS at this revision)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("g_bits", sa.Float(), nullable=True))
        batch.add_column(sa.Column("group_size", sa.Integer(), nullable=True))
    runs = sa.table("runs", sa.column("run_id", sa.String), sa.column("source", sa.String),
                    sa.column("config", sa.Text), sa.column("g_bits", sa.Float), sa.column("group_size", sa.Integer))
    conn = op.get_bind()
    conn.execute(runs.update().values(g_bits=16.0))
    rows = conn.execute(sa.select(runs.c.run_id, runs.c.config).where(runs.c.source == SOURCE_OURS)).fetchall()
    for run_id, config in rows:
        try:
            group = json.loads(config or "{}").get("group_size")
        except (ValueError, AttributeError):
            group = None
        if isinstance(group, int) and not isinstance(group, bool):
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(group_size=group))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("group_size")
        batch.drop_column("g_bits")
