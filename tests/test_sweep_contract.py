"""The plan → worker contract (issue 11) and the executor registry: a new executor is one file."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import quest_lab.sweep as sweep_pkg
from cli import app
from quest_lab.run import RunConfig
from quest_lab.store import Store
from quest_lab.sweep import ContractError, PlannedRun, load_spec, plan, run_sweep
from quest_lab.sweep.executors import EXECUTORS, load_executors, run_trial
from quest_lab.sweep.runner import choose_executor
from sweep_fakes import fake_train

runner = CliRunner()
BASE = {"corpus": "shakespeare", "tokenizer": "byte", "seq_len": 32, "batch_size": 4, "device": "cpu",
        "eval_tokens": 256, "quantizer": "quest", "size": "nano", "tokens": 1024}


def sweep_file(tmp_path: Path, grid: dict, **extra) -> Path:
    doc = {"name": "k", "base": BASE, "grid": grid, "store": f"sqlite:///{tmp_path / 'results.db'}", **extra}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_planned_run_round_trips_and_rejects_a_changed_plan() -> None:
    cfg = RunConfig(size="nano", tokenizer="byte", tokens=1024, w_bits=4, a_bits=4)
    run = PlannedRun(cfg.run_id("d1"), cfg, "d1")
    assert PlannedRun.from_dict(run.to_dict()) == run
    tampered = run.to_dict() | {"data_identity": "d2"}
    with pytest.raises(ContractError, match="hash to"):
        PlannedRun.from_dict(tampered)
    changed = run.to_dict()
    changed["config"] = changed["config"] | {"seed": 5}
    with pytest.raises(ContractError):
        PlannedRun.from_dict(changed)


def test_worker_checks_the_data_it_trained_on() -> None:
    from quest_lab.corpus import data_identity

    cfg = RunConfig(size="nano", tokenizer="byte", tokens=1024, w_bits=4, a_bits=4)
    ident = data_identity(cfg.corpus, cfg.tokenizer, cfg.vocab_size)
    result = run_trial(PlannedRun(cfg.run_id(ident), cfg, ident), fake_train)
    assert result.data_identity == ident
    with pytest.raises(ContractError, match="trained on data"):
        run_trial(PlannedRun(cfg.run_id("planned"), cfg, "planned"), fake_train)


def test_a_worker_on_other_data_fails_the_run_without_retries(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, {"seed": [0]}, retries=2)
    res = runner.invoke(app, ["sweep", str(path), "--executor", "local", "--no-progress",
                              "--train-fn", "sweep_fakes:other_data_train"])
    assert res.exit_code == 1, res.output
    row = Store(f"sqlite:///{tmp_path / 'results.db'}").runs_frame(statuses=("failed",)).iloc[0]
    assert row.error.startswith("ContractError: run ") and "the worker trained on data" in row.error
    assert row.attempts == 1  # a broken contract is not retried
    assert row.data_identity != "0000000000000000:byte"  # the planned identity stays


ECHO_EXECUTOR = '''
"""A test executor: runs trials in order, like `local` (one file is all a new executor needs)."""
from quest_lab.sweep.executors import Executor, register_executor, run_trial


@register_executor("echo")
class EchoExecutor(Executor):
    parallel = False
    remote = True  # pretend it can use a cluster address
    priority = 50

    def run(self, runs, events):
        for run in runs:
            if events.claim(run.run_id):
                events.started(run.run_id, 1)
                events.finished(run.run_id, run_trial(run, self.train_fn), 1)
'''


def test_a_new_executor_is_one_file(tmp_path: Path, monkeypatch) -> None:
    pkg = tmp_path / "extra"
    pkg.mkdir()
    (pkg / "echo_executor.py").write_text(textwrap.dedent(ECHO_EXECUTOR))
    monkeypatch.setattr(sweep_pkg, "__path__", [*sweep_pkg.__path__, str(pkg)])
    monkeypatch.delitem(EXECUTORS, "echo", raising=False)
    try:
        assert "echo" in load_executors()
        sweep = load_spec(sweep_file(tmp_path, {"seed": [0, 1]}))
        assert choose_executor("echo", sweep, 2, None) == "echo"
        store = Store(f"sqlite:///{tmp_path / 'results.db'}")
        outcome = run_sweep(plan(sweep, store), store, executor="echo", train_fn=fake_train, show_progress=False)
        assert outcome.executor == "echo" and outcome.counts["completed"] == 2
    finally:
        EXECUTORS.pop("echo", None)


def test_auto_uses_registry_attributes(tmp_path: Path, monkeypatch) -> None:
    from quest_lab.sweep import runner as sweep_runner

    sweep = load_spec(sweep_file(tmp_path, {"seed": [0, 1]}))
    monkeypatch.setattr(sweep_runner.os, "cpu_count", lambda: 4)
    assert EXECUTORS["ray"].parallel and EXECUTORS["ray"].remote and not EXECUTORS["local"].parallel
    assert choose_executor("auto", sweep, 2, None) == "ray"
    assert choose_executor("auto", sweep, 1, None) == "local"
    assert choose_executor("auto", sweep, 2, "127.0.0.1:6379") == "ray"
    with pytest.raises(ValueError, match="needs an executor that runs on a cluster"):
        choose_executor("local", sweep, 2, "127.0.0.1:6379")
    with pytest.raises(ValueError, match="unknown; allowed: auto, "):
        choose_executor("nope", sweep, 2, None)
