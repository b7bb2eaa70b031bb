import json

import pytest
from typer.testing import CliRunner

from cli import app
from quest_lab.quant.specs import QUANTIZER_SPECS

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
    quants = runner.invoke(app, ["quantizers"], terminal_width=80)
    assert quants.exit_code == 0
    text = " ".join(quants.output.split())
    assert "…" not in quants.output  # nothing cut at 80 columns
    for name, spec in QUANTIZER_SPECS.items():  # every quantizer with its whole description and source
        if name == spec.name:
            assert name in quants.output and " ".join(spec.summary.split()) in text, name
            assert " ".join(spec.citation.split()) in text, name


SMALL = ["--size", "nano", "--tokenizer", "byte", "--seq-len", "32", "--batch-size", "8", "--device", "cpu"]


def test_train_writes_json_and_stores_its_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run.json"
    url = f"sqlite:///{tmp_path / 'r.db'}"
    args = ["train", *SMALL, "--w-bits", "4", "--a-bits", "4", "--quantizer", "quest", "--tokens", "2000",
            "--json", str(out), "--store", url]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["status"] == "completed" and data["w_bits"] == 4 and data["final_eval_loss"] > 0
    assert "final eval loss" in res.output and "loading" not in res.output.split("trained")[-1]
    # the header says how the budget was rounded: 2000 tokens -> 8 steps of 8 × 32 = 2,048
    assert "D = 2,000 tokens requested, 2,048 trained: 8 steps × 8 × 32 tokens (whole batches)" in res.output
    assert "0/None" not in res.output
    from quest_lab.store import Store

    runs = Store(url).runs_frame()
    assert len(runs) == 1 and runs.sweep.iloc[0] == "train" and runs.D.iloc[0] == 2048 and runs.loss.iloc[0] > 0
    folded = "".join(res.output.split())  # the summary folds long values over lines
    assert f"run{runs.run_id.iloc[0]}(completed)insweeptrainof{url}" in folded
    listed = runner.invoke(app, ["runs", "--store", url])
    assert listed.exit_code == 0 and runs.run_id.iloc[0] in listed.output
    # the same run again: trained, but the stored result is kept
    again = runner.invoke(app, [*args, "--force"])  # --force: run.json exists
    assert again.exit_code == 0 and "already in" in again.output and len(Store(url).runs_frame()) == 1
    assert not (tmp_path / "results.db").exists()  # --store was respected


def test_train_no_store_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["train", *SMALL, "--tokens", "512", "--no-store"])
    assert res.exit_code == 0, res.output
    assert "no (--no-store)" in res.output and list(tmp_path.iterdir()) == []


def test_train_failure_is_stored_as_failed(tmp_path, monkeypatch):
    import quest_lab.train

    def broken(cfg, progress=None):
        raise RuntimeError("simulated out of memory")

    monkeypatch.setattr(quest_lab.train, "train", broken)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    res = runner.invoke(app, ["train", *SMALL, "--tokens", "512", "--store", url])
    assert res.exit_code != 0 and isinstance(res.exception, RuntimeError)
    from quest_lab.store import Store

    failed = Store(url).runs_frame(statuses=("failed",))
    assert len(failed) == 1 and failed.error.iloc[0].startswith("RuntimeError: simulated out of memory")


@pytest.mark.parametrize("args, needle", [
    (["--size", "huge"], "huge"),
    (["--quantizer", "magic"], "magic"),
    (["--w-bits", "9"], "allowed: 1, 1.58"),
    (["--a-bits", "0"], "allowed: 1, 1.58"),
    (["--tokens", "0"], "tokens=0"),
    (["--tokens", "-5"], "tokens=-5"),
    (["--corpus", "/no/such/corpus"], "/no/such/corpus"),
    (["--store", "not a url"], "not a url"),
    (["--sweep", "[/b]x"], "not a valid sweep name"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, args, needle, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run.json"
    res = runner.invoke(app, ["train", *args, "--json", str(out)])
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert list(tmp_path.iterdir()) == []  # neither the JSON nor a store


def test_existing_json_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run.json"
    out.write_text("keep")
    res = runner.invoke(app, ["train", "--size", "nano", "--tokens", "1000", "--json", str(out)])
    assert res.exit_code == 2 and "exists; pass --force" in res.output
    assert out.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
