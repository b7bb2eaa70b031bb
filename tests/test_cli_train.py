import json

import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def test_root_and_every_subcommand_help():
    root = runner.invoke(app, ["--help"])
    assert root.exit_code == 0
    commands = [c.name for g in app.registered_groups for c in g.typer_instance.registered_commands]
    assert {"train", "sizes", "quantizers"} <= set(commands)
    for name in commands:
        res = runner.invoke(app, [name, "--help"])
        assert res.exit_code == 0, (name, res.output)
        assert "Usage" in res.output


def test_sizes_and_quantizers_list_registries():
    sizes = runner.invoke(app, ["sizes"])
    assert sizes.exit_code == 0 and "30,482,560" in sizes.output and "tiny" in sizes.output
    quants = runner.invoke(app, ["quantizers"])
    assert quants.exit_code == 0
    for name in ("quest", "ste", "clip", "lsq", "ternary", "fp4"):
        assert name in quants.output


def test_train_writes_json(tmp_path):
    out = tmp_path / "run.json"
    res = runner.invoke(app, ["train", "--size", "nano", "--w-bits", "4", "--a-bits", "4", "--quantizer", "quest",
                              "--tokens", "2048", "--tokenizer", "byte", "--seq-len", "32", "--batch-size", "8",
                              "--device", "cpu", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["status"] == "completed" and data["w_bits"] == 4 and data["final_eval_loss"] > 0
    assert "final eval loss" in res.output


@pytest.mark.parametrize("args, needle", [
    (["--size", "huge"], "huge"),
    (["--quantizer", "magic"], "magic"),
    (["--w-bits", "9"], "allowed: 1, 1.58"),
    (["--a-bits", "0"], "allowed: 1, 1.58"),
    (["--tokens", "0"], "tokens=0"),
    (["--tokens", "-5"], "tokens=-5"),
    (["--corpus", "/no/such/corpus"], "/no/such/corpus"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, args, needle):
    out = tmp_path / "run.json"
    res = runner.invoke(app, ["train", *args, "--json", str(out)])
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert not out.exists()
