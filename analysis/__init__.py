"""quest_lab.analysis: fit precision scaling laws to stored runs and publish Pareto-frontier reports.

    from quest_lab.analysis import FitConfig, fit_frame, load_csv
    result = fit_frame(load_csv("runs.csv"), FitConfig(law="quest"))

Laws live in `law_*.py` (one class each, `@register_law`), cost models in `cost.py`
(`@register_cost`); see docs/design.md §4–5, §7.  `result.answers` (best precision per cost model and
budget) and `result.evidence` (identifiability checks, verdict) come with every fit.
"""
from quest_lab.analysis.cost import COST_MODELS, CostModel, cost_models, get_cost_model, register_cost
from quest_lab.analysis.data import apply_where, drop_highest_loss, load_csv, load_store, normalise, precision_label
from quest_lab.analysis.fit import FitConfig, FitResult, fit_frame
from quest_lab.analysis.law_base import BASE_LABEL, InsufficientDataError, Law, get_law, load_laws, register_law

__all__ = [
    "BASE_LABEL", "COST_MODELS", "CostModel", "FitConfig", "FitResult", "InsufficientDataError", "Law",
    "apply_where", "cost_models", "drop_highest_loss", "fit_frame", "get_cost_model", "get_law", "load_csv",
    "load_laws", "load_store", "normalise", "precision_label", "register_cost", "register_law",
]
