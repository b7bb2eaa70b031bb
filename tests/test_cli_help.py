"""The CLI tells the truth in its help, version and warnings: help never cut at 80 columns, options
described for what each command takes, `--version`, one warning style, `quest-lab fits`."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from synthetic import smoke_frame

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def commands(typer_app=app, prefix=()) -> list[list[str]]:
    """Every command's argv prefix, through merged and named (db) groups."""
    out = [[*prefix, c.name] for c in typer_app.registered_commands]
    for group in typer_app.registered_groups:
        out += commands(group.typer_instance, (*prefix, group.name) if group.name else prefix)
    return out


def test_every_help_fits_80_columns_and_is_never_cut():
    names = commands()
    assert {"train", "runs", "export", "import", "fit", "fits", "report", "sweep"} <= {n[-1] for n in names}
    for args in [[]] + names:
        res = runner.invoke(app, [*args, "--help"], terminal_width=80)
        assert res.exit_code == 0, (args, res.output)
        assert "…" not in res.output, args
        cut = [line for line in res.output.splitlines() if line.endswith("...") and not line.startswith("Usage:")]
        assert not cut, (args, cut)  # click shortens a command's summary that does not fit
        assert max(map(len, res.output.splitlines())) <= 80, args


def test_store_defaults_are_said_whole_and_agree():
    from quest_lab.commands import DEFAULT_STORE
    from quest_lab.store import DEFAULT_URL
    from quest_lab.sweep.spec import DEFAULT_STORE as SPEC_DEFAULT

    assert DEFAULT_STORE == DEFAULT_URL == SPEC_DEFAULT
    for args in (["fit"], ["report"], ["runs"], ["export"], ["import"], ["fits"], ["train"], ["db", "status"]):
        text = " ".join(runner.invoke(app, [*args, "--help"], terminal_width=80).output.split())
        assert f"(default: {DEFAULT_STORE})" in text, args
        assert "sweep file" not in text, args  # only `sweep` takes a sweep file
    text = " ".join(runner.invoke(app, ["sweep", "--help"], terminal_width=80).output.split())
    assert "(default: the sweep file's `store`, else sqlite:///results.db)" in text


def test_version():
    from quest_lab import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.startswith(f"quest-lab {__version__}")


def test_one_warning_style(tmp_path):
    """Logged warnings and the CLI's own read `warning: ...`, never `WARNING quest_lab...:`."""
    csv = tmp_path / "runs.csv"
    smoke_frame().to_csv(csv, index=False)
    res = subprocess.run([sys.executable, "-c", "import cli; cli.app()", "fit", "--law", "chinchilla", "--csv", str(csv),
                          "--bootstrap", "20", "--no-save"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    warnings = [line for line in res.stderr.splitlines() if line.strip()]
    assert any(line.startswith("warning: chinchilla law ignores 18 quantized run(s)") for line in warnings), warnings
    assert not re.search(r"^(WARNING|\[yellow\])", res.stderr, re.M), res.stderr


def test_fit_prints_the_formula_whole(smoke_store):
    res = runner.invoke(app, ["fit", "--store", smoke_store, "--bootstrap", "0", "--no-save"], terminal_width=80)
    assert res.exit_code == 0, res.output
    assert "quest law: L = A/(N·eff(P))^α + B/D^β + E\n" in res.stdout


@pytest.mark.slow  # moved out of the default suite (<= 3 min on 2 cores); CI runs -m slow too
def test_fits_lists_stored_fits(smoke_store):
    assert "no stored fits" in runner.invoke(app, ["fits", "--store", smoke_store]).output
    for law in ("quest", "chinchilla"):
        assert runner.invoke(app, ["fit", "--law", law, "--store", smoke_store, "--bootstrap", "0"]).exit_code == 0
    assert runner.invoke(app, ["fit", "--law", "quest", "--store", smoke_store, "--bootstrap", "0",
                               "--where", "w_bits >= 3"]).exit_code == 0
    res = runner.invoke(app, ["fits", "--store", smoke_store], terminal_width=80)
    assert res.exit_code == 0, res.output
    rows = [line.split() for line in res.stdout.splitlines() if re.match(r"\s*\d+\s+[a-z]+\s+20", line)]
    assert [(r[0], r[1]) for r in rows] == [("3", "quest"), ("2", "chinchilla"), ("1", "quest")]  # newest first
    assert "#3: fitted on all sweeps, --where w_bits >= 3" in res.stdout
    assert "not identifiable" in res.stdout and max(map(len, res.stdout.splitlines()[:5])) <= 80
    only = runner.invoke(app, ["fits", "--store", smoke_store, "--law", "chinchilla"])
    assert [line.split()[1] for line in only.stdout.splitlines() if re.match(r"\s*\d+\s+[a-z]+\s+20", line)] == ["chinchilla"]


@pytest.mark.parametrize("args, needle", [
    (["fits", "--law", "magic"], "'magic' is not one of 'chinchilla', 'kumar', 'qat', 'quartet', 'quest'"),
    (["fits", "--store", "not a url"], "not a url"),
    (["runs", "--sort", "colour"], "'colour' is not one of"),
    (["report", "--bogus"], "No such option: --bogus"),
    (["nocommand"], "No such command 'nocommand'"),
])
def test_usage_errors_are_one_line_exit_2(args, needle):
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("error: ") and needle in res.stderr
