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
