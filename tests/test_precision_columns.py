"""Backward precision (g_bits) and group size as run facts (issue 15): labels, RunConfig, the store's
columns (migration 0003), CSV import and `fit --csv`, exports and filters."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from cli import app
from quest_lab.analysis import load_csv
from quest_lab.quant.specs import backward_label, forward_label, parse_precision_label, precision_label
from quest_lab.run import RunConfig
from quest_lab.store import Store
from quest_lab.store_db import _alembic_config, head_revision

runner = CliRunner()


def test_labels_carry_the_backward_precision():
    assert precision_label("quartet", 4, 4, None, 4) == "quartet:w4a4b4"
    assert precision_label("sr", 16, 16, None, 4) == "sr:w16a16b4"  # 16-bit forward, 4-bit gradients: not the base
    assert precision_label("quest", 4, 4, 32, 8) == "quest:w4a4b8g32"
    assert precision_label("quest", 4, 4, 32, 16) == "quest:w4a4g32"  # 16-bit gradients: no suffix
    assert precision_label("x", 16, 16, None, 16) == "bf16"
    for label in ("quartet:w4a4b4", "sr:w16a16b4", "quest:w4a4b8g32", "ternary:w1.58a8b1.58"):
        p = parse_precision_label(label)
        assert precision_label(p.quantizer, p.w_bits, p.a_bits, p.group_size, p.g_bits) == label
    assert parse_precision_label("quartet:w4a4b4").g_bits == 4.0
    assert (forward_label("quartet:w4a4b4g32"), backward_label("quartet:w4a4b4g32")) == ("quartet:w4a4g32", "quartet:b4")
    assert (forward_label("sr:w16a16b4"), backward_label("quest:w4a4")) == (None, None)
    with pytest.raises(ValueError, match="not 'bf16' or"):
        parse_precision_label("quest:w4a4bx")


def test_runconfig_g_bits_keeps_run_ids_and_refuses_training_a_quantized_backward():
    base = dict(size="tiny", w_bits=4, a_bits=4, tokens=1000)
    assert RunConfig(**base).run_id("abc") == RunConfig(**base, g_bits=16).run_id("abc") == "8fa5b19a84851b19"
    assert "g_bits" not in RunConfig(**base).resolved()
    with pytest.raises(ValueError, match=r"g_bits=4: a quantized backward is not implemented in train\(\)"):
        RunConfig(**base, g_bits=4)
    with pytest.raises(ValueError, match="g_bits=3.3 is not a supported bit-width"):
        RunConfig(**base, g_bits=3.3)


def test_store_records_g_bits_and_group_size_of_our_runs_and_imports(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    cfg = RunConfig(size="tiny", quantizer="quest", w_bits=4, a_bits=4, group_size=32, tokens=1000)
    store.register_sweep("s", {}, None, [(cfg.run_id("d"), cfg, "d")])
    store.import_runs("ext", "import:x.csv", [
        dict(run_id="i1", N=1e6, D=1e8, loss=3.0, w_bits=4, a_bits=4, quantizer="quartet",
             extra={"N": 1e6, "Grad_Bits": 4, "group": 128}),
        dict(run_id="i2", N=1e6, D=1e8, loss=3.1, w_bits=16, a_bits=16, quantizer="bf16", extra={})])
    frame = store.runs_frame(statuses=None).set_index("run_id")
    assert frame.loc[cfg.run_id("d"), ["g_bits", "group_size", "precision"]].tolist() == [16.0, 32, "quest:w4a4g32"]
    assert frame.loc["i1", ["g_bits", "group_size", "precision"]].tolist() == [4.0, 128, "quartet:w4a4b4g128"]
    assert frame.loc["i2", "g_bits"] == 16.0 and pd.isna(frame.loc["i2", "group_size"])
    assert store.runs_frame(where="g_bits < 16").run_id.tolist() == ["i1"]
    with pytest.raises(Exception, match="record 1: g_bits=32 is not valid"):
        store.import_runs("bad", "import:y.csv", [dict(run_id="b1", N=1e6, D=1e8, loss=3.0, w_bits=4, a_bits=4,
                                                       quantizer="q", extra={"g_bits": 32})])
    assert "b1" not in store.runs_frame(statuses=None).run_id.tolist()


def test_import_and_fit_csv_read_g_bits_and_group_size(tmp_path: Path):
    csv = tmp_path / "fp4.csv"
    csv.write_text("N,D,loss,w_bits,a_bits,quantizer,g_bits,group_size\n"
                   "1e6,1e8,3.0,4,4,quartet,4,32\n1e6,2e8,2.9,16,16,sr,4,\n2e6,1e8,2.8,16,16,bf16,16,\n")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    res = runner.invoke(app, ["import", str(csv), "--store", url])
    assert res.exit_code == 0, res.output
    stored = Store(url).runs_frame().sort_values("loss")
    assert stored.precision.tolist() == ["bf16", "sr:w16a16b4", "quartet:w4a4b4g32"]
    assert stored.g_bits.tolist() == [16.0, 4.0, 4.0]
    labels = load_csv(csv).sort_values("loss")["label"].tolist()
    assert labels == stored.precision.tolist()  # fit --csv labels runs like the store
    out = tmp_path / "runs.csv"
    assert runner.invoke(app, ["export", str(out), "--store", url]).exit_code == 0
    assert {"g_bits", "group_size"} <= set(pd.read_csv(out).columns)
    bad = tmp_path / "bad.csv"
    bad.write_text("N,D,loss,w_bits,a_bits,quantizer,g_bits\n1e6,1e8,3.0,4,4,q,0\n")
    before = (tmp_path / "r.db").read_bytes()
    res = runner.invoke(app, ["import", str(bad), "--store", url])
    assert res.exit_code == 2 and "g_bits=0" in res.output
    assert (tmp_path / "r.db").read_bytes() == before
    res = runner.invoke(app, ["fit", "--law", "quartet", "--csv", str(bad), "--bootstrap", "0"])
    assert res.exit_code == 2 and "g_bits outside (0, 16]" in res.output


def test_migration_0003_adds_and_fills_the_columns(tmp_path: Path):
    db = tmp_path / "old.db"
    url = f"sqlite:///{db}"
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0002_run_claims")
        cols = "run_id, status, source, config, metrics, attempts, versions, created_at, w_bits, a_bits, quantizer"
        conn.execute(text(f"INSERT INTO runs ({cols}) VALUES ('ours', 'completed', 'quest-lab', "
                          "'{\"group_size\": 64, \"size\": \"tiny\"}', '{}', 0, '{}', '2025-01-01', 4, 4, 'quest')"))
        conn.execute(text(f"INSERT INTO runs ({cols}) VALUES ('ext', 'completed', 'import:x.csv', "
                          "'{\"group_size\": 8}', '{}', 0, '{}', '2025-01-01', 16, 16, 'bf16')"))
    engine.dispose()
    res = runner.invoke(app, ["db", "upgrade", "--store", url])
    assert res.exit_code == 0 and f"-> {head_revision()}" in res.output, res.output
    with sqlite3.connect(db) as con:
        rows = dict((r[0], r[1:]) for r in con.execute("SELECT run_id, g_bits, group_size FROM runs"))
    assert rows == {"ours": (16.0, 64), "ext": (16.0, None)}  # imported rows: per row (their config is the CSV row)
