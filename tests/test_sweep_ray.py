"""Sweeps on Ray Tune (one local Ray session for the module): faults, and parity with `local`."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli import app
from quest_lab.store import Store
from quest_lab.sweep.ray_executor import error_text, worker_env

import ray  # a hard dependency: a broken install fails here, never skips
runner = CliRunner()

BASE = {"corpus": "shakespeare", "tokenizer": "byte", "seq_len": 32, "batch_size": 4,
        "device": "cpu", "eval_tokens": 256, "quantizer": "quest"}


def test_error_text_puts_the_exception_first() -> None:
    ray_text = ("Failure # 1 (occurred at 2026-01-01_00-00-00)\n\x1b[36mray::ImplicitFunc.train()\x1b[39m\n"
                "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
                "ValueError: inner\n\nDuring handling...\nmy.pkg.TrainError: outer: bad\n")
    text = error_text(ray_text)
    assert text.splitlines()[0] == "my.pkg.TrainError: outer: bad" and "\x1b" not in text
    assert error_text("no traceback here") == "no traceback here"


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    count_dir = tmp_path_factory.mktemp("calls")
    env = worker_env() | {"QUEST_LAB_FAKE_COUNT_DIR": str(count_dir)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    yield count_dir
    ray.shutdown()


def sweep_file(tmp_path: Path, grid: dict, *, retries: int = 0, base: dict | None = None) -> Path:
    doc = {"name": "r", "base": base or dict(BASE), "grid": grid, "retries": retries,
           "resources": {"cpus": 1}, "max_concurrent": 2, "store": f"sqlite:///{tmp_path / 'results.db'}"}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def sweep(path: Path, *extra: str, executor: str = "ray", fn: str | None = "fake_train"):
    args = ["sweep", str(path), "--executor", executor, "--no-progress", *extra]
    if fn:
        args += ["--train-fn", f"sweep_fakes:{fn}"]
    return runner.invoke(app, args)


def frame(tmp_path: Path):
    return Store(f"sqlite:///{tmp_path / 'results.db'}").runs_frame(statuses=None)


@pytest.mark.slow  # moved out of the default suite (<= 3 min on 2 cores); CI runs -m slow too
def test_raising_trial_is_retried_then_stored_failed(ray_session, tmp_path: Path) -> None:
    path = sweep_file(tmp_path, {"size": ["nano"], "bits": [4], "tokens": [1024], "seed": [7]}, retries=2)
    res = sweep(path, fn="raising_train")
    assert res.exit_code == 1, res.output
    calls = [p for p in ray_session.iterdir() if p.name.startswith("7-")]
    assert len(calls) == 3  # first attempt + retries
    rows = frame(tmp_path)
    assert rows.status.tolist() == ["failed"]
    assert "boom: simulated crash" in rows.error.iloc[0] and rows.attempts.iloc[0] == 3
    # the first line is the trial's exception, as the local executor stores it; no terminal colours
    assert rows.error.iloc[0].startswith("RuntimeError: boom: simulated crash for size=nano seed=7\n")
    assert "\x1b[" not in rows.error.iloc[0]


def test_nan_is_diverged_and_rerun_is_a_no_op(ray_session, tmp_path: Path) -> None:
    path = sweep_file(tmp_path, {"size": ["nano"], "bits": [4, 16], "tokens": [1024]})
    res = sweep(path, fn="nan_train")
    assert res.exit_code == 0 and "2 diverged" in res.output, res.output
    assert frame(tmp_path).status.tolist() == ["diverged", "diverged"]
    res = sweep(path)
    assert "0 to run" in res.output


@pytest.mark.slow  # 30 s: Ray itself stays in the default suite through the tests above and below
def test_ray_and_local_produce_identical_rows(ray_session, tmp_path: Path) -> None:
    """Real train(): 4 tiny CPU runs, fixed seeds; same run_ids and the same losses."""
    grid = {"size": ["nano"], "bits": [4, 16], "tokens": [1024], "seed": [0, 1]}
    out = {}
    for executor in ("ray", "local"):
        d = tmp_path / executor
        d.mkdir()
        res = sweep(sweep_file(d, grid), executor=executor, fn=None)
        assert res.exit_code == 0 and "4 completed" in res.output, res.output
        out[executor] = frame(d).set_index("run_id").sort_index()
    ray_rows, local_rows = out["ray"], out["local"]
    assert ray_rows.index.tolist() == local_rows.index.tolist() and len(ray_rows) == 4
    for col in ("status", "N", "D", "w_bits", "a_bits", "quantizer", "seed", "steps"):
        assert ray_rows[col].tolist() == local_rows[col].tolist(), col
    # bit-identical on CPU (also held for all 24 smoke.yaml runs: ray workers vs in-process)
    assert ray_rows.loss.tolist() == local_rows.loss.tolist()
    assert ray_rows.final_train_loss.tolist() == local_rows.final_train_loss.tolist()
