"""`quest-lab suggest`: bad input → exit 2 with one line, nothing written; a good call writes a sweep that
`quest-lab sweep --dry-run` plans as exactly the suggested runs.  The store is the smoke grid trained by
a fake train function (losses from a QuEST law with 1 % noise)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli import app
from quest_lab.run import RunConfig, RunResult

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
EFF = {2: 0.35, 3: 0.6, 4: 0.8}


def noisy_train(cfg: RunConfig) -> RunResult:
    """QuEST-law loss of the config with deterministic 1 % noise (no training)."""
    from sweep_fakes import _result

    eff = 1.0 if cfg.w_bits >= 16 else EFF[int(cfg.w_bits)]
    clean = 1.5 + 60.0 / (cfg.n_params * eff) ** 0.3 + 30.0 / cfg.token_budget ** 0.35
    wiggle = (zlib.crc32(repr((cfg.size, cfg.w_bits, cfg.token_budget)).encode()) % 1000 / 1000 - 0.5) * 0.035
    return _result(cfg, clean * math.exp(wiggle))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("suggest") / "results.db"
    url = f"sqlite:///{path}"
    res = runner.invoke(app, ["sweep", str(ROOT / "sweeps" / "smoke.yaml"), "--executor", "local", "--store", url,
                              "--no-progress", "--train-fn", "test_suggest_cli:noisy_train"])
    assert res.exit_code == 0, res.output
    return url


FAST = ["--bootstrap", "40", "--workers", "1", "--max-seconds", "5"]


def invoke(*args: str):
    return runner.invoke(app, ["suggest", *args])


@pytest.mark.parametrize("args, message", [
    (["--question", "best-answer"], "question 'best-answer' is unknown; allowed: best-precision, eff, extrapolate"),
    (["--law", "nope"], "--law 'nope' is unknown; allowed: chinchilla, kumar, qat, quartet, quest"),
    (["--where", "w_bits >> 2"], "w_bits >> 2"),
    (["--where", "w_bits > 99"], "no completed runs to fit after --where"),
    (["--law-option", "effD_max"], "--law-option 'effD_max' must be NAME=NUMBER"),
    (["--law-option", "nope=1"], "nope"),
    (["--budget", "1e13 joules"], "units: flops"),
    (["--budget", "lots"], "budget 'lots' is not a number with an optional unit"),
    (["--budget", "1e3"], "affords no candidate: the cheapest costs"),
    (["--n", "0"], "n=0 must be an integer >= 1"),
    (["--question", "eff:label=quest:w8a8"], "precision 'quest:w8a8' has no fitted runs"),
    (["--candidates", "missing.yaml"], "missing.yaml: no such sweep file"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(store, tmp_path, args, message):
    out = tmp_path / "next.yaml"
    opts = {"--question": "eff:label=quest:w4a4", "--budget": "1e13", **dict(zip(args[::2], args[1::2]))}
    res = invoke(*[x for pair in opts.items() for x in pair], "--store", store, "--out", str(out), *FAST)
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in res.output.replace("\n", " "), res.output
    assert not out.exists()


def test_missing_store_and_existing_out(tmp_path, store):
    out = tmp_path / "next.yaml"
    res = invoke("--question", "eff:label=quest:w4a4", "--budget", "1e13", "--store",
                 f"sqlite:///{tmp_path / 'none.db'}", "--out", str(out))
    assert res.exit_code == 2 and "no results database at" in res.output and not out.exists()
    out.write_text("keep: me\n")
    res = invoke("--question", "eff:label=quest:w4a4", "--budget", "1e13", "--store", store, "--out", str(out))
    assert res.exit_code == 2 and "exists; pass --force" in res.output
    assert out.read_text() == "keep: me\n"
    db = store[len("sqlite:///"):]
    res = invoke("--question", "eff:label=quest:w4a4", "--budget", "1e13", "--store", store, "--out", db, "--force")
    assert res.exit_code == 2 and "results store's own file" in res.output


@pytest.mark.slow  # moved out of the default suite (<= 3 min on 2 cores); CI runs -m slow too
def test_suggest_writes_a_sweep_that_plans_exactly_the_suggested_runs(store, tmp_path):
    out, js = tmp_path / "sweeps" / "next.yaml", tmp_path / "next.json"
    res = invoke("--question", "best-precision:memory=4e6", "--budget", "2e12", "--store", store, "--out", str(out))
    assert res.exit_code == 2 and "sweeps does not exist" in res.output  # as `export`: the folder must exist
    out.parent.mkdir()
    res = invoke("--question", "best-precision:memory=4e6", "--budget", "2e12", "--n", "3", "--store", store,
                 "--out", str(out), "--json", str(js), *FAST)
    assert res.exit_code == 0, res.output
    payload = json.loads(js.read_text())
    assert payload["mode"] == "joint" and "joint fit" in res.output  # `quest-lab fit`'s default for quest
    chosen = [row["candidate"] for row in payload["table"]]
    assert 1 <= len(chosen) <= 3 and payload["total_cost"] <= 2e12
    text = out.read_text()
    assert text.startswith("# Suggested by `quest-lab suggest`")
    doc = yaml.safe_load(text)
    assert doc["name"] == "next" and doc["store"] == store and len(doc["include"]) == len(chosen)
    assert doc["base"]["corpus"] == "shakespeare" and doc["base"]["seq_len"] == 64 and doc["base"]["vocab_size"] == 512
    plan = runner.invoke(app, ["sweep", str(out), "--dry-run", "--store", store])
    assert plan.exit_code == 0, plan.output
    assert f"{len(chosen)} total, 0 done, {len(chosen)} to run" in plan.output
    staged = invoke("--question", "best-precision:memory=4e6", "--budget", "2e12", "--n", "1", "--store", store,
                    "--mode", "staged", "--out", str(tmp_path / "staged.yaml"), *FAST)
    # exit 1 when no batch narrows the staged fit's interval: a valid answer, nothing written
    assert staged.exit_code in (0, 1) and "(staged fit)" in staged.output, staged.output
    assert all(rid in plan.output for rid in chosen)
    again = invoke("--question", "best-precision:memory=4e6", "--budget", "2e12", "--n", "3", "--store", store,
                   "--out", str(out), "--json", str(js), "--force", *FAST)
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["next.yaml"]  # no temporary files left
    # the report's "What to run next" panel from the JSON
    rep = runner.invoke(app, ["report", "--store", store, "--bootstrap", "0", "--out", str(tmp_path / "rep"),
                              "--suggestion", str(js)])
    assert rep.exit_code == 0, rep.output
    page = (tmp_path / "rep" / "index.html").read_text()
    shown = [row["candidate"] for row in json.loads(js.read_text())["table"]]  # `again`'s runs (its wall-time cap
    assert "<h2 id='next'>What to run next</h2>" in page and all(rid in page for rid in shown)  # may pick others)
    assert (tmp_path / "rep" / "next_runs.png").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    rep = runner.invoke(app, ["report", "--store", store, "--bootstrap", "0", "--out", str(tmp_path / "rep2"),
                              "--suggestion", str(bad)])
    assert rep.exit_code == 2 and "is not a `quest-lab suggest --json` file" in rep.output
    assert not (tmp_path / "rep2").exists()


@pytest.mark.slow  # moved out of the default suite (<= 3 min on 2 cores); CI runs -m slow too
def test_candidates_from_a_grid_yaml_and_gpu_hours(store, tmp_path):
    grid = tmp_path / "bigger.yaml"
    smoke = yaml.safe_load((ROOT / "sweeps" / "smoke.yaml").read_text())
    smoke["grid"]["size"] = ["nano", "micro", "tiny", "small"]
    smoke["grid"]["tokens"] = [131072, 393216, 786432]
    smoke["store"] = store
    grid.write_text(yaml.safe_dump(smoke))
    out = tmp_path / "next.yaml"
    res = invoke("--question", "extrapolate:size=base,tokens=1e6,label=quest:w4a4", "--budget", "0.01gpu-h",
                 "--candidates", str(grid), "--n", "2", "--out", str(out), *FAST)
    assert res.exit_code == 0, res.output
    doc = yaml.safe_load(out.read_text())
    assert doc["resources"] == {"cpus": 1.0, "gpus": 0.0} and doc["max_concurrent"] == 2 and doc["retries"] == 1
    assert all(p["size"] in ("nano", "micro", "tiny", "small") for p in doc["include"])
    assert "GPU-hours" in res.output


@pytest.mark.slow  # moved out of the default suite (<= 3 min on 2 cores); CI runs -m slow too
def test_suggest_cli_never_imports_torch(store, tmp_path):
    script = ("import sys\nfrom typer.testing import CliRunner\nimport cli\n"
              f"res = CliRunner().invoke(cli.app, ['suggest', '--question', 'eff:label=quest:w4a4', '--budget', "
              f"'1e12', '--n', '1', '--store', {store!r}, '--out', {str(tmp_path / 'n.yaml')!r}, "
              "'--bootstrap', '20', '--workers', '1'])\n"
              "assert res.exit_code == 0, res.output\nassert 'torch' not in sys.modules\nprint('ok')\n")
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stdout[-2000:] + res.stderr[-2000:]
