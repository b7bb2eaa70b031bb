"""Per-law report sections: a registry of section builders keyed by law name.

A builder takes a `LawView` (one fitted law, the runs it speaks for and its predictions) and returns a
`Block` (a figure and/or tables with a title and a caption) or None when it has nothing to show.
Register one with `@law_section("quest", order=60)`; `"*"` applies to every law.  The report shows a
law's blocks in `order`, generic and law-specific interleaved.

A law contributes extra sections from its own module `analysis/sections_<name>.py` (found by
`load_sections()`, like `law_*.py` modules are by `load_laws()`), e.g.::

    from quest_lab.analysis.report_sections import Block, LawView, law_section

    @law_section("qat", order=45)
    def delta_p(view: LawView) -> Block | None:
        return Block("delta_p", "Quantization penalty δ_p", "…", figure=..., tables=(("…", frame),))

Builders never write markup: titles, captions and table cells are plain text that the template escapes.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from quest_lab.analysis import derived, plots
from quest_lab.analysis.data import label_bits
from quest_lab.analysis.fit import FitResult
from quest_lab.analysis.law_base import BASE_LABEL


@dataclass(frozen=True)
class LawView:
    """What a section builder sees for one law."""

    fit: FitResult
    runs: pd.DataFrame  # every completed run shown in the report (normalised, with `label`)
    seen: pd.DataFrame  # the runs this law speaks for (its precisions; chinchilla: full precision only)
    pred: np.ndarray  # the law's prediction for each row of `seen`
    answers: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def has_eff(self) -> bool:
        """The law has a parameter efficiency per precision (quest, kumar, quartet; not chinchilla, nor qat,
        whose precision term is an additive error δ, not a multiplier of N)."""
        fit = self.fit
        return any(np.isfinite(fit.model.eff_of(fit.theta, lab, *label_bits(lab))) for lab in fit.labels)


@dataclass(frozen=True)
class Block:
    """One section of a law: `id` is unique within the law (the report prefixes the law's name)."""

    id: str
    title: str
    caption: str = ""
    figure: Figure | None = None
    tables: tuple[tuple[str, pd.DataFrame], ...] = ()  # (caption, frame); cells are formatted text
    notes: tuple[str, ...] = ()


Builder = Callable[[LawView], "Block | None"]


@dataclass(frozen=True)
class SectionSpec:
    law: str  # a law name or "*"
    order: int
    name: str
    build: Builder


SECTIONS: list[SectionSpec] = []


def law_section(law: str = "*", *, order: int = 100) -> Callable[[Builder], Builder]:
    """Register a section builder for `law` ("*": every law), shown in ascending `order`."""

    def deco(fn: Builder) -> Builder:
        key = (law, fn.__module__, fn.__qualname__)
        SECTIONS[:] = [s for s in SECTIONS if (s.law, s.build.__module__, s.build.__qualname__) != key]
        SECTIONS.append(SectionSpec(law, order, fn.__name__, fn))
        return fn

    return deco


def load_sections() -> list[SectionSpec]:
    """Import every `sections_*` module of this package (each registers its builders)."""
    pkg = importlib.import_module(__name__.rsplit(".", 1)[0])
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("sections_"):
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    return SECTIONS


def sections_for(law: str) -> list[SectionSpec]:
    return sorted((s for s in load_sections() if s.law in ("*", law)), key=lambda s: (s.order, s.name))


def build_blocks(view: LawView) -> list[Block]:
    out = []
    for spec in sections_for(view.fit.law):
        block = spec.build(view)
        if block is not None:
            out.append(block)
    return out


# -- formatting helpers shared by builders ----------------------------------------------------
def fmt(value: Any, spec: str = ".4g") -> str:
    """A table cell: numbers formatted, missing values as an em dash."""
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return "—"
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def fit_table(fit: FitResult) -> pd.DataFrame:
    level = f"{fit.config.ci:.0%} CI"
    rows = []
    for name, value in fit.params.items():
        lo, hi = fit.ci.get(name, (np.nan, np.nan))
        rows.append({"parameter": name, "value": fmt(value), f"{level} low": fmt(lo), f"{level} high": fmt(hi)})
    return pd.DataFrame(rows)


# -- the generic sections (every law) ----------------------------------------------------------
@law_section("*", order=10)
def loss_vs_n(view: LawView) -> Block:
    seen = view.seen
    skipped = len(view.runs) - len(seen)
    note = (f" {skipped} run(s) at precisions the {view.fit.law} law does not model are not drawn."
            if skipped else "")
    return Block("loss_vs_n", "Loss vs model size",
                 f"Points: observed final eval loss of the {len(seen)} runs the {view.fit.law} law speaks for; "
                 f"lines: the fitted {view.fit.law} law at each training budget.{note}",
                 figure=plots.loss_vs_n(seen, view.fit))


@law_section("*", order=30)
def efficiency(view: LawView) -> Block | None:
    if not view.has_eff:
        return None
    table = derived.efficiency_per_bit(view.fit)
    cells = pd.DataFrame({
        "precision": table["label"], "w bits": table["w_bits"].map(lambda v: fmt(v, "g")),
        "a bits": table["a_bits"].map(lambda v: fmt(v, "g")), "eff": table["eff"].map(fmt),
        "eff CI": [f"[{fmt(lo)}, {fmt(hi)}]" if lab != BASE_LABEL else "—"
                   for lab, lo, hi in zip(table["label"], table["eff_lo"], table["eff_hi"])],
        "eff·16/P": table["eff_per_bit"].map(lambda v: fmt(v, ".3f")),
    })
    return Block("efficiency_per_bit", "Efficiency per bit",
                 "eff(P)·16/P with P = weight bits: at a fixed memory budget (cost model 'memory', data-rich "
                 "limit) the precision with the highest value gives the lowest loss (outlined).",
                 figure=plots.efficiency_bars(view.fit), tables=(("Efficiency per precision", cells),))


@law_section("*", order=40)
def residuals(view: LawView) -> Block:
    rel = 100.0 * (view.pred - view.seen["loss"].to_numpy(float)) / view.seen["loss"].to_numpy(float)
    ok = np.isfinite(rel)
    summary = (f"mean |error| {np.mean(np.abs(rel[ok])):.2f} %, max {np.max(np.abs(rel[ok])):.2f} %"
               if ok.any() else "no predictions")
    return Block("residuals", "Residuals",
                 f"(predicted − observed)/observed for the {int(ok.sum())} runs the {view.fit.law} law predicts "
                 f"({summary}).", figure=plots.residuals(view.seen, view.pred, view.fit.law))
