"""ORM tables of the results store (see `quest_lab.store` for the API that reads and writes them).

`runs` holds one row per run_id (status pending/running/completed/diverged/failed, the resolved
config as JSON, the numbers a fit needs, timings, host, versions, error text); `sweep_runs` says
which sweeps contain which runs (a run shared by two grids is trained once); `curves` holds the
downsampled train/eval loss curves; `fits` the stored law fits; `schema_version` the pre-Alembic layout
number (kept for older readers).  The tables are created and changed only by the Alembic migrations in
`quest_lab/migrations/versions/` (a change here needs a new migration; `tests/test_migrations.py` checks
that the migrated schema matches these classes).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SOURCE_OURS = "quest-lab"  # `runs.source` of our own runs; imported ones are "import:<file>"


class Base(DeclarativeBase):
    pass


class SchemaVersionRow(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)


class SweepRow(Base):
    __tablename__ = "sweeps"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    spec: Mapped[str] = mapped_column(Text, default="{}")  # JSON of the validated sweep file
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunRow(Base):
    __tablename__ = "runs"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sweep: Mapped[str | None] = mapped_column(String(200), index=True, nullable=True)  # first owner
    status: Mapped[str] = mapped_column(String(16), index=True)
    source: Mapped[str] = mapped_column(String(300), default=SOURCE_OURS)
    config: Mapped[str] = mapped_column(Text, default="{}")  # JSON of the resolved RunConfig
    size: Mapped[str | None] = mapped_column(String(64), nullable=True)
    n_params: Mapped[float | None] = mapped_column(Float, nullable=True)  # N (non-embedding)
    tokens: Mapped[float | None] = mapped_column(Float, nullable=True)  # D
    tokens_per_param: Mapped[float | None] = mapped_column(Float, nullable=True)
    w_bits: Mapped[float | None] = mapped_column(Float, nullable=True)
    a_bits: Mapped[float | None] = mapped_column(Float, nullable=True)
    quantizer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Migration 0003: backward (gradient) bits (16 = not quantized) and the group size (null = per row).
    g_bits: Mapped[float | None] = mapped_column(Float, nullable=True)
    group_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    precision: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    final_eval_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    final_train_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    metrics: Mapped[str] = mapped_column(Text, default="{}")  # JSON: anything else train reported
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    wall_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    tokens_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    device: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hardware: Mapped[str | None] = mapped_column(Text, nullable=True)
    host: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Claim (migration 0002): the driver that holds the run while it trains, and its last heartbeat.
    owner: Mapped[str | None] = mapped_column(String(200), index=True, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    versions: Mapped[str] = mapped_column(Text, default="{}")
    data_identity: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SweepRunRow(Base):
    __tablename__ = "sweep_runs"
    sweep: Mapped[str] = mapped_column(ForeignKey("sweeps.name"), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True, index=True)


class CurveRow(Base):
    __tablename__ = "curves"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # "train" | "eval"
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)


class FitRow(Base):
    __tablename__ = "fits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    law: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sweep: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payload: Mapped[str] = mapped_column(Text)
