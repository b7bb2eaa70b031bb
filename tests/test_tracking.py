"""Experiment tracking from the sweep driver (quest_lab.tracking): a tracker sees exactly the runs the store
recorded, a failing tracker loses nothing, bad tracking config is exit 2, no password is ever shown; and a
real MLflow store (sqlite file) receives params, metrics and loss curves."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli import app
from quest_lab import tracking
from quest_lab.store import Store
from quest_lab.tracking import TrackedRun, Tracker, register_tracker

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # sweep_fakes, for --train-fn

runner = CliRunner()
BASE = {"corpus": "shakespeare", "tokenizer": "byte", "seq_len": 32, "batch_size": 4,
        "device": "cpu", "eval_tokens": 512, "quantizer": "quest"}
GRID = {"size": ["nano"], "bits": [4], "tokens": [1024], "seed": [0, 1, 2, 3]}  # odd seeds fail (seed_raises_train)
SECRET = "s3cretPW"


def sweep_file(tmp_path: Path, *, grid: dict | None = None, tracking_cfg: dict | None = None) -> Path:
    doc = {"name": "trk", "base": dict(BASE), "grid": grid or GRID, "store": f"sqlite:///{tmp_path / 'results.db'}"}
    if tracking_cfg is not None:
        doc["tracking"] = tracking_cfg
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def sweep(path: Path, *extra: str, fn: str = "seed_raises_train"):
    return runner.invoke(app, ["sweep", str(path), "--executor", "local", "--no-progress",
                               "--train-fn", f"sweep_fakes:{fn}", *extra])


def stored(tmp_path: Path) -> dict[str, str]:
    frame = Store(f"sqlite:///{tmp_path / 'results.db'}").runs_frame(statuses=None)
    return dict(zip(frame.run_id, frame.status))


class Recorder(Tracker):
    """Keeps what it is given (class-level: the driver builds its own instance)."""

    seen: list[TrackedRun] = []
    made: list["Recorder"] = []

    def __init__(self, uri: str, experiment: str) -> None:
        super().__init__(uri, experiment)
        Recorder.made.append(self)

    def log_run(self, run: TrackedRun) -> None:
        Recorder.seen.append(run)


class Broken(Tracker):
    """Fails on every run, quoting its URI and password bare in the error (as a careless client might)."""

    calls = 0

    def log_run(self, run: TrackedRun) -> None:
        Broken.calls += 1
        raise ConnectionError(f"cannot reach {self.uri} (password {SECRET} rejected)\nsecond line")


@pytest.fixture
def fake_trackers(monkeypatch):
    Recorder.seen, Recorder.made, Broken.calls = [], [], 0
    saved = dict(tracking.TRACKERS)
    register_tracker("recorder")(Recorder)
    register_tracker("broken")(Broken)
    yield
    tracking.TRACKERS.clear()
    tracking.TRACKERS.update(saved)  # the registry as it was


def test_tracker_sees_exactly_the_stored_runs(tmp_path: Path, fake_trackers) -> None:
    path = sweep_file(tmp_path, tracking_cfg={"recorder": "mem://here"})
    res = sweep(path)
    assert res.exit_code == 1, res.output  # two runs failed (odd seeds)
    assert "tracking: recorder mem://here (experiment trk)" in res.output
    rows = stored(tmp_path)
    assert sorted(rows.values()) == ["completed", "completed", "failed", "failed"]
    assert len(Recorder.made) == 1 and Recorder.made[0].experiment == "trk"
    seen = {r.run_id: r for r in Recorder.seen}
    assert len(Recorder.seen) == len(seen) == 4  # each once
    assert {k: r.status for k, r in seen.items()} == rows
    for run_id, run in seen.items():
        assert run.sweep == "trk" and run.config["run_id"] == run_id and run.config["size"] == "nano"
        assert run.config["precision"] == "quest:w4a4" and run.config["token_budget"] == 1024
        if run.status == "completed":
            assert run.result is not None and len(run.result.train_curve) == 10 and run.error is None
        else:
            assert run.result is None and "odd seed" in run.error
    # a second sweep has nothing to run: nothing is logged again
    Recorder.seen.clear()
    res = sweep(path)
    assert "0 to run" in res.output and Recorder.seen == []


def test_failing_tracker_keeps_every_result_and_warns_once(tmp_path: Path, fake_trackers, caplog) -> None:
    path = sweep_file(tmp_path, tracking_cfg={"broken": f"svc://alice:{SECRET}@host/x", "recorder": "mem://"})
    with caplog.at_level(logging.WARNING, logger="quest_lab.tracking"):
        res = sweep(path, fn="fake_train")
    assert res.exit_code == 0, res.output
    assert "4 completed" in res.output
    assert list(stored(tmp_path).values()) == ["completed"] * 4
    warnings = [r for r in caplog.records if r.name == "quest_lab.tracking" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and Broken.calls == 1  # switched off after its first error
    text = warnings[0].getMessage()
    assert "broken tracking to svc://alice:***@host/x failed (ConnectionError" in text
    assert "results are stored" in text and "second line" not in text
    assert SECRET not in text and SECRET not in res.output
    assert len(Recorder.seen) == 4  # the other tracker goes on


def test_password_in_tracking_uri_is_never_printed_or_stored(tmp_path: Path, fake_trackers, monkeypatch,
                                                             caplog) -> None:
    monkeypatch.setitem(tracking.TRACKERS, "mlflow", Broken)  # `--mlflow URI` builds whatever is registered as mlflow
    path = sweep_file(tmp_path, grid={**GRID, "seed": [0]})
    uri = f"https://alice:{SECRET}@mlflow.example:5000"
    with caplog.at_level(logging.WARNING):
        res = sweep(path, "--mlflow", uri)
        dry = sweep(path, "--mlflow", uri, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "tracking: mlflow https://alice:***@mlflow.example:5000 (experiment trk)" in res.output
    everything = res.output + dry.output + caplog.text + (tmp_path / "results.db").read_bytes().decode("latin-1")
    assert SECRET not in everything
    assert stored(tmp_path) and Broken.calls == 1


def test_unknown_tracker_in_yaml_is_a_spec_error(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, tracking_cfg={"wandb": "https://example"})
    res = sweep(path)
    assert res.exit_code == 2
    assert "tracking" in res.output and "'wandb' is unknown" in res.output and "mlflow" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "results.db").exists()
    from quest_lab.sweep import SpecError, load_spec

    with pytest.raises(SpecError, match="wandb"):
        load_spec(path)


def test_empty_tracking_uri_is_a_spec_error(tmp_path: Path) -> None:
    res = sweep(sweep_file(tmp_path, tracking_cfg={"mlflow": " "}))
    assert res.exit_code == 2 and "needs a URI" in res.output


def test_tracker_that_cannot_start_stops_the_sweep_before_training(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    path = sweep_file(tmp_path, grid={**GRID, "seed": [0]})
    res = sweep(path, "--mlflow", f"bogus://alice:{SECRET}@host/x", fn="fake_train")
    assert res.exit_code == 2, res.output
    assert "cannot use MLflow tracking URI bogus://alice:***@host/x" in res.output
    assert SECRET not in res.output
    assert set(stored(tmp_path).values()) <= {"pending"}  # registered at most, nothing trained


def test_mlflow_missing_is_one_line(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(tracking.TrackingSetupError, match=r"pip install 'quest-lab\[mlflow\]'"):
        tracking.MlflowTracker("sqlite:///x.db", "e")


def test_real_mlflow_gets_params_metrics_and_curves(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = sweep_file(tmp_path, grid={"size": ["nano"], "bits": [4, 16], "tokens": [1024]},
                      tracking_cfg={"mlflow": uri})
    res = sweep(path, fn="blowup_train")  # diverged runs: a curve without a final eval
    assert res.exit_code == 0, res.output
    res = sweep(sweep_file(tmp_path, grid={"size": ["nano"], "bits": [4, 16], "tokens": [1024, 2048]},
                           tracking_cfg={"mlflow": uri}), fn="fake_train")
    assert res.exit_code == 0 and "2 completed" in res.output, res.output
    assert "INFO" not in res.output  # MLflow's own INFO lines are quiet
    rows = stored(tmp_path)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("trk")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=100)
    by_id = {r.data.tags["quest_lab.run_id"]: r for r in runs}
    assert len(runs) == 4 and set(by_id) == set(rows)
    for run_id, r in by_id.items():
        assert r.data.tags["quest_lab.sweep"] == "trk" and r.data.tags["quest_lab.status"] == rows[run_id]
        assert r.data.params["run_id"] == run_id and r.data.params["size"] == "nano"
        assert r.data.params["corpus"] == "shakespeare" and r.data.params["seq_len"] == "32"
        assert r.data.params["precision"] == r.data.tags["quest_lab.precision"]
        assert float(r.data.metrics["n_params"]) > 0
        history = client.get_metric_history(r.info.run_id, "train_loss")
        tokens = client.get_metric_history(r.info.run_id, "tokens_seen")
        if rows[run_id] == "completed":
            assert r.info.status == "FINISHED"
            assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(10))
            assert len(tokens) == 10 and max(m.value for m in tokens) == float(r.data.params["token_budget"])
            evals = client.get_metric_history(r.info.run_id, "eval_loss")
            assert len(evals) == 1 and evals[0].value == pytest.approx(r.data.metrics["final_eval_loss"])
            assert r.data.metrics["steps"] == 10
        else:  # blowup_train: diverged at step 6, no final eval
            assert rows[run_id] == "diverged" and r.info.status == "FAILED"
            assert len(history) == 6 and max(history, key=lambda m: m.step).value == 40.0
            assert "final_eval_loss" not in r.data.metrics
            assert "train loss 40" in r.data.tags["quest_lab.error"]
