"""The CLI, configs and analysis never load torch (issue 11) nor MLflow (issue 13: only a sweep that tracks
does): `--help`, `sizes`, `quantizers`, `sweep --dry-run` (also with `--mlflow`), `runs`, `fit` and `report`
run in a fresh interpreter with torch never imported."""
import pytest
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "tests" / "data" / "chinchilla_epoch_svg_extracted.csv"

SCRIPT = r"""
import sys
from typer.testing import CliRunner
import cli

heavy = [m for m in ("scipy", "pandas", "matplotlib", "torch") if m in sys.modules]
assert not heavy, f"import cli loaded {heavy}: --help must stay fast"
runner = CliRunner()
db = sys.argv[1]
out = sys.argv[2]
csv = sys.argv[3]
calls = [["--help"], ["sizes"], ["quantizers"],
         ["sweep", "sweeps/smoke.yaml", "--dry-run", "--store", f"sqlite:///{db}"],
         ["sweep", "--help"],
         ["sweep", "sweeps/smoke.yaml", "--dry-run", "--store", f"sqlite:///{db}", "--mlflow", "sqlite:///m.db"],
         ["runs", "--store", f"sqlite:///{db}"],
         ["fit", "--law", "chinchilla", "--csv", csv, "--bootstrap", "0", "--method", "varpro", "--no-save"],
         ["report", "--law", "chinchilla", "--csv", csv, "--bootstrap", "0", "--out", out]]
for args in calls:
    res = runner.invoke(cli.app, args)
    assert res.exit_code == 0, (args, res.output)
    assert "torch" not in sys.modules, f"quest-lab {' '.join(args)} imported torch"
    assert "mlflow" not in sys.modules, f"quest-lab {' '.join(args)} imported mlflow"
from quest_lab.run import RunConfig
cfg = RunConfig(size="tiny", w_bits=4, a_bits=4, tokens=1000)
assert cfg.quant.label == "quest:w4a4" and cfg.data.tokenizer == "bpe"
assert "torch" not in sys.modules
print("ok")
"""


def test_cli_commands_never_import_torch(tmp_path):
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "r.db"), str(tmp_path / "rep"), str(CSV)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert res.stdout.strip().endswith("ok")


def test_registries_refuse_a_second_class_under_one_name() -> None:
    from quest_lab.registry import class_registrar

    reg: dict = {}
    register = class_registrar(reg, "widget")

    @register("a")
    class A:
        pass

    assert reg == {"a": A} and A.name == "a"
    assert register("a")(A) is A  # the same class again is harmless (re-import)
    with pytest.raises(ValueError, match="widget 'a' registered twice \\(A, B\\)"):
        @register("a")
        class B:
            pass
