"""Concurrent drivers on one store (SQLite and PostgreSQL): two `quest-lab sweep` processes on the same
sweep train each run exactly once and lose no row; a third started later trains only what is left.
Each run takes as long as the claim TTL (1 s), so only the drivers' heartbeats keep their claims alive."""
from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from quest_lab.store import Store

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
BASE = {"corpus": "shakespeare", "tokenizer": "byte", "seq_len": 32, "batch_size": 4, "device": "cpu",
        "eval_tokens": 512, "quantizer": "quest"}
GRID = {"size": ["nano", "micro"], "bits": [2, 3, 4], "tokens": [1024], "seed": [0, 1]}  # 12 runs


def _driver(path: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "cli.py"), "sweep", str(path), "--executor", "local", "--no-progress",
           "--train-fn", "sweep_fakes:counting_train", "--claim-ttl", "1"]
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _completed(url: str) -> int:
    try:
        return list(Store(url).statuses().values()).count("completed")
    except Exception:  # noqa: BLE001 - schema being created by a driver right now
        return 0


def _trained(output: str) -> int:
    m = re.search(r"(\d+) completed", output)
    return int(m.group(1)) if m else 0


@pytest.mark.slow  # moved out of the default suite (<= 3 min on 2 cores); CI runs -m slow too
def test_two_drivers_train_each_run_once_and_a_third_takes_what_is_left(tmp_path: Path, store_url: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "c", "base": BASE, "grid": GRID, "store": store_url}))
    calls = tmp_path / "calls"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]), QUEST_LAB_FAKE_SLEEP="1.0",
               QUEST_LAB_FAKE_COUNT_DIR=str(calls))
    a, b = _driver(path, env, tmp_path), _driver(path, env, tmp_path)  # same moment, empty store
    procs = [a, b]
    try:
        deadline = time.monotonic() + 180
        while _completed(store_url) < 2:
            assert a.poll() is None or b.poll() is None, "both drivers exited early"
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
        c = _driver(path, env, tmp_path)  # started later: takes only what nobody holds
        procs.append(c)
        outputs = [p.communicate(timeout=180)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out
    per_run = collections.Counter(f.name.split(".")[0] for f in calls.iterdir())
    assert len(per_run) == 12 and set(per_run.values()) == {1}, per_run  # each run trained exactly once
    frame = Store(store_url).runs_frame(statuses=None)
    assert len(frame) == 12 and frame.run_id.is_unique and (frame.status == "completed").all()  # 0 rows lost
    trained = [_trained(out) for out in outputs]
    assert sum(trained) == 12, outputs
    assert trained[0] > 0 and trained[1] > 0, outputs  # the two drivers shared the work
    # the third: its plan saw k done; of the 12 - k left it trained some and skipped those held elsewhere
    done, to_run = map(int, re.search(r"12 total, (\d+) done, (\d+) to run", outputs[2]).groups())
    assert done >= 2 and to_run == 12 - done, outputs[2]
    skipped = int(m.group(1)) if (m := re.search(r"(\d+) held or finished by another driver", outputs[2])) else 0
    assert trained[2] + skipped == to_run and trained[2] > 0, outputs[2]
    assert frame.owner.nunique() == 3
