"""A store with two fitted laws and its report, shared by tests/test_report.py and tests/test_report_browser.py
(not a test module; the `two_law_report` fixture in tests/conftest.py builds it once per module)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import yaml
from typer.testing import CliRunner

from cli import app

runner = CliRunner()
SECRET = "S3cr3tPassw0rd"  # in a stored fit's source URL: the report must never show it
BASE = {"corpus": "shakespeare", "tokenizer": "byte", "seq_len": 32, "batch_size": 4, "device": "cpu",
        "eval_tokens": 256, "quantizer": "quest"}


def sweep_store(root: Path) -> tuple[str, int]:
    """A store filled by fake sweeps (3 sizes × 4 precisions × 3 budgets, curves stored) plus one diverged
    run; fits of the quest and chinchilla laws (20 bootstrap resamples).  Returns (url, runs with curves)."""
    url = f"sqlite:///{root / 'results.db'}"
    grid = {"size": ["nano", "micro", "tiny"], "bits": [[2, 2], [3, 3], [4, 4], 16], "tokens": [8192, 16384, 32768]}
    for name, fn, g in (("fake", "fake_train", grid),
                        ("blowup", "blowup_train", {"size": ["micro"], "bits": [[2, 2]], "tokens": [16384]})):
        spec = root / f"{name}.yaml"
        spec.write_text(yaml.safe_dump({"name": name, "base": dict(BASE, seed=0 if name == "fake" else 5), "grid": g,
                                        "store": url}))
        res = runner.invoke(app, ["sweep", str(spec), "--executor", "local", "--no-progress",
                                  "--train-fn", f"sweep_fakes:{fn}"])
        assert res.exit_code == 0, res.output
    for law in ("quest", "chinchilla"):
        res = runner.invoke(app, ["fit", "--law", law, "--store", url, "--bootstrap", "20", "--holdout-largest"])
        assert res.exit_code == 0, res.output
    return url, 37


def two_law_report(root: Path) -> tuple[Path, str]:
    """sweep_store in `root`, the chinchilla fit's source rewritten to a URL with a password (as an old
    quest-lab stored it), and `quest-lab report` on it: (report folder, the command's stdout)."""
    url, _ = sweep_store(root)
    with sqlite3.connect(root / "results.db") as con:  # a fit stored by an old quest-lab: password in its source
        payload = con.execute("SELECT payload FROM fits WHERE law='chinchilla'").fetchone()[0]
        con.execute("UPDATE fits SET payload=? WHERE law='chinchilla'",
                    (payload.replace(f'"source": "{url}"', f'"source": "postgresql://lab:{SECRET}@db.lab:5432/q"'),))
    out = root / "rep"
    res = runner.invoke(app, ["report", "--store", url, "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.stdout
