"""Every benchmark in benchmarks/ runs in its --smoke mode (CI keeps them runnable; no timing asserted)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))
ARGS = {"train.py": ["all", "--smoke"]}  # sub-command benchmarks; the rest take --smoke alone
SLOW = {"step.py", "sweep.py", "suggest.py", "fit.py", "training_paths.py", "train.py"}  # > 5 s on 2 cores: run by `pytest -m slow` (CI runs both)


def test_every_benchmark_is_listed():
    assert {"kernels.py", "quant_mse.py", "fit.py", "sweep.py", "train.py"} <= set(BENCHMARKS)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in BENCHMARKS])
def test_benchmark_smoke(name, tmp_path):
    env = dict(os.environ, QUEST_LAB_CACHE=os.environ.get("QUEST_LAB_CACHE", str(tmp_path / "cache")))
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *ARGS.get(name, ["--smoke"])],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert res.stdout.strip(), f"{name} printed nothing"


def test_suggest_bounds_mode(tmp_path):
    """`benchmarks/suggest.py --bounds`: the linearised oracle bound per setting, every ratio in (0, 1]."""
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "suggest.py"), "--bounds"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [ln for ln in res.stdout.splitlines() if "K=" in ln]
    assert len(lines) == 20
    pairs = re.findall(r"(\d\.\d\d) / (\d\.\d\d)", res.stdout)  # oracle/random, oracle/largest per question
    ratios = [float(r) for pair in pairs for r in pair]
    assert len(ratios) == 20 * 3 * 2 and all(0 < r <= 1.0 for r in ratios)
