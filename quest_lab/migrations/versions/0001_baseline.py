"""Baseline: the store layout before Alembic (store schema_version 1).

Revision ID: 0001_baseline
Revises:
Create Date: 2025-11-26

A store written by an older quest-lab has exactly these tables; `quest-lab db upgrade` stamps it with
this revision, then applies the later ones.
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    version = op.create_table("schema_version", sa.Column("version", sa.Integer(), primary_key=True))
    op.bulk_insert(version, [{"version": 1}])  # what older quest-lab versions check
    op.create_table(
        "sweeps",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("sweep", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("size", sa.String(64), nullable=True),
        sa.Column("n_params", sa.Float(), nullable=True),
        sa.Column("tokens", sa.Float(), nullable=True),
        sa.Column("tokens_per_param", sa.Float(), nullable=True),
        sa.Column("w_bits", sa.Float(), nullable=True),
        sa.Column("a_bits", sa.Float(), nullable=True),
        sa.Column("quantizer", sa.String(64), nullable=True),
        sa.Column("precision", sa.String(64), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("final_eval_loss", sa.Float(), nullable=True),
        sa.Column("final_train_loss", sa.Float(), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("wall_time_s", sa.Float(), nullable=True),
        sa.Column("tokens_per_s", sa.Float(), nullable=True),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("hardware", sa.Text(), nullable=True),
        sa.Column("host", sa.String(200), nullable=True),
        sa.Column("versions", sa.Text(), nullable=False),
        sa.Column("data_identity", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_runs_sweep", "runs", ["sweep"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "sweep_runs",
        sa.Column("sweep", sa.String(200), sa.ForeignKey("sweeps.name"), primary_key=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id"), primary_key=True),
    )
    op.create_index("ix_sweep_runs_run_id", "sweep_runs", ["run_id"])
    op.create_table(
        "curves",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id"), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("step", sa.Integer(), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("loss", sa.Float(), nullable=True),
    )
    op.create_table(
        "fits",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("law", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sweep", sa.String(200), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_index("ix_fits_law", "fits", ["law"])


def downgrade() -> None:
    for table in ("fits", "curves", "sweep_runs", "runs", "sweeps", "schema_version"):
        op.drop_table(table)
