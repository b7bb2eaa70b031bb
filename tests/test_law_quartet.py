"""The Quartet law true to its authors: effN tied to the forward label, effD to the backward label,
pinned to 1 on a 16-bit side, effs free to exceed 1 (bounds as law options), the authors' procedure
(staged, their start grids, Huber δ from the CLI).

`tests/data/quartet_authors_runs.csv` holds the authors' own runs (IST-DASLab/Quartet,
notebooks/plots.ipynb at commit 5b9d74c, cell 1 `size_fwd_bwd_iters_loss`: N = their non-embedding
sizes, D = steps·512·512), labelled here by scheme (tests/data/README.md).  Their notebook's printed
fits (same commit: cells 3, 4, 5, 30, 31) are the expected values below."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from quest_lab.analysis import FitConfig, fit_frame, get_law, load_csv
from quest_lab.analysis.data import design
from quest_lab.analysis.fit import FitResult

runner = CliRunner()
AUTHORS = Path(__file__).resolve().parent / "data" / "quartet_authors_runs.csv"
# the authors' printed values: base (cell 3), forward-only QuEST (cell 5), backward-only SR (cell 4),
# forward-only schemes (cell 30) and the full Quartet scheme, effN and effD together (cell 31)
BASE = {"A": 127444.68546799707, "alpha": 0.578520117717248, "B": 465834.31227225706, "beta": 0.538876899794824,
        "E": 1.3408460539510816, "gamma": 0.2764156900618507}
EFFS = {"effN[quest:w4a4]": 0.6451630916603083, "effD[sr_absmax:b4]": 0.8934685215915907,
        "effN[sr_absmax:w4a4]": 0.4329652115057922, "effN[rtn_absmax:w4a4]": 0.6060754066602604,
        "effN[eden128:w4a4]": 0.6391304522924868,
        "effN[quartet:w4a4]": 0.6583539115409343, "effD[quartet:b4]": 0.8217375613757574}


@pytest.fixture(scope="module")
def authors_fit() -> FitResult:
    return fit_frame(load_csv(AUTHORS), FitConfig(law="quartet", huber_delta=1e-4, bootstrap=0))


def test_reproduces_the_quartet_authors_fit(authors_fit):
    r = authors_fit
    assert r.config.mode == "staged"  # the law's default: the authors' procedure
    for name, value in BASE.items():
        assert r.params[name] == pytest.approx(value, rel=1e-3), name
    for name, value in EFFS.items():
        assert r.params[name] == pytest.approx(value, abs=2e-3), name
    # same ranking of the forward schemes as the authors
    fwd = ["sr_absmax:w4a4", "rtn_absmax:w4a4", "eden128:w4a4", "quest:w4a4", "quartet:w4a4"]
    assert sorted(fwd, key=lambda lab: r.params[f"effN[{lab}]"]) == fwd


def test_effs_are_tied_by_side_and_pinned_on_16_bit_sides(authors_fit):
    law = authors_fit.model
    names = set(law.param_names)
    assert "effD[quest:b4]" not in names and "effN[sr_absmax:w16a16]" not in names  # 16-bit sides: no eff
    assert law.eff_of(authors_fit.theta, "sr_absmax:w16a16b4", 16, 16) == 1.0
    assert law.eff_D_of(authors_fit.theta, "quest:w4a4") == 1.0
    shared = get_law("quartet", ("q:w4a4", "q:w4a4b4", "r:w16a16b4"))
    assert shared.param_names[6:] == ["effN[q:w4a4]", "effD[q:b4]", "effD[r:b4]"]
    blocks = shared.precision_blocks(design(load_csv(AUTHORS).head(0), labels=shared.labels))
    assert blocks == []  # no runs, no blocks
    payload = json.loads(json.dumps(authors_fit.to_payload(), default=float))
    assert payload["eff"]["quartet:w4a4"] == pytest.approx(EFFS["effN[quartet:w4a4]"], abs=2e-3)
    assert payload["eff_D"]["sr_absmax:b4"] == pytest.approx(EFFS["effD[sr_absmax:b4]"], abs=2e-3)
    back = FitResult.from_payload(payload)
    assert back.params == pytest.approx(authors_fit.params) and back.config.law_options == authors_fit.config.law_options


def _exceeding_frame():
    """Synthetic runs whose true effD is 1.12 (above the old 1.05 cap)."""
    import pandas as pd

    from quest_lab.analysis import normalise

    truth = {"A": 400.0, "B": 420.0, "E": 1.7, "alpha": 0.34, "beta": 0.28, "gamma": 1.0,
             "effN[q:w4a4]": 0.7, "effD[q:b4]": 1.12}
    rows = [dict(N=N, D=D, quantizer=q, w_bits=w, a_bits=w, g_bits=g) for N in np.geomspace(1e6, 1e9, 5)
            for D in np.geomspace(1e8, 1e11, 5) for q, w, g in (("bf16", 16, 16), ("q", 4, 4))]
    df = normalise(pd.DataFrame(rows).assign(loss=1.0))
    law = get_law("quartet", design(df).labels)
    return df.assign(loss=law.predict(law.from_public(truth), design(df)))


def test_effs_may_exceed_one_and_their_bounds_are_law_options():
    df = _exceeding_frame()
    free = fit_frame(df, FitConfig(law="quartet", bootstrap=0))
    assert free.params["effD[q:b4]"] == pytest.approx(1.12, abs=1e-3) and not free.warnings
    capped = fit_frame(df, FitConfig(law="quartet", bootstrap=0, law_options=(("effD_max", 1.05),)))
    assert capped.params["effD[q:b4]"] == pytest.approx(1.05)
    assert any("effD[q:b4]" in w and "upper bound" in w for w in capped.warnings)
    assert capped.to_payload()["law_options"]["effD_max"] == 1.05
    with pytest.raises(ValueError, match="unknown option.*allowed: effD_max, effD_min, effN_max, effN_min"):
        FitConfig(law="quartet", law_options=(("eff_max", 2.0),))
    with pytest.raises(ValueError, match="0 < effN_min < effN_max"):
        get_law("quartet", (), {"effN_min": 2.0, "effN_max": 1.0})


def test_fit_cli_takes_huber_delta_and_law_options(tmp_path):
    out = tmp_path / "fit.json"
    res = runner.invoke(app, ["fit", "--law", "quartet", "--csv", str(AUTHORS), "--huber-delta", "1e-4",
                              "--bootstrap", "0", "--law-option", "effD_max=2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    assert payload["huber_delta"] == 1e-4 and payload["mode"] == "staged" and payload["law_options"]["effD_max"] == 2
    assert payload["eff_D"]["quartet:b4"] == pytest.approx(EFFS["effD[quartet:b4]"], abs=2e-3)
    assert "law options: effD_max=2" in res.stdout
    for args, fragment in ((["--huber-delta", "0"], "huber_delta=0.0 must be > 0"),
                           (["--law-option", "effD_max"], "must be NAME=NUMBER"),
                           (["--law-option", "nope=1"], "unknown option(s) nope")):
        res = runner.invoke(app, ["fit", "--law", "quartet", "--csv", str(AUTHORS), "--bootstrap", "0", *args,
                                  "--json", str(tmp_path / "no.json")])
        assert res.exit_code == 2 and fragment in res.output, (args, res.output)
        assert not (tmp_path / "no.json").exists()
