"""The results store on SQLite and PostgreSQL: reads never create the DB, results/curves/fits round-trip,
imports, claims (atomic, owner-only writes, expiry), refused identity mismatches."""
from __future__ import annotations

import math
import sqlite3
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from quest_lab.run import RunConfig
from conftest import free_port
from quest_lab.filters import FilterError
from quest_lab.store import CURVE_COLUMNS, RUN_COLUMNS, ClaimLost, IdentityMismatch, Store, StoreError
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


def test_result_roundtrip_with_curves(store_url: str) -> None:
    store = Store(store_url)
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
    if store.sqlite_path is not None:
        with sqlite3.connect(store.sqlite_path) as con:
            assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("loss,status,expected", [
    (float("nan"), "completed", "diverged"),
    (float("inf"), "completed", "diverged"),
    (float("inf"), "diverged", "diverged"),
    (3.0, "diverged", "diverged"),
])
def test_non_finite_or_diverged_is_stored_diverged(store_url: str, loss: float, status: str, expected: str) -> None:
    store = Store(store_url)
    c = cfg()
    (rid,) = _register(store, c)
    assert store.record_result(rid, _result(c, loss, status=status)) == expected
    frame = store.runs_frame(statuses=None)
    assert frame.status.tolist() == [expected]
    if math.isfinite(loss):  # a finite loss is kept as measured, a non-finite one stored as NULL
        assert frame.loss.tolist() == [loss]
    else:
        assert frame.loss.isna().all()


def test_failure_keeps_error_and_membership_dedups(store_url: str) -> None:
    store = Store(store_url)
    a, b = cfg(seed=0), cfg(seed=1)
    ida, idb = _register(store, a, b, sweep="one")
    assert _register(store, a, sweep="two") == [ida]  # shared run: one row, two sweeps
    store.record_failure(idb, "RuntimeError: boom\ntraceback", attempts=3)
    failed = store.runs_frame(statuses=("failed",)).iloc[0]
    assert failed.error.startswith("RuntimeError: boom") and failed.attempts == 3
    assert len(store.runs_frame(statuses=None)) == 2
    assert store.runs_frame(sweep="two", statuses=None).run_id.tolist() == [ida]


def test_fits(store_url: str) -> None:
    store = Store(store_url)
    import numpy as np

    first = store.save_fit("chinchilla", {"A": np.float64(400.0), "alpha": 0.34}, sweep="s")
    second = store.save_fit("quest", {"eff": {"4": 0.8}})
    assert second > first
    assert store.latest_fit()["law"] == "quest"
    fit = store.latest_fit("chinchilla")
    assert fit["id"] == first and fit["sweep"] == "s" and fit["payload"] == {"A": 400.0, "alpha": 0.34}
    assert store.latest_fit("nope") is None


def test_import_chinchilla_is_idempotent(store_url: str) -> None:
    url = store_url
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


def test_release_puts_only_running_rows_back_to_pending(store_url: str) -> None:
    store = Store(store_url)
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


def test_claim_is_atomic_and_only_the_owner_writes(store_url: str) -> None:
    store = Store(store_url)
    c = cfg()
    (rid,) = _register(store, c)
    assert store.claim(rid, "a", ttl_s=60)
    assert not store.claim(rid, "b", ttl_s=60)  # held by a live claim
    assert store.mark_running(rid, 1, owner="a") and not store.mark_running(rid, 1, owner="b")
    with pytest.raises(ClaimLost):
        store.record_result(rid, _result(c, 3.0, identity="d"), owner="b")
    assert store.statuses([rid]) == {rid: "running"}
    assert store.heartbeat("a") == 1 and store.heartbeat("b") == 0
    assert store.record_result(rid, _result(c, 3.0, identity="d"), owner="a") == "completed"
    assert not store.claim(rid, "b", ttl_s=60)  # done: never claimed again
    assert not store.claim(rid, "b", ttl_s=60, retake_failed=True)
    row = store.runs_frame().iloc[0]
    assert row.owner == "a" and row.status == "completed"


def test_expired_or_dead_claims_are_retaken(store_url: str) -> None:
    store = Store(store_url)
    a, b, f = cfg(seed=0), cfg(seed=1), cfg(seed=2)
    ida, idb, idf = _register(store, a, b, f)
    assert store.claim(ida, "old", ttl_s=60) and store.claim(idb, "gone", ttl_s=60)
    time.sleep(1.2)
    assert not store.claim(ida, "new", ttl_s=60)  # heartbeat 1 s old, TTL 60 s: still held
    assert store.claim(ida, "new", ttl_s=1)  # older than the TTL: retaken
    assert store.claim(idb, "new", ttl_s=60, dead_owner="gone")  # its driver is known dead
    store.record_failure(idf, "boom", attempts=1)
    assert not store.claim(idf, "new", ttl_s=60)
    assert store.claim(idf, "new", ttl_s=60, retake_failed=True)  # --rerun-failed
    with pytest.raises(ClaimLost):
        store.record_failure(ida, "late", attempts=1, owner="old")
    assert store.release(owner="new") == 3
    assert set(store.statuses().values()) == {"pending"}


def test_a_result_from_other_data_is_refused(store_url: str) -> None:
    store = Store(store_url)
    c = cfg()
    (rid,) = _register(store, c)  # planned on data identity "d"
    with pytest.raises(IdentityMismatch, match="planned on data d but the worker trained on other"):
        store.record_result(rid, _result(c, 3.0, identity="other"))
    assert store.statuses([rid]) == {rid: "pending"}
    assert store.record_result(rid, _result(c, 3.0, identity="d")) == "completed"


def test_register_twice_concurrently_keeps_one_row_per_run(store_url: str) -> None:
    """Two drivers registering the same grid at once: insert-or-ignore, no IntegrityError, no duplicates."""
    configs = [cfg(seed=i) for i in range(40)]
    stores = [Store(store_url), Store(store_url)]
    stores[0].ensure_schema()
    errors: list[BaseException] = []

    def register(store: Store) -> None:
        try:
            _register(store, *configs)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    frame = Store(store_url).runs_frame(statuses=None)
    assert len(frame) == 40 and frame.run_id.is_unique and set(frame.status) == {"pending"}


def test_runs_frame_where_runs_in_sql(store_url: str) -> None:
    store = Store(store_url)
    configs = [cfg(seed=i, w_bits=w, a_bits=w) for i, w in enumerate((2, 4, 8, 16))]
    ids = _register(store, *configs)
    for rid, c in zip(ids, configs):
        store.record_result(rid, _result(c, 3.0 + c.w_bits / 100, identity="d"))
    frame = store.runs_frame(where="w_bits >= 4 and quantizer != 'bf16' and loss < 3.1")
    assert sorted(frame.w_bits) == [4, 8]
    assert len(store.runs_frame(where="quantizer in ['bf16']")) == 1
    with pytest.raises(FilterError, match="unknown column 'nope'"):
        store.runs_frame(where="nope > 1")


def test_bad_url_and_unreachable_server_never_show_the_password() -> None:
    with pytest.raises(StoreError) as ei:
        Store("postgresql://user:SECRET@host:notaport/db")
    assert "SECRET" not in str(ei.value) and "***" in str(ei.value)
    store = Store(f"postgresql://user:SECRET@127.0.0.1:{free_port()}/db")
    assert store.display_url.endswith("user:***@" + store.display_url.split("@", 1)[1])
    with pytest.raises(StoreError) as ei:
        store.runs_frame()
    assert "SECRET" not in str(ei.value) and "\n" not in str(ei.value) and "cannot read store" in str(ei.value)
