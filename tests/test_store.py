"""The results store: reads never create the DB, results/curves/fits round-trip, imports."""
from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from quest_lab.run import RunConfig
from quest_lab.store import CURVE_COLUMNS, RUN_COLUMNS, Store, StoreError
from sweep_fakes import _result, fake_loss

runner = CliRunner()
CHINCHILLA = Path(__file__).resolve().parent / "data" / "chinchilla_epoch_svg_extracted.csv"
REQUIRED = ("run_id", "sweep", "status", "size", "N", "D", "w_bits", "a_bits", "quantizer", "seed",
            "loss", "final_train_loss", "wall_time_s", "tokens_per_s", "device", "source")


def cfg(**kw) -> RunConfig:
    base = dict(size="nano", tokenizer="byte", tokens=1024, device="cpu", w_bits=4, a_bits=4)
    base.update(kw)
    return RunConfig(**base)


def test_reads_on_missing_db_return_empty_frames_and_create_nothing(tmp_path: Path) -> None:
    db = tmp_path / "nothing.db"
    store = Store(f"sqlite:///{db}")
    frame = store.runs_frame()
    assert frame.empty and set(REQUIRED) <= set(frame.columns)
    assert store.curves(["x"]).columns.tolist() == list(CURVE_COLUMNS)
    assert store.latest_fit() is None
    assert store.statuses(["x"]) == {}
    assert not db.exists()


def test_bad_url_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        Store("not a url")


def _register(store: Store, *configs: RunConfig, sweep: str = "s") -> list[str]:
    ids = [c.run_id("d") for c in configs]
    store.register_sweep(sweep, {"name": sweep}, None, [(i, c, "d") for i, c in zip(ids, configs)])
    return ids


def test_result_roundtrip_with_curves(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    c = cfg()
    (rid,) = _register(store, c)
    assert store.runs_frame(statuses=("pending",)).run_id.tolist() == [rid]
    store.mark_running(rid)
    assert store.record_result(rid, _result(c, fake_loss(c))) == "completed"
    row = store.runs_frame().iloc[0]
    assert row.run_id == rid and row.status == "completed" and row.source == "quest-lab"
    assert row.N == c.n_params and row.D == 1024 and row["size"] == "nano" and row.quantizer == "quest"
    assert row.loss == pytest.approx(fake_loss(c))
    curves = store.curves([rid])
    assert set(curves.kind) == {"train", "eval"} and len(curves) == 11
    with sqlite3.connect(tmp_path / "r.db") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("loss,status,expected", [
    (float("nan"), "completed", "diverged"),
    (float("inf"), "completed", "diverged"),
    (float("inf"), "diverged", "diverged"),
    (3.0, "diverged", "diverged"),
])
def test_non_finite_or_diverged_is_stored_diverged(tmp_path: Path, loss: float, status: str, expected: str) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    c = cfg()
    (rid,) = _register(store, c)
    assert store.record_result(rid, _result(c, loss, status=status)) == expected
    frame = store.runs_frame(statuses=None)
    assert frame.status.tolist() == [expected]
    assert frame.loss.isna().all() or math.isfinite(frame.loss.iloc[0])


def test_failure_keeps_error_and_membership_dedups(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    a, b = cfg(seed=0), cfg(seed=1)
    ida, idb = _register(store, a, b, sweep="one")
    assert _register(store, a, sweep="two") == [ida]  # shared run: one row, two sweeps
    store.record_failure(idb, "RuntimeError: boom\ntraceback", attempts=3)
    failed = store.runs_frame(statuses=("failed",)).iloc[0]
    assert failed.error.startswith("RuntimeError: boom") and failed.attempts == 3
    assert len(store.runs_frame(statuses=None)) == 2
    assert store.runs_frame(sweep="two", statuses=None).run_id.tolist() == [ida]


def test_fits(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    import numpy as np

    first = store.save_fit("chinchilla", {"A": np.float64(400.0), "alpha": 0.34}, sweep="s")
    second = store.save_fit("quest", {"eff": {"4": 0.8}})
    assert second > first
    assert store.latest_fit()["law"] == "quest"
    fit = store.latest_fit("chinchilla")
    assert fit["id"] == first and fit["sweep"] == "s" and fit["payload"] == {"A": 400.0, "alpha": 0.34}
    assert store.latest_fit("nope") is None


def test_import_chinchilla_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    args = ["import", str(CHINCHILLA), "--map", "Model Size=N", "--map", "Training FLOP=C",
            "--default", "w_bits=16", "--default", "a_bits=16", "--default", "quantizer=bf16", "--store", url]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    frame = Store(url).runs_frame()
    raw = pd.read_csv(CHINCHILLA)
    assert len(frame) == len(raw) == 245
    assert (frame.source == f"import:{CHINCHILLA.name}").all()
    assert set(frame.sweep) == {CHINCHILLA.stem}
    row = raw.iloc[0]
    got = frame.set_index("N").loc[row["Model Size"]]
    assert got.D == pytest.approx(row["Training FLOP"] / (6 * row["Model Size"]))
    assert got.loss == pytest.approx(row["loss"])
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "imported 0 new" in res.output
    assert len(Store(url).runs_frame()) == 245


def test_import_direct_columns(tmp_path: Path) -> None:
    csv = tmp_path / "ext.csv"
    pd.DataFrame({"N": [1e6, 2e6], "D": [1e8, 2e8], "loss": [3.1, 2.9], "w_bits": [4, 16],
                  "a_bits": [4, 16], "quantizer": ["quest", "bf16"]}).to_csv(csv, index=False)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    res = runner.invoke(app, ["import", str(csv), "--store", url, "--sweep", "ext"])
    assert res.exit_code == 0, res.output
    frame = Store(url).runs_frame(sweep="ext")
    assert sorted(frame.w_bits) == [4, 16] and set(frame.quantizer) == {"quest", "bf16"}


@pytest.mark.parametrize("args,fragment", [
    (["--map", "Model Size=N"], "no column for"),  # loss present, but D/C and bits missing
    (["--map", "Nope=N", "--map", "Training FLOP=C"], "'Nope'"),
    (["--map", "Model Size=params"], "unknown field(s) params"),
    (["--map", "Model Size=N", "--map", "Training FLOP=C", "--default", "colour=red"], "colour"),
    (["--map", "Model Size"], "LEFT=RIGHT"),
    (["--map", "Model Size=N", "--map", "Training FLOP=C"], "w_bits"),
])
def test_import_errors_exit_2_and_write_nothing(tmp_path: Path, args: list[str], fragment: str) -> None:
    db = tmp_path / "r.db"
    res = runner.invoke(app, ["import", str(CHINCHILLA), "--store", f"sqlite:///{db}", *args])
    assert res.exit_code == 2, res.output
    assert fragment in res.output
    assert not db.exists()


def test_import_bad_values_name_the_row(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("N,D,loss,w_bits,a_bits,quantizer\n1e6,1e8,3.0,4,4,q\n1e6,abc,3.0,4,4,q\n")
    res = runner.invoke(app, ["import", str(csv), "--store", f"sqlite:///{tmp_path / 'r.db'}"])
    assert res.exit_code == 2 and "row 3" in res.output and "'abc'" in res.output


def test_export_and_runs_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    c = cfg()
    (rid,) = _register(store, c)
    store.record_result(rid, _result(c, 3.5))
    for fmt, reader in (("csv", pd.read_csv), ("parquet", pd.read_parquet)):
        out = tmp_path / f"runs.{fmt}"
        res = runner.invoke(app, ["export", "--format", fmt, str(out), "--store", url])
        assert res.exit_code == 0, res.output
        frame = reader(out)
        assert frame.run_id.tolist() == [rid] and set(RUN_COLUMNS) <= set(frame.columns)
    res = runner.invoke(app, ["runs", "--store", url, "--status", "completed"])
    assert res.exit_code == 0 and rid in res.output
    res = runner.invoke(app, ["runs", "--store", url, "--status", "bogus"])
    assert res.exit_code == 2


def test_release_puts_only_running_rows_back_to_pending(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    done, running, pending = cfg(seed=0), cfg(seed=1), cfg(seed=2)
    ids = _register(store, done, running, pending)
    store.mark_running(ids[0])
    store.record_result(ids[0], _result(done, 3.5))
    store.mark_running(ids[1])
    assert store.release(ids) == 1
    assert store.statuses(ids) == {ids[0]: "completed", ids[1]: "pending", ids[2]: "pending"}


def test_unreadable_store_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("not a database")
    for args in (["runs"], ["export", str(tmp_path / "x.csv")]):
        res = runner.invoke(app, [*args, "--store", f"sqlite:///{bad}"])
        assert res.exit_code == 2 and "cannot read store" in res.output, res.output
        assert "Traceback" not in res.output
    with pytest.raises(StoreError, match="cannot read store"):
        Store(f"sqlite:///{bad}").statuses(["x"])


def test_export_of_an_empty_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    for fmt, reader in (("csv", pd.read_csv), ("parquet", pd.read_parquet)):
        out = tmp_path / f"empty.{fmt}"
        res = runner.invoke(app, ["export", "--format", fmt, str(out), "--store", url])
        assert res.exit_code == 0 and "wrote 0 run(s)" in res.output, res.output
        assert list(reader(out).columns) == list(RUN_COLUMNS)
    assert not (tmp_path / "none.db").exists()
