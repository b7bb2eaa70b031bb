"""Run claims: `runs.owner` (the driver that claimed the run) and `runs.heartbeat_at` (its last sign of life).

Revision ID: 0002_run_claims
Revises: 0001_baseline
Create Date: 2025-11-26

A driver claims a run with a conditional UPDATE (status pending → running, owner = the driver) before
training it and refreshes `heartbeat_at` while it runs; a claim whose heartbeat is older than the TTL
(or whose driver process is gone) is taken over by the next driver.
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_run_claims"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_runs_owner", ["owner"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_owner")
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")
