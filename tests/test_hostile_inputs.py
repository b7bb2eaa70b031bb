"""Hostile inputs (issue 10): each gives exit 2 with one line (or a correct result), runs no code, shows no
password, and changes no file outside the command's declared outputs — the store's bytes included.

Every case runs in a copy of one workspace (a populated SQLite store, a CSV, and whatever files the
case writes as *inputs*); the whole workspace is hashed before and after.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from cli import app
from conftest import free_port
from quest_lab.store import Store

runner = CliRunner()
SECRET = "S3cr3tPassw0rd"
PG = f"postgresql://lab:{SECRET}@127.0.0.1:{{port}}/results"  # port filled with a closed one
MARKER = "pwned"  # what an injected command would create in the workspace
BASE = {"corpus": "shakespeare", "tokenizer": "byte", "seq_len": 32, "batch_size": 4, "device": "cpu",
        "eval_tokens": 256, "quantizer": "quest", "size": "nano", "tokens": 1024}


@dataclass
class Case:
    args: list[str]
    expect: int = 2
    fragment: str = ""  # must appear in the output
    files: dict[str, str | bytes] = field(default_factory=dict)  # inputs written before the run
    outputs: tuple[str, ...] = ()  # files the command may create or change
    check: Callable[[Path, object], None] | None = None  # correctness of an exit-0 result


def yaml_doc(**over) -> str:
    doc = {"name": "h", "base": dict(BASE), "grid": {"w_bits": [4], "a_bits": [4]}, "store": "sqlite:///results.db"}
    for key, value in over.items():
        if key.startswith("base_"):
            doc["base"][key[5:]] = value
        else:
            doc[key] = value
    return yaml.safe_dump(doc, sort_keys=False)


def bomb(levels: int = 7, inline_under: str = "grid.seed") -> str:
    """A "billion laughs" document: a few lines that expand to 10^levels values."""
    lines = ["name: bomb", "base: {corpus: shakespeare, tokenizer: byte, size: nano, tokens: 1024}", "grid:"]
    anchors = ["&l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, levels):
        anchors.append(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    if inline_under == "grid.seed":
        lines.append("  seed: [" + ", ".join(anchors) + "]")
    else:
        lines.append("  quantizer_options: [{a: [" + ", ".join(anchors) + "]}]")
    return "\n".join(lines) + "\n"


BACKTICK = f"quantizer == '`' or @logging.os.system('id > {MARKER}') == 0 or quantizer == '`'"
CONSTANT_CSV = "N,D,loss\n" + "".join(f"{n},{d},3.0\n" for n in (1e6, 2e6, 4e6) for d in (1e8, 2e8, 4e8))


def _parquet_ok(ws: Path, res) -> None:
    frame = pd.read_parquet(ws / "x.parquet")
    assert len(frame) == 7 and frame.run_id.is_unique


def _csv_replaced(ws: Path, res) -> None:
    assert pd.read_csv(ws / "old.csv").run_id.nunique() == 7


def _strict_json(ws: Path, res) -> None:
    def no_constants(name):
        raise AssertionError(f"not JSON: {name}")

    payload = json.loads((ws / "fit.json").read_text(), parse_constant=no_constants)
    assert payload["law"] == "chinchilla"


def _literal_markup(ws: Path, res) -> None:
    assert "ValueError: [/bold] closing" in res.output.replace("\n", "")


def _head_kept(ws: Path, res) -> None:
    failed = Store("sqlite:///results.db").runs_frame(sweep="chained", statuses=("failed",))
    assert len(failed) == 1
    error = failed.error.iloc[0]
    assert error.startswith("RuntimeError: outer: the trial broke\n") and len(error) <= 8000


CASES: dict[str, Case] = {
    # --where: code execution, files, hangs (the table of issue 10 and more)
    "fit_where_backtick_os_system": Case(["fit", "--where", BACKTICK], fragment="@variables are not allowed"),
    "report_where_backtick_os_system": Case(["report", "--where", BACKTICK, "--out", "rep"]),
    "fit_where_to_csv_writes_file": Case(["fit", "--where", f"loss.to_csv('{MARKER}') == 0"], fragment="attribute access"),
    "fit_where_power_tower_hang": Case(["fit", "--where", "N > 9**9**9"], fragment="arithmetic is not allowed"),
    "fit_where_at_variable": Case(["fit", "--where", "@pd.io.common.os.system('id')"]),
    "fit_where_dunder_import": Case(["fit", "--where", "__import__('os').system('id') == 0"], fragment="attribute access"),
    "fit_where_lambda_call": Case(["fit", "--where", "quantizer == 'a' or (lambda: 1)() == 1"]),
    "fit_where_infinite_number": Case(["fit", "--where", "N > 1e999"], fragment="not finite"),
    "fit_where_10k_characters": Case(["fit", "--where", "N > 1 and " * 1000 + "N > 1"], fragment="longer than"),
    "fit_where_deep_parentheses": Case(["fit", "--where", "(" * 500 + "N > 1" + ")" * 500], fragment="nested"),
    "fit_where_type_mismatch": Case(["fit", "--where", "quantizer == 4"], fragment="text column"),
    "runs_where_injection": Case(["runs", "--where", BACKTICK]),
    "export_where_injection": Case(["export", "x.csv", "--where", f"loss.to_csv('{MARKER}') == 0"]),
    # credentials: a server that cannot be reached is one line, exit 2, and never shows the password
    "runs_unreachable_pg": Case(["runs", "--store", PG], fragment="cannot read store"),
    "export_unreachable_pg": Case(["export", "x.csv", "--store", PG]),
    "import_unreachable_pg": Case(["import", "ext.csv", "--store", PG], fragment="cannot read store"),
    "sweep_unreachable_pg": Case(["sweep", "ok.yaml", "--store", PG], files={"ok.yaml": yaml_doc()}),
    "fit_unreachable_pg": Case(["fit", "--store", PG]),
    "report_unreachable_pg": Case(["report", "--store", PG, "--out", "rep"]),
    "db_upgrade_unreachable_pg": Case(["db", "upgrade", "--store", PG]),
    "sweep_yaml_store_unreachable_pg": Case(["sweep", "pg.yaml"], files={"pg.yaml": yaml_doc(store=PG)}),
    "store_url_password_bad_port": Case(["runs", "--store", f"postgresql://lab:{SECRET}@host:port/db"],
                                        fragment="not a valid SQLAlchemy URL"),
    "store_url_not_a_url": Case(["runs", "--store", "not a url"]),
    "store_url_unknown_driver": Case(["runs", "--store", f"mysql://lab:{SECRET}@127.0.0.1/db"]),
    # export: never destroy the store or an existing file
    "export_onto_the_store": Case(["export", "results.db", "--store", "sqlite:///results.db"], fragment="store's own file"),
    "export_onto_the_store_forced": Case(["export", "results.db", "--force", "--format", "csv"], fragment="store's own file"),
    "export_onto_the_store_wal": Case(["export", "results.db-wal", "--format", "csv", "--force"]),
    "export_existing_file": Case(["export", "old.csv"], files={"old.csv": "keep me\n"}, fragment="--force"),
    "export_existing_file_forced": Case(["export", "old.csv", "--force"], expect=0, files={"old.csv": "keep me\n"},
                                        outputs=("old.csv",), check=_csv_replaced),
    "export_parquet_by_extension": Case(["export", "x.parquet"], expect=0, outputs=("x.parquet",), check=_parquet_ok),
    "export_unknown_extension": Case(["export", "x.txt"], fragment="extension"),
    "export_format_contradicts_extension": Case(["export", "x.parquet", "--format", "csv"], fragment="make them agree"),
    "export_into_a_directory": Case(["export", "adir"], files={"adir/keep": "x"}),
    "export_missing_directory": Case(["export", "nodir/x.csv"], fragment="does not exist"),
    # sweep files: bounded YAML, capped grids, every float checked
    "sweep_alias_bomb_grid": Case(["sweep", "b.yaml"], files={"b.yaml": bomb()}, fragment="expands to more than"),
    "sweep_alias_bomb_quantizer_options": Case(["sweep", "b.yaml"], files={"b.yaml": bomb(inline_under="q")},
                                               fragment="expands to more than"),
    "sweep_recursive_alias": Case(["sweep", "r.yaml"], files={"r.yaml": "name: r\nbase: &r {x: *r}\n"}),
    "sweep_deep_nesting": Case(["sweep", "d.yaml"], files={"d.yaml": "name: d\ngrid: {seed: " + "[" * 5000 + "]" * 5000 + "}\n"}),
    "sweep_tokens_per_param_inf": Case(["sweep", "s.yaml"], files={"s.yaml": yaml_doc(base_tokens_per_param=float("inf"))},
                                       fragment="tokens"),
    "sweep_million_point_grid": Case(["sweep", "s.yaml"], fragment="--max-grid", files={"s.yaml": yaml_doc(
        grid={k: list(range(1, 11)) for k in ("seed", "eval_tokens", "seq_len", "batch_size", "eval_every", "vocab_size")})}),
    "sweep_divergence_factor_nan": Case(["sweep", "s.yaml"], files={"s.yaml": yaml_doc(base_divergence_factor=float("nan"))},
                                        fragment="divergence_factor=nan"),
    "sweep_grad_clip_nan": Case(["sweep", "s.yaml"], files={"s.yaml": yaml_doc(base_grad_clip=float("nan"))}),
    "sweep_weight_decay_negative": Case(["sweep", "s.yaml"], files={"s.yaml": yaml_doc(base_weight_decay=-5.0)},
                                        fragment="weight_decay=-5.0 must be >= 0"),
    "sweep_lr_inf": Case(["sweep", "s.yaml"], files={"s.yaml": yaml_doc(base_lr=float("inf"))}),
    "sweep_warmup_frac_nan": Case(["sweep", "s.yaml"], files={"s.yaml": yaml_doc(base_warmup_frac=float("nan"))}),
    "sweep_seed_too_large": Case(["sweep", "s.yaml"], files={"s.yaml": yaml_doc(base_seed=10 ** 30)}, fragment="seed"),
    "sweep_tokens_too_large": Case(["sweep", "s.yaml"], files={"s.yaml": yaml_doc(base_tokens=10 ** 30)}),
    "sweep_cpus_inf": Case(["sweep", "s.yaml"], files={"s.yaml": yaml_doc(resources={"cpus": float("inf")})}),
    "sweep_python_tag": Case(["sweep", "p.yaml"], files={"p.yaml": f"name: !!python/object/apply:os.system ['id > {MARKER}']\n"}),
    "sweep_file_too_large": Case(["sweep", "l.yaml"], files={"l.yaml": "name: l\n#" + "x" * (2 << 20) + "\n"}),
    "sweep_not_utf8": Case(["sweep", "u.yaml"], files={"u.yaml": b"name: \xff\xfe\n"}, fragment="UTF-8"),
    "sweep_markup_name": Case(["sweep", "m.yaml"], files={"m.yaml": yaml_doc(name="[/bold]")}),
    "sweep_address_with_local_executor": Case(["sweep", "ok.yaml", "--executor", "local", "--address", "h:1"],
                                              files={"ok.yaml": yaml_doc()}),
    "sweep_claim_ttl_zero": Case(["sweep", "ok.yaml", "--claim-ttl", "0"], files={"ok.yaml": yaml_doc()},
                                 fragment="claim TTL"),
    "sweep_claim_ttl_nan": Case(["sweep", "ok.yaml", "--claim-ttl", "nan"], files={"ok.yaml": yaml_doc()}),
    "sweep_max_grid_zero": Case(["sweep", "ok.yaml", "--max-grid", "0"], files={"ok.yaml": yaml_doc()}),
    "sweep_worker_5kb_chained_traceback": Case(
        ["sweep", "c.yaml", "--executor", "local", "--no-progress", "--train-fn", "sweep_fakes:chained_error_train"],
        expect=1, files={"c.yaml": yaml_doc(name="chained", base_seed=7)}, outputs=("results.db",), check=_head_kept),
    # import: validated like sweeps, nothing written on error
    "import_w_bits_9": Case(["import", "b.csv"], files={"b.csv": "N,D,loss,w_bits,a_bits,quantizer\n1e6,1e8,3,9,9,q\n"},
                            fragment="w_bits=9.0 is not a supported bit-width"),
    "import_w_bits_half": Case(["import", "b.csv"], files={"b.csv": "N,D,loss,w_bits,a_bits,quantizer\n1e6,1e8,3,0.5,4,q\n"}),
    "import_default_bits_9": Case(["import", "b.csv", "--default", "w_bits=9", "--default", "a_bits=4", "--default",
                                   "quantizer=q"], files={"b.csv": "N,D,loss\n1e6,1e8,3\n"}),
    "import_markup_sweep_name": Case(["import", "ext.csv", "--sweep", "[/b]"], fragment="not a valid sweep name"),
    "import_infinite_n": Case(["import", "b.csv"], files={"b.csv": "N,D,loss,w_bits,a_bits,quantizer\n1e400,1e8,3,4,4,q\n"}),
    # rich markup in user / stored strings is printed literally
    "runs_markup_sweep_name": Case(["runs", "--sweep", "[/bold]x"], expect=0, fragment="no runs in sweep [/bold]x"),
    "runs_markup_in_stored_error": Case(["runs", "--status", "failed"], expect=0, check=_literal_markup),
    "fit_markup_sweep_name": Case(["fit", "--sweep", "[/b]"], fragment="in sweep '[/b]'"),
    "fit_json_markup_path": Case(["fit", "--csv", "const.csv", "--bootstrap", "0", "--no-save", "--json", "[/b]x.json",
                                  "--law", "chinchilla"], files={"const.csv": CONSTANT_CSV}, expect=0,
                                 outputs=("[/b]x.json",)),
    # report --out and fit --json
    "report_out_existing_file": Case(["report", "--out", "afile"], files={"afile": "keep\n"}, fragment="is a file"),
    "report_out_nonempty_folder": Case(["report", "--out", "adir"], files={"adir/keep": "x"}, fragment="--force"),
    "fit_constant_loss_strict_json": Case(["fit", "--csv", "const.csv", "--bootstrap", "0", "--no-save", "--json",
                                           "fit.json", "--law", "chinchilla"], files={"const.csv": CONSTANT_CSV},
                                          expect=0, outputs=("fit.json",), check=_strict_json),
}


@pytest.fixture(scope="module")
def populated(tmp_path_factory) -> Path:
    """results.db with 6 completed runs, one failed run whose error is markup, and an external CSV."""
    ws = tmp_path_factory.mktemp("ws")
    (ws / "ok.yaml").write_text(yaml_doc(grid={"size": ["nano", "micro", "tiny"], "bits": [4, 16]},
                                         store=f"sqlite:///{ws / 'results.db'}"))
    res = runner.invoke(app, ["sweep", str(ws / "ok.yaml"), "--executor", "local", "--no-progress",
                              "--train-fn", "sweep_fakes:fake_train"])
    assert res.exit_code == 0, res.output
    (ws / "m.yaml").write_text(yaml_doc(name="markup", base_seed=9, store=f"sqlite:///{ws / 'results.db'}"))
    res = runner.invoke(app, ["sweep", str(ws / "m.yaml"), "--executor", "local", "--no-progress",
                              "--train-fn", "sweep_fakes:markup_error_train"])
    assert res.exit_code == 1, res.output
    (ws / "ok.yaml").unlink()
    (ws / "m.yaml").unlink()
    (ws / "ext.csv").write_text("N,D,loss,w_bits,a_bits,quantizer\n1e6,1e8,3.0,4,4,quest\n")
    return ws


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input(name: str, populated: Path, tmp_path: Path, monkeypatch) -> None:
    case = CASES[name]
    ws = tmp_path / "ws"
    shutil.copytree(populated, ws)
    for rel, content in case.files.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.chdir(ws)
    port = free_port()
    args = [a.replace("{port}", str(port)) for a in case.args]
    for rel, content in case.files.items():
        if isinstance(content, str) and "{port}" in content:
            (ws / rel).write_text(content.replace("{port}", str(port)))
    before = _snapshot(ws)
    res = runner.invoke(app, args)
    output = res.output
    assert res.exit_code == case.expect, output
    assert case.fragment in output, output
    assert SECRET not in output
    assert "Traceback" not in output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    if case.expect == 2:
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    after = _snapshot(ws)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed <= set(case.outputs), f"files changed outside the declared outputs: {changed - set(case.outputs)}"
    assert not (ws / MARKER).exists()
    if case.check is not None:
        case.check(ws, res)


def test_there_are_at_least_40_hostile_inputs() -> None:
    assert len(CASES) >= 40
