"""Sweeps with the local executor on SQLite and PostgreSQL: resume, grid extension, faults, driver SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli import app
from quest_lab.store import Store

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
runner = CliRunner()

BASE = {"corpus": "shakespeare", "tokenizer": "byte", "seq_len": 32, "batch_size": 4,
        "device": "cpu", "eval_tokens": 512, "quantizer": "quest"}


def sweep_file(tmp_path: Path, grid: dict, *, name: str = "t", retries: int = 0, fname: str = "s.yaml",
               url: str | None = None) -> Path:
    doc = {"name": name, "base": dict(BASE), "grid": grid, "retries": retries,
           "store": url or f"sqlite:///{tmp_path / 'results.db'}"}
    path = tmp_path / fname
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def sweep(path: Path, *extra: str, fn: str = "fake_train"):
    return runner.invoke(app, ["sweep", str(path), "--executor", "local", "--no-progress",
                               "--train-fn", f"sweep_fakes:{fn}", *extra])


def rows(where: Path | str, statuses=None):
    """The runs of a store URL, or of tmp_path/results.db."""
    url = where if isinstance(where, str) else f"sqlite:///{where / 'results.db'}"
    return Store(url).runs_frame(statuses=statuses)


def test_second_run_has_nothing_to_do(tmp_path: Path, store_url: str) -> None:
    path = sweep_file(tmp_path, {"size": ["nano", "micro"], "bits": [4, 16], "tokens": [1024, 2048]}, url=store_url)
    res = sweep(path)
    assert res.exit_code == 0, res.output
    assert "8 total, 0 done, 8 to run" in res.output and "8 completed" in res.output
    before = rows(store_url)
    res = sweep(path)
    assert res.exit_code == 0 and "8 total, 8 done, 0 to run" in res.output
    after = rows(store_url)
    assert len(after) == 8 and after.run_id.tolist() == before.run_id.tolist()
    assert after.finished_at.tolist() == before.finished_at.tolist()


def test_extending_an_axis_runs_only_the_new_points(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, {"size": ["nano", "micro"], "bits": [4, 16], "tokens": [1024]})
    assert sweep(path).exit_code == 0
    first = set(rows(tmp_path).run_id)
    path = sweep_file(tmp_path, {"size": ["nano", "micro"], "bits": [4, 8, 16], "tokens": [1024]})
    res = sweep(path, "--dry-run")
    assert "6 total, 4 done, 2 to run" in res.output
    res = sweep(path)
    assert res.exit_code == 0 and "2 completed" in res.output
    frame = rows(tmp_path)
    assert len(frame) == 6 and first < set(frame.run_id)
    assert set(frame[~frame.run_id.isin(first)].w_bits) == {8}


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, {"size": ["nano"], "bits": [4], "tokens": [1024]})
    res = sweep(path, "--dry-run")
    assert res.exit_code == 0 and "1 total, 0 done, 1 to run" in res.output
    assert not (tmp_path / "results.db").exists()


def test_raising_trial_is_retried_then_stored_failed(tmp_path: Path, monkeypatch, store_url: str) -> None:
    calls = tmp_path / "calls"
    monkeypatch.setenv("QUEST_LAB_FAKE_COUNT_DIR", str(calls))
    path = sweep_file(tmp_path, {"size": ["nano"], "bits": [4], "tokens": [1024]}, retries=2, url=store_url)
    res = sweep(path, fn="raising_train")
    assert res.exit_code == 1
    assert len(list(calls.iterdir())) == 3  # 1 try + 2 retries
    failed = rows(store_url, ("failed",))
    assert len(failed) == 1 and failed.attempts.iloc[0] == 3
    assert failed.error.iloc[0].startswith("RuntimeError: boom: simulated crash")
    # failed runs are skipped on a plain re-run, retried with --rerun-failed
    res = sweep(path, fn="fake_train")
    assert "0 to run" in res.output and "1 failed skipped" in res.output
    res = sweep(path, "--rerun-failed", fn="fake_train")
    assert res.exit_code == 0 and "1 to run" in res.output
    frame = rows(store_url, None)
    assert frame.status.tolist() == ["completed"] and frame.error.isna().all()


def test_nan_loss_is_stored_diverged(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, {"size": ["nano"], "bits": [4, 16], "tokens": [1024]})
    res = sweep(path, fn="nan_train")
    assert res.exit_code == 0 and "2 diverged" in res.output
    assert rows(tmp_path, None).status.tolist() == ["diverged", "diverged"]
    assert "0 to run" in sweep(path).output  # diverged counts as done


def test_mixed_outcomes(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, {"size": ["nano"], "bits": [4], "tokens": [1024], "seed": [0, 1, 2, 3]})
    res = sweep(path, fn="seed_raises_train")
    assert res.exit_code == 1
    frame = rows(tmp_path, None).set_index("seed")
    assert frame.status.to_dict() == {0: "completed", 1: "failed", 2: "completed", 3: "failed"}


def _count(url: str, status: str) -> int:
    try:
        return list(Store(url).statuses().values()).count(status)
    except Exception:  # noqa: BLE001 - tables being created right now
        return 0


def test_sigkill_driver_then_rerun_completes_without_duplicates(tmp_path: Path, store_url: str) -> None:
    """A SIGKILLed driver leaves `running` rows; the next driver on this machine sees the process is gone,
    retakes them at once (no TTL wait) and finishes the grid: no duplicates, finished rows untouched."""
    grid = {"size": ["nano", "micro"], "bits": [2, 4, 16], "tokens": [1024]}
    path = sweep_file(tmp_path, grid, url=store_url)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]), QUEST_LAB_FAKE_SLEEP="0.4")
    cmd = [sys.executable, str(ROOT / "cli.py"), "sweep", str(path), "--executor", "local",
           "--no-progress", "--train-fn", "sweep_fakes:slow_train"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while _count(store_url, "completed") < 2 or _count(store_url, "running") < 1:  # killed mid-run
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "sweep did not make progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = rows(store_url, ("completed",))
    assert 2 <= len(before) < 6
    interrupted = rows(store_url, None)
    assert set(interrupted.status) <= {"completed", "running", "pending"}
    assert (interrupted.status == "running").sum() == 1  # the run the killed driver was training

    res = sweep(path)  # resume in-process with the fast trainer
    assert res.exit_code == 0, res.output
    assert f"6 total, {len(before)} done, {6 - len(before)} to run" in res.output
    after = rows(store_url, None)
    assert len(after) == 6 and after.run_id.is_unique and (after.status == "completed").all()
    kept = after.set_index("run_id").loc[before.run_id]
    assert kept.finished_at.tolist() == before.finished_at.tolist()
    assert kept.loss.tolist() == before.loss.tolist()


def test_gpu_sweep_on_a_cpu_machine_exits_2_before_writing(tmp_path: Path, monkeypatch) -> None:
    from quest_lab.sweep import runner as sweep_runner

    monkeypatch.setattr(sweep_runner, "_local_gpus", lambda: 0)
    doc = {"name": "g", "base": dict(BASE), "grid": {"size": ["nano"], "bits": [4], "tokens": [1024]},
           "resources": {"cpus": 1, "gpus": 1}, "store": f"sqlite:///{tmp_path / 'results.db'}"}
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = runner.invoke(app, ["sweep", str(path), "--train-fn", "sweep_fakes:fake_train"])
    assert res.exit_code == 2 and "GPU" in res.output, res.output
    assert not (tmp_path / "results.db").exists()


def test_auto_executor_choice(tmp_path: Path, monkeypatch) -> None:
    from quest_lab.sweep import parse_spec, runner as sweep_runner

    monkeypatch.setattr(sweep_runner.os, "cpu_count", lambda: 2)
    doc = {"name": "a", "base": dict(BASE), "grid": {"size": ["nano"], "tokens": [1024]}}
    assert sweep_runner.choose_executor("auto", parse_spec(doc), 4, None) == "ray"
    assert sweep_runner.choose_executor("auto", parse_spec(doc), 1, None) == "local"
    assert sweep_runner.choose_executor("auto", parse_spec(doc | {"max_concurrent": 1}), 4, None) == "local"
    assert sweep_runner.choose_executor("auto", parse_spec(doc | {"resources": {"cpus": 2}}), 4, None) == "local"
    assert sweep_runner.choose_executor("auto", parse_spec(doc | {"max_concurrent": 1}), 4, "ray://h:10001") == "ray"
    assert sweep_runner.choose_executor("local", parse_spec(doc), 4, None) == "local"


def test_progress_counts() -> None:
    from quest_lab.sweep.progress import SweepProgress

    with SweepProgress(3, "t", enabled=False) as p:
        for _ in range(3):
            p.started()
        p.finished("completed")
        p.retrying()
        p.started()
        p.finished("diverged")
        p.failed_run()
    assert (p.done, p.failed, p.diverged, p.retries) == (2, 1, 1, 1)


def test_ctrl_c_leaves_no_running_rows_and_rerun_resumes(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, {"size": ["nano"], "bits": [4], "tokens": [1024], "seed": [0, 1, 2, 3]})
    res = sweep(path, fn="interrupt_train")
    assert res.exit_code == 130, res.output
    assert "interrupted" in res.output and "again to resume" in res.output
    frame = rows(tmp_path, None).set_index("seed")
    assert frame.status.to_dict() == {0: "completed", 1: "completed", 2: "pending", 3: "pending"}
    res = sweep(path)
    assert res.exit_code == 0 and "4 total, 2 done, 2 to run" in res.output, res.output
    assert (rows(tmp_path, None).status == "completed").all()


def test_executor_that_stops_early_is_reported_interrupted(tmp_path: Path, monkeypatch) -> None:
    """Ray Tune returns from fit() on Ctrl-C with trials still running: same outcome as local."""
    from quest_lab.sweep import load_spec, plan, run_sweep
    from quest_lab.sweep import runner as sweep_runner
    from sweep_fakes import fake_train

    class StopsEarly:
        def run(self, runs, events):
            assert events.claim(runs[0].run_id)
            events.started(runs[0].run_id, 1)
            events.finished(runs[0].run_id, fake_train(runs[0].config), 1)
            assert events.claim(runs[1].run_id)
            events.started(runs[1].run_id, 1)  # then Tune stops: no result for runs[1:]

    monkeypatch.setattr(sweep_runner, "make_executor", lambda *a, **k: StopsEarly())
    store = Store(f"sqlite:///{tmp_path / 'results.db'}")
    the_plan = plan(load_spec(sweep_file(tmp_path, {"size": ["nano"], "tokens": [1024], "seed": [0, 1, 2]})), store)
    outcome = run_sweep(the_plan, store, executor="ray", show_progress=False)
    assert outcome.interrupted and outcome.unfinished == 2 and not outcome.ok
    assert sorted(store.statuses().values()) == ["completed", "pending", "pending"]
