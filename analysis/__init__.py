"""quest_lab.analysis: fit precision scaling laws to stored runs and publish Pareto-frontier reports.

    from quest_lab.analysis import FitConfig, fit_frame, load_csv
    result = fit_frame(load_csv("runs.csv"), FitConfig(law="quest"))

Laws live in `law_*.py` (one class each, `@register_law`), cost models in `cost.py`
(`@register_cost`); see docs/design.md §4–5, §7.  `result.answers` (best precision per cost model and
budget) and `result.evidence` (identifiability checks, verdict) come with every fit.
"""
import importlib

# Lazy exports (PEP 562): `import quest_lab.analysis.cost` or the CLI's --help must not pay for scipy,
# pandas and the fitting code.  Each name maps to the submodule that defines it.
_EXPORTS = {
    "cost": ("COST_MODELS", "CostModel", "cost_models", "get_cost_model", "register_cost"),
    "data": ("apply_where", "drop_highest_loss", "load_csv", "load_store", "normalise", "precision_label"),
    "fit": ("FitConfig", "FitResult", "fit_frame"),
    "law_base": ("BASE_LABEL", "InsufficientDataError", "Law", "get_law", "load_laws", "register_law"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
