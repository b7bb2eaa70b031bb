"""Report section of the kumar law: its precision saturation factors 1 − e^(−P/γ) for weights and
activations (Kumar et al. 2024, arXiv 2411.04330), relative to 16 bits, with the fitted γ_w, γ_a."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from quest_lab.analysis.report_sections import Block, LawView, fmt, law_section

BITS = np.linspace(1.0, 16.0, 151)


def _relative(bits: np.ndarray, gamma: float) -> np.ndarray:
    return -np.expm1(-bits / gamma) / -np.expm1(-16.0 / gamma)


@law_section("kumar", order=35)
def saturation(view: LawView) -> Block | None:
    gw, ga = view.fit.params.get("gamma_w"), view.fit.params.get("gamma_a")
    if gw is None or ga is None:
        return None
    fig = Figure(layout="constrained")
    ax = fig.subplots()
    for gamma, side, color in ((gw, "weights", "#1f77b4"), (ga, "activations", "#d62728")):
        ax.plot(BITS, _relative(BITS, gamma), color=color, lw=1.6, label=f"{side}: γ = {gamma:.3g}")
    ax.set_xlabel("bits P")
    ax.set_ylabel("(1 − e^(−P/γ)) / (1 − e^(−16/γ))")
    ax.set_ylim(0, 1.05)
    ax.set_title("kumar law: parameter efficiency of one side vs its bits")
    ax.legend(loc="lower right")
    at = [1, 2, 3, 4, 8, 16]
    table = pd.DataFrame({"bits": at, "weights": [fmt(_relative(np.float64(b), gw), ".3f") for b in at],
                          "activations": [fmt(_relative(np.float64(b), ga), ".3f") for b in at]})
    return Block("saturation", "Precision saturation (kumar)",
                 "Lines: the fitted saturation factor of each side relative to 16 bits; a precision's N_eff/N is "
                 "the product of its weight and activation factors.", figure=fig,
                 tables=(("Saturation factor relative to 16 bits", table),))
