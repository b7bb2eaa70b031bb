"""Law registry: every law declares valid specs, predicts, and has an exact analytic Jacobian."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quest_lab.analysis import Law, get_law, load_laws, normalise, precision_label, register_law
from quest_lab.analysis.data import design
from quest_lab.analysis.law_base import LAWS, ParamSpec, chinchilla_specs
from quest_lab.analysis.optimize import Problem

LABELS = ("quest:w4a4", "quest:w2a2", "rtn:w1.58a8")


def _design():
    rows = [dict(N=N, D=D, quantizer=q, w_bits=w, a_bits=a, loss=3.0)
            for N in (1e6, 3e7, 1e9) for D in (1e8, 1e10)
            for q, w, a in (("bf16", 16, 16), ("quest", 4, 4), ("quest", 2, 2), ("rtn", 1.58, 8))]
    return design(normalise(pd.DataFrame(rows)), LABELS)


def test_registry_has_the_four_laws():
    assert {"chinchilla", "quest", "kumar", "quartet"} <= set(load_laws())
    with pytest.raises(ValueError, match="unknown; allowed: .*chinchilla"):
        get_law("nope")


def test_precision_labels_keep_fractional_bits():
    assert precision_label("rtn", 1.58, 8) == "rtn:w1.58a8"
    assert precision_label("quest", 4.0, 4.0) == "quest:w4a4"
    assert precision_label("quest", 16, 16) == "bf16"  # any 16/16 run is the base


@pytest.mark.parametrize("name", ["chinchilla", "quest", "kumar", "quartet"])
def test_analytic_jacobian_matches_finite_differences(name):
    law = get_law(name, LABELS if load_laws()[name].uses_precision else ())
    d = _design()
    rng = np.random.default_rng(1)
    specs = law.specs()
    theta = np.array([rng.uniform(max(s.lower, min(s.grid)), min(s.upper, max(s.grid)) + 1e-9) for s in specs])
    theta = np.clip(theta, [s.lower + 0.05 for s in specs], [s.upper - 0.05 for s in specs])
    logp, jac = law.log_predict(theta, d)
    assert logp.shape == (d.n,) and jac.shape == (d.n, len(specs))
    for j in range(len(specs)):
        h = 1e-6
        up, dn = theta.copy(), theta.copy()
        up[j] += h
        dn[j] -= h
        fd = (law.log_predict(up, d)[0] - law.log_predict(dn, d)[0]) / (2 * h)
        np.testing.assert_allclose(jac[:, j], fd, rtol=1e-4, atol=1e-7, err_msg=specs[j].name)


@pytest.mark.parametrize("name", ["quest", "quartet"])
def test_full_precision_runs_ignore_efficiencies(name):
    law = get_law(name, LABELS)
    d = _design()
    specs = law.specs()
    theta = np.array([s.grid[len(s.grid) // 2] for s in specs])
    theta2 = theta.copy()
    theta2[[s.stage == "precision" for s in specs]] = 0.3
    base = d.is_base
    np.testing.assert_allclose(law.predict(theta, d)[base], law.predict(theta2, d)[base])
    assert not np.allclose(law.predict(theta, d)[~base], law.predict(theta2, d)[~base])


def test_quest_efficiency_is_effective_parameters():
    law = get_law("quest", ("quest:w4a4",))
    theta = law.from_public({"A": 400, "B": 400, "E": 1.7, "alpha": 0.34, "beta": 0.28, "eff[quest:w4a4]": 0.5})
    d = _design()
    dq = d.with_inputs(1e8, 1e10, "quest:w4a4")
    db = d.with_inputs(0.5e8, 1e10, None)
    assert law.predict(theta, dq)[0] == pytest.approx(law.predict(theta, db)[0])
    assert law.predict(theta, db)[0] == pytest.approx(1.7 + 400 / 0.5e8 ** 0.34 + 400 / 1e10 ** 0.28)


def test_batched_objective_matches_single():
    law = get_law("quest", LABELS)
    d = _design()
    specs = law.specs()
    X = np.array([[s.grid[i % len(s.grid)] for s in specs] for i in range(4)])
    prob = Problem(law, d, np.ones(len(specs), bool), X[0])
    f, g = prob.batch_fun(X)
    for k in range(4):
        fk, gk = prob.fun(X[k])
        assert f[k] == pytest.approx(fk) and np.allclose(g[k], gk)


def test_adding_a_law_is_one_decorated_class():
    @register_law("test_linear_only")
    class OnlyE(Law):
        formula = "L = E"

        def specs(self):
            return [ParamSpec("E", -5, 3, (0.0,), log=True)]

        def batch_log_predict(self, theta, d):
            return np.broadcast_to(theta[:, :1], (len(theta), d.n)).copy(), np.ones((len(theta), d.n, 1))

    try:
        assert get_law("test_linear_only").predict(np.array([np.log(2.0)]), _design())[0] == pytest.approx(2.0)
        with pytest.raises(ValueError, match="registered twice"):
            register_law("test_linear_only")(type("Other", (Law,), {}))
    finally:
        LAWS.pop("test_linear_only")


def test_param_spec_validation():
    with pytest.raises(ValueError, match="stage='later' is unknown"):
        ParamSpec("x", 0, 1, (0.5,), stage="later")
    with pytest.raises(ValueError, match="grid"):
        ParamSpec("x", 0, 1, (2.0,))
    assert len(chinchilla_specs()) == 5
    grid = 1
    for s in chinchilla_specs():
        grid *= len(s.grid)
    assert grid == 4500  # docs/design.md §5: 6·6·5·5·5 starts
