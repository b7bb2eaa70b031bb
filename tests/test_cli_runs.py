"""`quest-lab runs` (sorted by time, --sort, fits the terminal without cutting a header) and `quest-lab export`
(CSV, Parquet, JSON Lines; runs or curves; the schema printed and documented in the README)."""
from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from cli import app
from quest_lab.export import CURVES, RUNS

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
BASE = {"corpus": "shakespeare", "tokenizer": "byte", "seq_len": 32, "batch_size": 4, "device": "cpu",
        "eval_tokens": 256, "quantizer": "quest", "tokens": 4096}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """6 runs of a fake sweep, their finish times set in reverse hash order."""
    root = tmp_path_factory.mktemp("runs")
    url = f"sqlite:///{root / 'results.db'}"
    spec = root / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "s", "base": BASE, "grid": {"size": ["nano", "micro", "tiny"],
                                                                         "bits": [[4, 4], 16]}, "store": url}))
    res = runner.invoke(app, ["sweep", str(spec), "--executor", "local", "--no-progress", "--train-fn",
                              "sweep_fakes:fake_train"])
    assert res.exit_code == 0, res.output
    with sqlite3.connect(root / "results.db") as con:
        ids = sorted(r[0] for r in con.execute("SELECT run_id FROM runs"))
        for minute, rid in enumerate(reversed(ids)):  # finished in reverse run_id order
            con.execute("UPDATE runs SET finished_at=? WHERE run_id=?", (f"2026-01-01 10:{minute:02d}:00", rid))
    return url


def _ids(output: str) -> list[str]:
    return re.findall(r"^([0-9a-f]{16}) ", output, re.M)


def test_runs_are_listed_by_time_and_sortable(store):
    by_time = _ids(runner.invoke(app, ["runs", "--store", store], env={"COLUMNS": "120"}).stdout)
    assert len(by_time) == 6 and by_time == sorted(by_time, reverse=True)  # finish order, not hash order
    newest = _ids(runner.invoke(app, ["runs", "--store", store, "--limit", "2"], env={"COLUMNS": "120"}).stdout)
    assert newest == by_time[-2:]
    res = runner.invoke(app, ["runs", "--store", store, "--sort", "loss"], env={"COLUMNS": "120"})
    losses = [float(x) for x in re.findall(r" (\d+\.\d{4})\b", res.stdout)]
    assert len(losses) == 6 and losses == sorted(losses) and "by loss" in res.stdout
    res = runner.invoke(app, ["runs", "--store", store, "--sort", "N", "--reverse"], env={"COLUMNS": "120"})
    sizes = re.findall(r" (nano|micro|tiny) ", res.stdout)
    assert sizes == ["tiny", "tiny", "micro", "micro", "nano", "nano"]
    assert "26,784" in res.stdout and "4,096" in res.stdout  # N and D as integers


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_runs_fit_the_terminal_and_never_cut_a_header(store, width):
    res = runner.invoke(app, ["runs", "--store", store], env={"COLUMNS": str(width)})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    table = lines[:lines.index(next(line for line in lines if line.startswith("6 run(s)")))]
    assert max(len(line.rstrip()) for line in table) <= width
    assert "…" not in res.stdout
    header = table[0].split()
    assert header[:2] == ["run_id", "status"] and all(h in ("run_id", "status", "size", "precision", "N", "D", "seed",
                                                            "loss", "wall", "s", "finished") for h in header)
    if width >= 160:
        assert "left out" not in res.stdout
    else:
        assert "left out for width:" in res.stdout


def test_export_formats_and_tables(store, tmp_path):
    for name in ("runs.csv", "runs.parquet", "runs.jsonl"):
        res = runner.invoke(app, ["export", str(tmp_path / name), "--store", store])
        assert res.exit_code == 0, res.output
    csv = pd.read_csv(tmp_path / "runs.csv")
    pq = pd.read_parquet(tmp_path / "runs.parquet")
    rows = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert list(csv.columns) == list(pq.columns) == list(rows[0]) == list(RUNS)  # the documented schema, in order
    assert len(csv) == len(pq) == len(rows) == 6
    assert rows[0]["finished_at"].startswith("2026-01-01T10:") and isinstance(rows[0]["loss"], float)
    assert set(pq["run_id"]) == {r["run_id"] for r in rows}
    res = runner.invoke(app, ["export", str(tmp_path / "curves.jsonl"), "--table", "curves", "--store", store,
                              "--where", "size == 'nano'"])
    assert res.exit_code == 0 and "of 2 run(s)" in res.stdout, res.output
    curves = pd.read_json(tmp_path / "curves.jsonl", lines=True)
    assert list(curves.columns) == list(CURVES) and set(curves["kind"]) == {"train", "eval"}
    assert curves["run_id"].nunique() == 2
    res = runner.invoke(app, ["export", str(tmp_path / "x.ndjson"), "--format", "csv", "--store", store])
    assert res.exit_code == 2 and "make them agree" in res.stderr


def test_export_schema_is_printed_and_documented_in_the_readme():
    from quest_lab.store import CURVE_COLUMNS, RUN_COLUMNS

    assert set(RUNS) == set(RUN_COLUMNS) and set(CURVES) == set(CURVE_COLUMNS)  # every stored column documented
    res = runner.invoke(app, ["export", "--schema"])
    assert res.exit_code == 0 and all(re.search(rf"^{c}\s+\w+\s+\S", res.stdout, re.M) for c in RUNS)
    assert "step" in runner.invoke(app, ["export", "--schema", "--table", "curves"]).stdout
    readme = (ROOT / "README.md").read_text()
    for table, schema in (("runs", RUNS), ("curves", CURVES)):
        documented = re.findall(rf"^\| `{table}\.(\w+)` \| (\w+) \|", readme, re.M)
        assert documented == [(c, kind) for c, (kind, _) in schema.items()], table
