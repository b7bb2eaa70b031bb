"""Sweep files: the shipped ones validate; malformed ones exit 2 and leave the store untouched."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli import app
from quest_lab.sweep import SpecError, expand, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))
runner = CliRunner()

BASE = {"corpus": "shakespeare", "tokenizer": "byte", "seq_len": 32, "batch_size": 4,
        "device": "cpu", "eval_tokens": 512, "quantizer": "quest"}


def write(tmp_path: Path, doc, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return p


def good_doc(db: Path) -> dict:
    return {"name": "t", "base": dict(BASE),
            "grid": {"size": ["nano", "micro"], "bits": [4, 16], "tokens": [1024]},
            "retries": 0, "store": f"sqlite:///{db}"}


@pytest.mark.parametrize("path", SWEEPS, ids=[p.name for p in SWEEPS])
def test_shipped_sweeps_validate(path: Path) -> None:
    sweep = load_spec(path)
    configs = expand(sweep)
    assert sweep.name == path.stem
    assert len(configs) >= 3


def test_expected_sweeps_shipped() -> None:
    assert {"smoke.yaml", "w1_to_w8.yaml", "baselines.yaml"} <= {p.name for p in SWEEPS}


def test_smoke_spans_a_law_fit() -> None:
    configs = expand(load_spec(ROOT / "sweeps" / "smoke.yaml"))
    assert len({c.size for c in configs}) >= 3
    assert len({c.w_bits for c in configs if c.w_bits < 16}) >= 3
    assert any(c.w_bits == 16 and c.a_bits == 16 for c in configs)
    assert len({c.token_budget for c in configs}) >= 2
    assert all(c.device == "cpu" for c in configs)


def test_w1_to_w8_is_the_paper_grid() -> None:
    sweep = load_spec(ROOT / "sweeps" / "w1_to_w8.yaml")
    configs = expand(sweep)
    assert {c.size for c in configs} == {"30M", "50M", "100M", "200M"}
    assert {(c.w_bits, c.a_bits) for c in configs} == {(b, b) for b in range(1, 9)} | {(16, 16)}
    assert {c.tokens_per_param for c in configs} == {25, 50, 100}
    assert sweep.spec.resources.gpus == 1


def test_joint_bits_include_exclude_and_token_override(tmp_path: Path) -> None:
    doc = good_doc(tmp_path / "r.db")
    doc["base"]["tokens_per_param"] = 10
    doc["grid"] = {"size": ["nano", "micro"], "bits": [[4, 8], 16]}
    doc["exclude"] = [{"size": "micro", "bits": [16, 16]}]
    doc["include"] = [{"size": "tiny", "w_bits": 2, "a_bits": 16, "tokens": 5000}]
    configs = expand(parse_spec(doc, "x.yaml"))
    got = [(c.size, c.w_bits, c.a_bits, c.tokens, c.tokens_per_param) for c in configs]
    assert got == [("nano", 4, 8, None, 10), ("nano", 16, 16, None, 10),
                   ("micro", 4, 8, None, 10), ("tiny", 2, 16, 5000, None)]


def test_duplicate_points_are_merged_and_run_ids_are_stable(tmp_path: Path) -> None:
    doc = good_doc(tmp_path / "r.db")
    doc["include"] = [{"size": "nano", "bits": 4, "tokens": 1024}]  # already in the grid
    a = expand(parse_spec(doc, "x.yaml"))
    assert len(a) == 4
    b = expand(parse_spec(doc, "x.yaml"))
    assert [c.run_id("d") for c in a] == [c.run_id("d") for c in b]
    assert len({c.run_id("d") for c in a}) == 4
    assert a[0].run_id("d") != a[0].run_id("other-corpus")


MALFORMED: dict[str, tuple[object, str]] = {
    # id: (mutation of the good doc, or raw text; a fragment the error must contain)
    "unknown_top_key": (lambda d: d.update(nmae="x"), "nmae"),
    "unknown_run_option": (lambda d: d["base"].update(lrr=0.1), "base.lrr"),
    "wrong_type": (lambda d: d.update(retries="three"), "retries"),
    "wrong_option_type": (lambda d: d["base"].update(seq_len="long"), "base.seq_len"),
    "empty_axis": (lambda d: d["grid"].update(size=[]), "grid.size"),
    "bits_out_of_range": (lambda d: d["grid"].update(bits=[4, 9]), "grid.bits[1]"),
    "bits_bad_pair": (lambda d: d["grid"].update(bits=[[4, 4, 4]]), "grid.bits[0]"),
    "unknown_size": (lambda d: d["grid"].update(size=["nano", "huge"]), "grid.size[1]"),
    "unknown_quantizer": (lambda d: d["grid"].update(quantizer=["magic"]), "grid.quantizer[0]"),
    "unknown_axis": (lambda d: d["grid"].update(colour=["red"]), "grid.colour"),
    "axis_not_a_list": (lambda d: d["grid"].update(size="nano"), "grid.size"),
    "bits_and_w_bits": (lambda d: d["grid"].update(w_bits=[4]), "grid"),
    "missing_name": (lambda d: d.pop("name"), "name"),
    "bad_name": (lambda d: d.update(name="a b/c"), "name"),
    "unknown_resource": (lambda d: d.update(resources={"tpus": 1}), "resources.tpus"),
    "negative_cpus": (lambda d: d.update(resources={"cpus": -1}), "resources.cpus"),
    "zero_concurrency": (lambda d: d.update(max_concurrent=0), "max_concurrent"),
    "no_token_budget": (lambda d: d["grid"].pop("tokens"), "tokens"),
    "negative_tokens": (lambda d: d["grid"].update(tokens=[-5]), "tokens"),
    "bad_store_url": (lambda d: d.update(store="not a url"), "store"),
    "exclude_everything": (lambda d: d.update(exclude=[{"tokens": 1024}]), "exclude"),
    "yaml_syntax": ("name: t\ngrid: [size: {\n", "invalid YAML"),
    "top_level_list": ("- name: t\n", "mapping"),
    "empty_file": ("", "mapping"),
}


@pytest.fixture(scope="module")
def populated_db(tmp_path_factory) -> Path:
    """A store that already holds a finished sweep (so 'byte-identical' means something)."""
    tmp = tmp_path_factory.mktemp("spec")
    db = tmp / "results.db"
    path = write(tmp, good_doc(db))
    res = runner.invoke(app, ["sweep", str(path), "--executor", "local", "--train-fn", "sweep_fakes:fake_train"])
    assert res.exit_code == 0, res.output
    return db


def _digest(db: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(db.parent.glob(db.name + "*"))}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_sweep_exits_2_and_leaves_db_identical(case: str, tmp_path: Path, populated_db: Path) -> None:
    mutate, fragment = MALFORMED[case]
    if isinstance(mutate, str):
        path = write(tmp_path, mutate)
    else:
        doc = good_doc(populated_db)
        mutate(doc)
        path = write(tmp_path, doc)
    before = _digest(populated_db)
    res = runner.invoke(app, ["sweep", str(path), "--executor", "local",
                              "--train-fn", "sweep_fakes:fake_train", "--store", f"sqlite:///{populated_db}"])
    assert res.exit_code == 2, res.output
    assert str(path) in res.output and fragment in res.output, res.output
    assert len(res.output.strip().splitlines()) <= 3  # one clear line (wrapped at most)
    assert _digest(populated_db) == before


def test_missing_file_exits_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["sweep", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "no such sweep file" in res.output


def test_spec_error_is_one_line(tmp_path: Path) -> None:
    doc = good_doc(tmp_path / "r.db")
    doc["grid"]["size"] = ["huge"]
    with pytest.raises(SpecError) as ei:
        parse_spec(doc, "f.yaml")
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith("f.yaml: grid.size[0]:") and "nano" in msg


def test_yaml_scientific_notation_is_a_number_and_hashes_like_the_integer(tmp_path: Path) -> None:
    """PyYAML (YAML 1.1) reads `1e6` / `3e-4` as strings; a sweep file means numbers."""
    text = ("name: sci\nbase: {corpus: shakespeare, tokenizer: byte, size: nano, lr: 3e-4}\n"
            "grid:\n  tokens: [{}]\n  w_bits: [4]\n  a_bits: [{}]\n")
    sci = load_spec(write(tmp_path, text.replace("{}", "1e6", 1).replace("{}", "4", 1), "a.yaml"))
    plain = load_spec(write(tmp_path, text.replace("{}", "1000000", 1).replace("{}", "4.0", 1), "b.yaml"))
    (a,), (b,) = expand(sci), expand(plain)
    assert a.tokens == 1_000_000 and isinstance(a.tokens, int) and a.lr == 3e-4
    assert a.run_id("d") == b.run_id("d")
    with pytest.raises(SpecError, match=r"grid\.tokens\[0\]"):
        load_spec(write(tmp_path, text.replace("{}", "1024.5", 1).replace("{}", "4", 1), "c.yaml"))


def test_grid_cap_and_max_grid_option(tmp_path: Path) -> None:
    doc = good_doc(tmp_path / "r.db")  # 4 points
    path = write(tmp_path, doc)
    res = runner.invoke(app, ["sweep", str(path), "--dry-run", "--max-grid", "3"])
    assert res.exit_code == 2 and "4 points (2 size × 2 bits × 1 tokens) exceed the limit of 3" in res.output, res.output
    assert "--max-grid 4" in res.output and not (tmp_path / "r.db").exists()
    res = runner.invoke(app, ["sweep", str(path), "--dry-run", "--max-grid", "4"])
    assert res.exit_code == 0 and "4 total, 0 done, 4 to run" in res.output, res.output


def test_load_spec_only_parses(tmp_path: Path) -> None:
    """Resolving points is the planner's job: a point RunConfig rejects fails in expand, not in load_spec."""
    doc = good_doc(tmp_path / "r.db")
    doc["grid"].pop("tokens")  # every point lacks a token budget
    sweep = load_spec(write(tmp_path, doc))
    with pytest.raises(SpecError, match="tokens"):
        expand(sweep)


def test_yaml_alias_expansion_is_bounded(tmp_path: Path) -> None:
    levels = ["&a0 [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"] + [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]"
                                                       for i in range(1, 8)]
    path = write(tmp_path, "name: b\ngrid:\n  seed: [" + ", ".join(levels) + "]\n")
    with pytest.raises(SpecError, match="expands to more than 100,000 values"):
        load_spec(path)
    small = write(tmp_path, "name: s\nbase: &b {size: nano, tokens: 1024, tokenizer: byte}\ninclude: [*b, *b]\n", "s2.yaml")
    assert len(load_spec(small).include) == 2  # ordinary aliases still work
