"""Report sections of the qat law (Chen et al. 2025, arXiv 2505.14302): its panels from
`analysis/plots_qat.py` — the quantization error δ against N, D and G per precision family, observed
against fitted loss — and the weight/activation decomposition the fit stores in `extras`."""
from __future__ import annotations

import pandas as pd

from quest_lab.analysis import plots_qat
from quest_lab.analysis.report_sections import Block, LawView, fmt, law_section

PANELS = (("delta_N", "Quantization error δ vs model size", plots_qat.delta_vs_N),
          ("delta_D", "Quantization error δ vs training tokens", plots_qat.delta_vs_D),
          ("delta_G", "Quantization error δ vs group size", plots_qat.delta_vs_G),
          ("observed_vs_fitted", "Observed vs fitted loss (qat)", plots_qat.observed_vs_fitted))


def _panel(key: str, title: str, draw) -> None:
    def build(view: LawView) -> Block | None:
        if not view.fit.labels:  # BF16 runs only: no precision family, no δ
            return None
        fig, caption = draw(view.fit, view.runs)
        return Block(key, title, caption, figure=fig)

    build.__name__ = build.__qualname__ = f"qat_{key}"
    law_section("qat", order=32 + [p[0] for p in PANELS].index(key))(build)


for _key, _title, _draw in PANELS:
    _panel(_key, _title, _draw)


def _ratio(value, ci) -> str:
    text = fmt(value, ".3f")
    return f"{text} [{fmt(ci[0], '.3f')}, {fmt(ci[1], '.3f')}]" if ci else text


@law_section("qat", order=37)
def qat_decomposition(view: LawView) -> Block | None:
    decomposition = (view.fit.extras or {}).get("decomposition") or {}
    if not decomposition:
        return None
    rows = [{"W+A family": fam, "weight-only": e.get("weight", "—"), "activation-only": e.get("activation", "—"),
             "W+A runs compared": fmt(e.get("runs", 0), "d"),
             "Σ(δ_W + δ_A) / Σ δ_WA fitted": _ratio(e.get("sum_over_fitted"), e.get("sum_over_fitted_ci")),
             "Σ(δ_W + δ_A) / Σ δ observed": _ratio(e.get("sum_over_observed"), e.get("sum_over_observed_ci"))}
            for fam, e in sorted(decomposition.items())]
    level = f"{view.fit.config.ci:.0%}"
    return Block("decomposition", "Weight/activation decomposition (qat)",
                 "Is a W+A precision's error the sum of its weight-only and activation-only errors? At the W+A runs: "
                 "the components' fitted δ_W + δ_A over the W+A family's fitted δ, and over the observed error "
                 f"L − L_BF16 (ratios of totals; 1 = additive; brackets: {level} bootstrap intervals where the fit "
                 "has them).", tables=(("Decomposition per W+A family", pd.DataFrame(rows)),))
