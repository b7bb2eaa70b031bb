"""Alembic owns the store's schema: a new store is created at head, the migrated schema equals the ORM
tables, an old store (written before Alembic) is refused with the command that upgrades it, and
`quest-lab db upgrade` upgrades it keeping every row; a store from a newer quest-lab is refused."""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from cli import app
from quest_lab.store import Store
from quest_lab.store_db import BASELINE_REVISION, _alembic_config, head_revision
from quest_lab.store_tables import Base

runner = CliRunner()
OLD_DUMP = Path(__file__).resolve().parent / "data" / "store_pre_alembic.sql"


def _engine(url: str):
    u = url.replace("postgresql://", "postgresql+psycopg://", 1)
    return create_engine(u)


def _digest(path: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))).hexdigest()


def test_new_store_is_created_at_head_and_matches_the_tables(store_url: str) -> None:
    store = Store(store_url)
    assert store.revision() is None
    store.ensure_schema()
    assert store.revision() == head_revision()
    engine = _engine(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], diff


def _baseline_store(url: str) -> None:
    """What an older quest-lab wrote: the baseline tables, no alembic_version, a few rows."""
    engine = _engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), BASELINE_REVISION)
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("INSERT INTO runs (run_id, status, source, config, metrics, attempts, versions, created_at, "
                          "n_params, tokens, final_eval_loss, w_bits, a_bits, quantizer) VALUES "
                          "('r1', 'completed', 'import:x.csv', '{}', '{}', 0, '{}', '2025-01-01 00:00:00', "
                          "1e6, 2e7, 3.5, 16, 16, 'bf16')"))
    engine.dispose()


def test_old_store_is_refused_then_upgraded_keeping_its_rows(store_url: str) -> None:
    _baseline_store(store_url)
    res = runner.invoke(app, ["runs", "--store", store_url])
    assert res.exit_code == 2 and "quest-lab db upgrade --store" in res.output, res.output
    assert len(res.output.strip().splitlines()) <= 3
    res = runner.invoke(app, ["db", "status", "--store", store_url])
    assert res.exit_code == 0 and "written before Alembic" in res.output
    res = runner.invoke(app, ["db", "upgrade", "--store", store_url])
    assert res.exit_code == 0 and f"upgraded {BASELINE_REVISION} -> {head_revision()}" in res.output, res.output
    frame = Store(store_url).runs_frame()
    assert frame.run_id.tolist() == ["r1"] and frame.loss.tolist() == [3.5] and frame.owner.isna().all()
    res = runner.invoke(app, ["db", "upgrade", "--store", store_url])
    assert res.exit_code == 0 and "already at" in res.output


def test_store_written_by_main_before_alembic_upgrades(tmp_path: Path) -> None:
    """A real store written by the previous quest-lab (tests/data/store_pre_alembic.sql: 20 imported
    Chinchilla runs, a 4-run sweep with curves, one stored fit)."""
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as con:
        con.executescript(OLD_DUMP.read_text())
    url = f"sqlite:///{db}"
    before = _digest(db)
    csv = tmp_path / "ext.csv"
    csv.write_text("N,D,loss,w_bits,a_bits,quantizer\n1e6,1e8,3.0,4,4,quest\n")
    for args in (["runs"], ["fit", "--law", "chinchilla", "--bootstrap", "0"], ["import", str(csv)]):
        res = runner.invoke(app, [*args, "--store", url])
        assert res.exit_code == 2, (args, res.output)
    assert _digest(db) == before  # refused without writing
    res = runner.invoke(app, ["db", "upgrade", "--store", url])
    assert res.exit_code == 0, res.output
    store = Store(url)
    frame = store.runs_frame()
    assert len(frame) == 24 and set(frame.sweep) == {"mini", "old"}
    assert len(store.curves(frame.run_id)) == 4 * 11
    assert store.latest_fit("chinchilla")["payload"]["n_runs"] == 20
    res = runner.invoke(app, ["fit", "--law", "chinchilla", "--store", url, "--sweep", "mini", "--bootstrap", "0",
                              "--method", "varpro"])
    assert res.exit_code == 0, res.output


def test_store_from_a_newer_quest_lab_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    Store(url).ensure_schema()
    with sqlite3.connect(tmp_path / "r.db") as con:
        con.execute("UPDATE alembic_version SET version_num = '9999_future'")
    for args in (["runs"], ["db", "upgrade"]):
        res = runner.invoke(app, [*args, "--store", url])
        assert res.exit_code == 2 and "newer quest-lab" in res.output, res.output


@pytest.mark.parametrize("args", [["status"], ["upgrade"]])
def test_db_commands_on_a_missing_server_are_one_line(args: list[str]) -> None:
    from conftest import free_port

    res = runner.invoke(app, ["db", *args, "--store", f"postgresql://u:SECRET@127.0.0.1:{free_port()}/x"])
    assert res.exit_code == 2 and "SECRET" not in res.output and len(res.output.strip().splitlines()) == 1
