"""Synthetic runs shared by the fit, evidence and report tests (not a test module).

`smoke_frame` draws losses from the QuEST law at `SMOKE_TRUTH` on the grid of the CPU smoke sweep
(3 sizes × W2A2/W3A3/W4A4/BF16 × 2 token budgets), with multiplicative log-normal noise.  The
fixtures `smoke_csv` and `smoke_store` (tests/conftest.py) write it to a CSV file or a SQLite store.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from quest_lab.analysis import get_law, normalise
from quest_lab.analysis.data import design

SMOKE_TRUTH = {"A": 60.0, "B": 30.0, "E": 1.5, "alpha": 0.3, "beta": 0.35,
               "eff[quest:w2a2]": 0.35, "eff[quest:w3a3]": 0.6, "eff[quest:w4a4]": 0.8}


def smoke_frame(seed: int = 0, noise: float = 0.01) -> pd.DataFrame:
    """Like the CPU smoke sweep: 3 sizes × (W2A2, W3A3, W4A4, BF16) × 2 token budgets, losses 2.5–4.5."""
    rows = [dict(run_id=f"run{i:02d}", N=N, D=D, quantizer="quest", w_bits=w, a_bits=w)
            for i, (N, D, w) in enumerate((N, D, w) for N in (2.0e5, 8.0e5, 3.2e6)
                                          for D in (65536, 131072) for w in (2, 3, 4, 16))]
    df = normalise(pd.DataFrame(rows).assign(loss=1.0))
    d = design(df)
    law = get_law("quest", d.labels)
    clean = law.predict(law.from_public(SMOKE_TRUTH), d)
    loss = clean * np.exp(np.random.default_rng(seed).normal(0, noise, len(df)))
    return df.drop(columns=["label"]).assign(loss=loss)


QAT_TRUTH = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28,  # Chinchilla paper values
             "k[absmax:w4a4]": 0.2, "gammaN[absmax:w4a4]": 0.2, "gammaD[absmax:w4a4]": 0.1, "gammaG[absmax:w4a4]": 1.0}


def qat_frame(seed: int = 0, noise: float = 5e-4) -> pd.DataFrame:
    """Runs drawn from the qat law at `QAT_TRUTH`: 16 BF16 runs (4 N × 4 D) and 24 absmax W4A4 runs
    (3 N × 2 D × group size G ∈ {16, 32, 64, 256}), multiplicative log-normal noise."""
    rows = [dict(run_id=f"bf{i:02d}", N=N, D=D, quantizer="bf16", w_bits=16, a_bits=16)
            for i, (N, D) in enumerate((N, D) for N in np.geomspace(1e6, 1e10, 4) for D in np.geomspace(1e8, 1e12, 4))]
    rows += [dict(run_id=f"q{i:02d}", N=N, D=D, quantizer="absmax", w_bits=4, a_bits=4, group_size=G)
             for i, (N, D, G) in enumerate((N, D, G) for N in np.geomspace(1e6, 1e10, 3) for D in (1e8, 1e12)
                                           for G in (16, 32, 64, 256))]
    df = normalise(pd.DataFrame(rows).assign(loss=1.0))
    d = design(df)
    law = get_law("qat", d.labels)
    clean = law.predict(law.from_public(QAT_TRUTH), d)
    loss = clean * np.exp(np.random.default_rng(seed).normal(0, noise, len(df)))
    return df.drop(columns=["label", "G"]).assign(loss=loss)
